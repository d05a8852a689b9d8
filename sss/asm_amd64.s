//go:build amd64 && !purego

#include "textflag.h"

// AES-256 key expansion and CTR keystream (VAES, AVX-512), and GF(2^8)
// multiply-accumulate kernels (GFNI, AVX-512) for Splitter.Split. See
// asm_amd64.go for the Go declarations and the contracts.

// ctrSwap reverses bytes 8..15 of every 128-bit lane: the counter is kept
// as a little-endian qword and stored big-endian, as crypto/cipher's CTR.
DATA ctrSwap<>+0x00(SB)/8, $0x0706050403020100
DATA ctrSwap<>+0x08(SB)/8, $0x08090a0b0c0d0e0f
DATA ctrSwap<>+0x10(SB)/8, $0x0706050403020100
DATA ctrSwap<>+0x18(SB)/8, $0x08090a0b0c0d0e0f
DATA ctrSwap<>+0x20(SB)/8, $0x0706050403020100
DATA ctrSwap<>+0x28(SB)/8, $0x08090a0b0c0d0e0f
DATA ctrSwap<>+0x30(SB)/8, $0x0706050403020100
DATA ctrSwap<>+0x38(SB)/8, $0x08090a0b0c0d0e0f
GLOBL ctrSwap<>(SB), RODATA|NOPTR, $64

// ctrInc4 adds 4 to the counter qword of every lane (4 blocks per zmm).
DATA ctrInc4<>+0x00(SB)/8, $0
DATA ctrInc4<>+0x08(SB)/8, $4
DATA ctrInc4<>+0x10(SB)/8, $0
DATA ctrInc4<>+0x18(SB)/8, $4
DATA ctrInc4<>+0x20(SB)/8, $0
DATA ctrInc4<>+0x28(SB)/8, $4
DATA ctrInc4<>+0x30(SB)/8, $0
DATA ctrInc4<>+0x38(SB)/8, $4
GLOBL ctrInc4<>(SB), RODATA|NOPTR, $64

// prefixXor sets every 32-bit word w of X to the XOR of the words of X up
// to and including w (T is scratch).
#define prefixXor(X, T) \
	VPSLLDQ $4, X, T; \
	VPXOR   T, X, X; \
	VPSLLDQ $4, T, T; \
	VPXOR   T, X, X; \
	VPSLLDQ $4, T, T; \
	VPXOR   T, X, X

// expandEven derives the even round key in X1 from X1 and X3.
#define expandEven(RCON, OFF) \
	VAESKEYGENASSIST $RCON, X3, X2; \
	VPSHUFD $0xff, X2, X2; \
	prefixXor(X1, X4); \
	VPXOR   X2, X1, X1; \
	VMOVDQU X1, OFF(DX)

// expandOdd derives the odd round key in X3 from X3 and X1.
#define expandOdd(OFF) \
	VAESKEYGENASSIST $0, X1, X2; \
	VPSHUFD $0xaa, X2, X2; \
	prefixXor(X3, X4); \
	VPXOR   X2, X3, X3; \
	VMOVDQU X3, OFF(DX)

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

// func aes256ExpandKey(key *[32]byte, rk *[240]byte)
TEXT ·aes256ExpandKey(SB), NOSPLIT, $0-16
	MOVQ key+0(FP), AX
	MOVQ rk+8(FP), DX
	VMOVDQU (AX), X1
	VMOVDQU 16(AX), X3
	VMOVDQU X1, (DX)
	VMOVDQU X3, 16(DX)
	expandEven(0x01, 32)
	expandOdd(48)
	expandEven(0x02, 64)
	expandOdd(80)
	expandEven(0x04, 96)
	expandOdd(112)
	expandEven(0x08, 128)
	expandOdd(144)
	expandEven(0x10, 160)
	expandOdd(176)
	expandEven(0x20, 192)
	expandOdd(208)
	expandEven(0x40, 224)
	VPXOR X1, X1, X1
	VPXOR X2, X2, X2
	VPXOR X3, X3, X3
	VPXOR X4, X4, X4
	VZEROUPPER
	RET

#define round8(K) \
	VAESENC K, Z0, Z0; \
	VAESENC K, Z1, Z1; \
	VAESENC K, Z2, Z2; \
	VAESENC K, Z3, Z3; \
	VAESENC K, Z4, Z4; \
	VAESENC K, Z5, Z5; \
	VAESENC K, Z6, Z6; \
	VAESENC K, Z7, Z7

