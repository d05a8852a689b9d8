//go:build amd64 && !purego

package sss

import "golang.org/x/sys/cpu"

// useGFNI selects the AVX-512 GFNI split kernels (asm_amd64.s) over the
// reedsolomon nibble-table kernels, when the CPU supports them. Tests
// switch it off to exercise the portable path as well.
var useGFNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512GFNI

// gfniMulAdd1, gfniMulAdd2 and gfniMulAdd4 compute, for each output i and
// each byte b < n (n a positive multiple of 64),
//
//	outs[i][off+b] = base_i[b] ⊕ Σ_{j<r} M_ij · coef[j·cstride+b]
//
// for r = 1, 2, 4 coefficient rows, where M_ij is the GF2P8AFFINEQB
// matrix at mats[i·mstride/8+j] and base_i is base, or outs[i][off:] when
// base is nil. The caller guarantees all bounds.
//
//go:noescape
func gfniMulAdd1(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)

//go:noescape
func gfniMulAdd2(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)

//go:noescape
func gfniMulAdd4(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)
