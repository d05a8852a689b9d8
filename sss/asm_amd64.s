//go:build amd64 && !purego

#include "textflag.h"

// GF(2^8) multiply-accumulate kernels (GFNI, AVX-512) for
// Splitter.Split. See asm_amd64.go for the Go declarations and the
// contracts.

// gfniSetup loads the arguments common to all kernels.
#define gfniSetup \
	MOVQ mats+0(FP), AX; \
	MOVQ outs_base+16(FP), BX; \
	MOVQ outs_len+24(FP), R8; \
	MOVQ coef+56(FP), SI; \
	MOVQ cstride+64(FP), DX; \
	MOVQ n+72(FP), CX

// gfniOutput points DI at the current output and R10 at its base, and
// clears the byte index.
#define gfniOutput \
	MOVQ  (BX), DI; \
	ADDQ  off+40(FP), DI; \
	MOVQ  base+48(FP), R10; \
	TESTQ R10, R10; \
	CMOVQEQ DI, R10; \
	XORQ  R11, R11

// gfniNext advances to the next output; jumps to L while any remain.
#define gfniNext(L) \
	ADDQ mstride+8(FP), AX; \
	ADDQ $24, BX; \
	DECQ R8; \
	JNZ  L

// The gfniMulAdd kernels compute, for every output i (0 ≤ i < len(outs))
// and every byte b < n,
//
//	outs[i][off+b] = base_i[b] ⊕ Σ_{j<r} M[i][j] · coef[j·cstride+b]
//
// where r is 1, 2 or 4, M[i][j] is the 8×8 bit matrix (GF2P8AFFINEQB
// form) at mats[i·mstride/8 + j], and base_i is base, or outs[i][off:]
// itself when base is nil. n must be a positive multiple of 64.
//
// Arguments (all kernels):
//	mats+0(FP) mstride+8(FP) outs_base+16(FP) outs_len+24(FP)
//	outs_cap+32(FP) off+40(FP) base+48(FP) coef+56(FP) cstride+64(FP)
//	n+72(FP)
//
// Registers: AX matrices of the current output, BX slice header of the
// current output, R8 outputs left, CX n, R11 byte index, DI output,
// R10 base, SI/R9/R12/R13 coefficient rows, DX cstride, R15 unused.

// func gfniMulAdd1(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)
TEXT ·gfniMulAdd1(SB), NOSPLIT, $0-80
	gfniSetup
	TESTQ R8, R8
	JZ    done1

output1:
	VPBROADCASTQ (AX), Z16
	gfniOutput
	TESTQ $64, CX
	JZ    pair1
	VMOVDQU64      (SI), Z0
	VGF2P8AFFINEQB $0, Z16, Z0, Z0
	VPXORQ         (R10), Z0, Z0
	VMOVDQU64      Z0, (DI)
	MOVQ           $64, R11
	CMPQ           R11, CX
	JAE            next1

pair1:
	VMOVDQU64      (SI)(R11*1), Z0
	VMOVDQU64      64(SI)(R11*1), Z4
	VGF2P8AFFINEQB $0, Z16, Z0, Z0
	VGF2P8AFFINEQB $0, Z16, Z4, Z4
	VPXORQ         (R10)(R11*1), Z0, Z0
	VPXORQ         64(R10)(R11*1), Z4, Z4
	VMOVDQU64      Z0, (DI)(R11*1)
	VMOVDQU64      Z4, 64(DI)(R11*1)
	ADDQ           $128, R11
	CMPQ           R11, CX
	JB             pair1

next1:
	gfniNext(output1)

done1:
	VPXORQ Z0, Z0, Z0
	VPXORQ Z4, Z4, Z4
	VZEROUPPER
	RET

// func gfniMulAdd2(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)
TEXT ·gfniMulAdd2(SB), NOSPLIT, $0-80
	gfniSetup
	LEAQ  (SI)(DX*1), R9
	TESTQ R8, R8
	JZ    done2

output2:
	VPBROADCASTQ (AX), Z16
	VPBROADCASTQ 8(AX), Z17
	gfniOutput
	TESTQ $64, CX
	JZ    pair2
	VMOVDQU64      (SI), Z0
	VMOVDQU64      (R9), Z1
	VGF2P8AFFINEQB $0, Z16, Z0, Z0
	VGF2P8AFFINEQB $0, Z17, Z1, Z1
	VPTERNLOGQ     $0x96, (R10), Z1, Z0
	VMOVDQU64      Z0, (DI)
	MOVQ           $64, R11
	CMPQ           R11, CX
	JAE            next2

pair2:
	VMOVDQU64      (SI)(R11*1), Z0
	VMOVDQU64      (R9)(R11*1), Z1
	VMOVDQU64      64(SI)(R11*1), Z4
	VMOVDQU64      64(R9)(R11*1), Z5
	VGF2P8AFFINEQB $0, Z16, Z0, Z0
	VGF2P8AFFINEQB $0, Z17, Z1, Z1
	VGF2P8AFFINEQB $0, Z16, Z4, Z4
	VGF2P8AFFINEQB $0, Z17, Z5, Z5
	VPTERNLOGQ     $0x96, (R10)(R11*1), Z1, Z0
	VPTERNLOGQ     $0x96, 64(R10)(R11*1), Z5, Z4
	VMOVDQU64      Z0, (DI)(R11*1)
	VMOVDQU64      Z4, 64(DI)(R11*1)
	ADDQ           $128, R11
	CMPQ           R11, CX
	JB             pair2

next2:
	gfniNext(output2)

done2:
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VZEROUPPER
	RET

// func gfniMulAdd4(mats *uint64, mstride int, outs [][]byte, off int, base, coef *byte, cstride, n int)
TEXT ·gfniMulAdd4(SB), NOSPLIT, $0-80
	gfniSetup
	LEAQ  (SI)(DX*1), R9
	LEAQ  (R9)(DX*1), R12
	LEAQ  (R12)(DX*1), R13
	TESTQ R8, R8
	JZ    done4

output4:
	VPBROADCASTQ (AX), Z16
	VPBROADCASTQ 8(AX), Z17
	VPBROADCASTQ 16(AX), Z18
	VPBROADCASTQ 24(AX), Z19
	gfniOutput

loop4:
	VMOVDQU64      (SI)(R11*1), Z0
	VMOVDQU64      (R9)(R11*1), Z1
	VMOVDQU64      (R12)(R11*1), Z2
	VMOVDQU64      (R13)(R11*1), Z3
	VGF2P8AFFINEQB $0, Z16, Z0, Z0
	VGF2P8AFFINEQB $0, Z17, Z1, Z1
	VGF2P8AFFINEQB $0, Z18, Z2, Z2
	VGF2P8AFFINEQB $0, Z19, Z3, Z3
	VPTERNLOGQ     $0x96, (R10)(R11*1), Z1, Z0
	VPTERNLOGQ     $0x96, Z3, Z2, Z0
	VMOVDQU64      Z0, (DI)(R11*1)
	ADDQ           $64, R11
	CMPQ           R11, CX
	JB             loop4
	gfniNext(output4)

done4:
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VZEROUPPER
	RET
