//go:build !amd64 || purego

package sss

// Without the amd64 assembly, the portable paths are always used.
var useVAES, useGFNI = false, false

func aes256ExpandKey(key *[32]byte, rk *[240]byte) { panic("unreachable") }

func aes256CTRKeystream(rk *[240]byte, ctr *[64]byte, dst *byte, n int) { panic("unreachable") }

func gfniMulAdd1(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}

func gfniMulAdd2(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}

func gfniMulAdd4(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}
