package sss

// Minimal scalar GF(2^8) arithmetic used to build coefficient rows and
// Lagrange weights. Bulk multiply-accumulate over byte slices is done by
// github.com/klauspost/reedsolomon; both use the reduction polynomial
// 0x11D, so products agree.

const gfPoly = 0x11D

var (
	gfExp [510]byte // gfExp[i] = 2^i, doubled so log sums need no modulo
	gfLog [256]byte // gfLog[2^i] = i; gfLog[0] is unused
)

func init() {
	v := 1
	for i := 0; i < 255; i++ {
		gfExp[i] = byte(v)
		gfExp[i+255] = byte(v)
		gfLog[v] = byte(i)
		v <<= 1
		if v&0x100 != 0 {
			v ^= gfPoly
		}
	}
}

// gfMul returns a·b in GF(2^8).
func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

// gfDiv returns a/b in GF(2^8); b must be non-zero.
func gfDiv(a, b byte) byte {
	if a == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+255-int(gfLog[b])]
}

// lagrangeAtZero returns the weights w such that, for any polynomial p of
// degree < len(xs), p(0) = Σ w[i]·p(xs[i]). The xs must be distinct and
// non-zero.
//
// In characteristic 2 subtraction is XOR, so
// w[i] = Π_{j≠i} x_j / (x_j ⊕ x_i).
func lagrangeAtZero(xs []byte) []byte {
	w := make([]byte, len(xs))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for j, xj := range xs {
			if j == i {
				continue
			}
			num = gfMul(num, xj)
			den = gfMul(den, xj^xi)
		}
		w[i] = gfDiv(num, den)
	}
	return w
}

// gfniMatrix returns multiplication by c as the 8×8 bit matrix operand of
// the GF2P8AFFINEQB instruction: bit i of the product of c and x is the
// parity of x AND byte 7−i of the matrix, so byte 7−i has bit j set when
// bit i of c·2^j is set.
func gfniMatrix(c byte) uint64 {
	var m uint64
	for j := range 8 {
		p := gfMul(c, 1<<j)
		for i := range 8 {
			if p>>i&1 != 0 {
				m |= 1 << (8*(7-i) + j)
			}
		}
	}
	return m
}
