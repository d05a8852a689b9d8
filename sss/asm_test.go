package sss

import (
	"bytes"
	"testing"
)

type asmMode struct {
	name string
	set  func() (restore func())
}

// asmModes returns the code paths to test: the portable one and, when
// the CPU has AVX-512 GFNI (and the build is not purego), the GFNI one.
func asmModes() []asmMode {
	modes := []asmMode{{"portable", func() func() {
		g := useGFNI
		useGFNI = false
		return func() { useGFNI = g }
	}}}
	if useGFNI {
		modes = append(modes, asmMode{"gfni", func() func() { return func() {} }})
	}
	return modes
}

// TestGFNIKernels checks each kernel on every multiplier against gfMul,
// for both the secret-based first pass and the accumulating passes.
func TestGFNIKernels(t *testing.T) {
	if !useGFNI {
		t.Skip("no GFNI/AVX-512 on this CPU (or purego build)")
	}
	kernels := []struct {
		r int
		f func(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)
	}{{1, gfniMulAdd1}, {2, gfniMulAdd2}, {4, gfniMulAdd4}}
	const size, off, cstride = 384, 64, 320
	for _, kern := range kernels {
		for _, chunks := range []int{1, 2, 3, 4} {
			n := 64 * chunks
			// 256 outputs: output i multiplies every row by byte(i+row).
			mats := make([]uint64, 256*kern.r)
			for i := range 256 {
				for j := range kern.r {
					mats[i*kern.r+j] = gfniMatrix(byte(i + 31*j))
				}
			}
			coef := make([]byte, kern.r*cstride)
			for b := range coef {
				coef[b] = byte(b*13 + 7)
			}
			base := make([]byte, n)
			for b := range base {
				base[b] = byte(b * 5)
			}
			outs := make([][]byte, 256)
			for i := range outs {
				outs[i] = make([]byte, size)
				for b := range outs[i] {
					outs[i][b] = byte(i ^ b)
				}
			}
			for _, fromBase := range []bool{true, false} {
				want := make([][]byte, len(outs))
				for i := range outs {
					want[i] = append([]byte(nil), outs[i]...)
					for b := range n {
						y := outs[i][off+b]
						if fromBase {
							y = base[b]
						}
						for j := range kern.r {
							y ^= gfMul(byte(i+31*j), coef[j*cstride+b])
						}
						want[i][off+b] = y
					}
				}
				var bp *byte
				if fromBase {
					bp = &base[0]
				}
				kern.f(&mats[0], 8*kern.r, outs, off, bp, &coef[0], cstride, n)
				for i := range outs {
					if !bytes.Equal(outs[i], want[i]) {
						t.Fatalf("gfniMulAdd%d, n=%d, base=%v: output %d wrong", kern.r, n, fromBase, i)
					}
				}
			}
		}
	}
}