// nextCounter puts the next 4 counter blocks (big-endian) into Z.
#define nextCounter(Z) \
	VPSHUFB Z10, Z8, Z; \
	VPADDQ  Z9, Z8, Z8

// func aes256CTRKeystream(rk *[240]byte, ctr *[64]byte, dst *byte, n int)
TEXT ·aes256CTRKeystream(SB), NOSPLIT, $0-32
	MOVQ rk+0(FP), AX
	MOVQ ctr+8(FP), BX
	MOVQ dst+16(FP), DI
	MOVQ n+24(FP), CX
	VBROADCASTI32X4 0(AX), Z16
	VBROADCASTI32X4 16(AX), Z17
	VBROADCASTI32X4 32(AX), Z18
	VBROADCASTI32X4 48(AX), Z19
	VBROADCASTI32X4 64(AX), Z20
	VBROADCASTI32X4 80(AX), Z21
	VBROADCASTI32X4 96(AX), Z22
	VBROADCASTI32X4 112(AX), Z23
	VBROADCASTI32X4 128(AX), Z24
	VBROADCASTI32X4 144(AX), Z25
	VBROADCASTI32X4 160(AX), Z26
	VBROADCASTI32X4 176(AX), Z27
	VBROADCASTI32X4 192(AX), Z28
	VBROADCASTI32X4 208(AX), Z29
	VBROADCASTI32X4 224(AX), Z30
	VMOVDQU64 (BX), Z8
	VMOVDQU64 ctrInc4<>(SB), Z9
	VMOVDQU64 ctrSwap<>(SB), Z10

blocks32:
	CMPQ CX, $512
	JB   blocks4
	nextCounter(Z0)
	nextCounter(Z1)
	nextCounter(Z2)
	nextCounter(Z3)
	nextCounter(Z4)
	nextCounter(Z5)
	nextCounter(Z6)
	nextCounter(Z7)
	VPXORQ Z16, Z0, Z0
	VPXORQ Z16, Z1, Z1
	VPXORQ Z16, Z2, Z2
	VPXORQ Z16, Z3, Z3
	VPXORQ Z16, Z4, Z4
	VPXORQ Z16, Z5, Z5
	VPXORQ Z16, Z6, Z6
	VPXORQ Z16, Z7, Z7
	round8(Z17)
	round8(Z18)
	round8(Z19)
	round8(Z20)
	round8(Z21)
	round8(Z22)
	round8(Z23)
	round8(Z24)
	round8(Z25)
	round8(Z26)
	round8(Z27)
	round8(Z28)
	round8(Z29)
	VAESENCLAST Z30, Z0, Z0
	VAESENCLAST Z30, Z1, Z1
	VAESENCLAST Z30, Z2, Z2
	VAESENCLAST Z30, Z3, Z3
	VAESENCLAST Z30, Z4, Z4
	VAESENCLAST Z30, Z5, Z5
	VAESENCLAST Z30, Z6, Z6
	VAESENCLAST Z30, Z7, Z7
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)
	ADDQ $512, DI
	SUBQ $512, CX
	JMP  blocks32

blocks4:
	CMPQ CX, $64
	JB   done
	nextCounter(Z0)
	VPXORQ      Z16, Z0, Z0
	VAESENC     Z17, Z0, Z0
	VAESENC     Z18, Z0, Z0
	VAESENC     Z19, Z0, Z0
	VAESENC     Z20, Z0, Z0
	VAESENC     Z21, Z0, Z0
	VAESENC     Z22, Z0, Z0
	VAESENC     Z23, Z0, Z0
	VAESENC     Z24, Z0, Z0
	VAESENC     Z25, Z0, Z0
	VAESENC     Z26, Z0, Z0
	VAESENC     Z27, Z0, Z0
	VAESENC     Z28, Z0, Z0
	VAESENC     Z29, Z0, Z0
	VAESENCLAST Z30, Z0, Z0
	VMOVDQU64   Z0, (DI)
	ADDQ $64, DI
	SUBQ $64, CX
	JMP  blocks4

done:
	// Leave neither keystream nor round keys in the vector registers.
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z16, Z16, Z16
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VPXORQ Z23, Z23, Z23
	VPXORQ Z24, Z24, Z24
	VPXORQ Z25, Z25, Z25
	VPXORQ Z26, Z26, Z26
	VPXORQ Z27, Z27, Z27
	VPXORQ Z28, Z28, Z28
	VPXORQ Z29, Z29, Z29
	VPXORQ Z30, Z30, Z30
	VZEROUPPER
	RET

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
