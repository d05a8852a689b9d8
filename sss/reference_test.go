package sss

import (
	"io"
	"testing"
)

// This file holds a deliberately naive, per-byte implementation used as an
// oracle for the fast paths and as the baseline in the benchmarks. It
// shares no code with the package: its own log/exp tables, Horner
// evaluation and Lagrange interpolation.

var refExp, refLog [256]int

func init() {
	v := 1
	for i := 0; i < 255; i++ {
		refExp[i] = v
		refLog[v] = i
		v <<= 1
		if v >= 256 {
			v ^= 0x11D
		}
	}
}

func refMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return byte(refExp[(refLog[a]+refLog[b])%255])
}

func refInv(a byte) byte {
	return byte(refExp[(255-refLog[a])%255])
}

// refSplit splits secret with coefficients read from random, consuming
// them in the same order as the fast path: per block of c secret bytes
// (c = blockSize(k) except for the last block), (k−1)·c bytes, the j-th
// run of c bytes holding the coefficients of t^(k−1−j).
func refSplit(secret []byte, k int, xs []byte, random io.Reader) ([]Share, error) {
	shares := make([]Share, len(xs))
	for i, x := range xs {
		shares[i] = Share{X: x, Y: make([]byte, len(secret))}
	}
	block := blockSize(k)
	coef := make([]byte, (k-1)*block)
	for off := 0; off < len(secret); off += block {
		c := min(block, len(secret)-off)
		if _, err := io.ReadFull(random, coef[:(k-1)*c]); err != nil {
			return nil, err
		}
		for b := 0; b < c; b++ {
			for i, x := range xs {
				// Horner, highest degree first, secret last.
				var y byte
				for j := 0; j < k-1; j++ {
					y = refMul(y, x) ^ coef[j*c+b]
				}
				y = refMul(y, x) ^ secret[off+b]
				shares[i].Y[off+b] = y
			}
		}
	}
	return shares, nil
}

// refCombine interpolates all shares at 0, byte by byte.
func refCombine(shares []Share) []byte {
	out := make([]byte, len(shares[0].Y))
	for b := range out {
		var acc byte
		for i, si := range shares {
			// l_i(0) = Π_{j≠i} x_j / (x_j - x_i)
			l := byte(1)
			for j, sj := range shares {
				if j != i {
					l = refMul(l, refMul(sj.X, refInv(sj.X^si.X)))
				}
			}
			acc ^= refMul(l, si.Y[b])
		}
		out[b] = acc
	}
	return out
}

func TestReferenceTables(t *testing.T) {
	// Spot checks of the 0x11D field: 2^8 = 0x1D, 0x80·2 = 0x1D, and
	// every non-zero element has an inverse.
	if refMul(0x80, 2) != 0x1D || gfMul(0x80, 2) != 0x1D {
		t.Fatal("wrong reduction polynomial")
	}
	for a := 1; a < 256; a++ {
		if refMul(byte(a), refInv(byte(a))) != 1 {
			t.Fatalf("inverse of %d", a)
		}
		for b := 0; b < 256; b++ {
			if refMul(byte(a), byte(b)) != gfMul(byte(a), byte(b)) {
				t.Fatalf("gfMul(%d,%d) disagrees with reference", a, b)
			}
		}
	}
}
