//go:build amd64 && !purego

package sss

import "golang.org/x/sys/cpu"

// Assembly fast paths (asm_amd64.s), used when the CPU supports them.
// Tests switch them off to exercise the portable paths as well.
var (
	// useVAES selects the AVX-512 VAES AES-256-CTR generator (4 blocks
	// per instruction) over crypto/cipher's CTR stream.
	useVAES = cpu.X86.HasAES && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VAES

	// useGFNI selects the AVX-512 GFNI split kernels over the
	// reedsolomon nibble-table kernels.
	useGFNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512GFNI
)

// aes256ExpandKey writes the 15 AES-256 encryption round keys for key to
// rk (AES-NI key-generation instructions: no data-dependent lookups).
//
//go:noescape
func aes256ExpandKey(key *[32]byte, rk *[240]byte)

// aes256CTRKeystream writes n bytes of AES-256-CTR keystream to dst; n
// must be a multiple of 64. ctr holds the first four counter blocks, each
// as the 8 nonce bytes followed by the block number as a little-endian
// uint64; the block number must not wrap within n/16 blocks. Blocks are
// encrypted with the block number big-endian, as crypto/cipher's CTR
// does with that IV.
//
//go:noescape
func aes256CTRKeystream(rk *[240]byte, ctr *[64]byte, dst *byte, n int)

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
