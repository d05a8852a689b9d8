//go:build !amd64 || purego

package sss

// Without the amd64 assembly, the portable paths are always used.
var useGFNI = false

func gfniMulAdd1(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}

func gfniMulAdd2(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}

func gfniMulAdd4(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int) {
	panic("unreachable")
}
