// Package sss implements Shamir k-of-n secret sharing over GF(2^8), byte
// for byte compatible with libgfshare (Debian's gfsplit and gfcombine),
// at memory speed.
//
// # Overview
//
// A secret of any length is split into n shares, each as long as the
// secret and tagged with a distinct non-zero x coordinate (1..255). Any k
// of them recover the secret; k−1 or fewer reveal nothing about it (every
// secret of that length is equally consistent with them). Each secret
// byte s gets its own random polynomial p(t) = s + a₁t + … + a_{k−1}t^{k−1}
// and share x holds p(x).
//
// One-shot functions work on byte slices:
//
//	shares, err := sss.Split(secret, 3, 5) // x = 1..5
//	secret, err := sss.Combine(shares[2:]) // any 3 (or more) shares
//
// SplitX chooses the x coordinates. For repeated use without allocation,
// a Splitter (fixed k and xs) writes shares into caller buffers and a
// Combiner (fixed xs, Lagrange weights computed once) writes the secret
// into a caller buffer. NewSplitWriter and NewCombineReader do the same
// over io.Writer and io.Reader streams, one stream per share.
//
// Errors wrap the sentinels ErrInvalidThreshold, ErrInvalidX,
// ErrShareLength and ErrTooFewShares, for use with errors.Is.
//
// Combining fewer shares than the threshold does not fail: it silently
// yields random-looking bytes, because plain Shamir shares carry no
// redundancy to detect it. Callers must keep track of k and supply at
// least k shares (or add their own integrity check, such as a MAC or hash
// of the secret, to the secret itself).
//
// # Compatibility
//
// The field is GF(2^8) with reduction polynomial x⁸+x⁴+x³+x²+1 (0x11D)
// and generator 2, as in libgfshare. A share's bytes are exactly the
// content of the gfsplit output file STEM.NNN, where NNN is the share's x
// in three decimal digits (for example "secret.007"); gfcombine takes x
// from that suffix. Shares made here recover with gfcombine and shares
// made by gfsplit recover with Combine, for any secret length including
// zero (gfsplit picks random x coordinates; keep them). The tests check
// both directions against the real binaries when they are installed.
//
// Coefficients are drawn in libgfshare's layout: for each block of c
// secret bytes, (k−1)·c random bytes, the first c being the coefficients
// of t^(k−1) and the last c those of t¹. The block size is an
// implementation detail, so the shares produced from a given random
// stream (see WithRandom) are deterministic for a given version of this
// package only.
//
// # Security
//
// Shamir sharing is information-theoretically secure only if the
// coefficients are uniformly random and unpredictable. By default they
// come from AES-128 in CTR mode, computed by the standard library
// (crypto/aes with crypto/cipher's CTR stream; this package has no AES
// code of its own), with a fresh key and IV from crypto/rand per Splitter
// (and per one-shot call), re-keyed after 2³⁶ bytes; this is
// computationally indistinguishable from uniform. WithRandom substitutes
// another source: it must be a CSPRNG, and is meant for tests.
//
// Coefficient buffers are wiped at the end of each split, and a
// SplitWriter's buffers on Close; the GFNI kernels clear the vector
// registers that held coefficients or share data before they return. On
// amd64 with AVX-512 GFNI shares are computed with the GF2P8AFFINEQB
// instruction, elsewhere on amd64 (AVX2 or SSSE3) and on arm64 (NEON)
// with nibble-table shuffle instructions, and secrets
// (Combine) always with the latter; none of these has data-dependent
// timing. The last few bytes of each block (fewer than a vector), and
// everything on platforms without those instructions, go through memory
// lookup tables indexed by secret data, which a co-located attacker could
// observe through the cache. Shares are not authenticated: a malicious
// share holder can steer the combined secret to anything, undetectably.
//
// Concurrency: Split, SplitX and Combine, and a Combiner's methods, are
// safe for concurrent use. A Splitter, SplitWriter or CombineReader is
// not; use one per goroutine.
//
// # Performance
//
// Splitting is Reed–Solomon encoding: the k−1 random blocks and the
// secret are k data shards and share x is the row [x^(k−1), …, x, 1]
// applied to them. Combining is one linear combination of the shares with
// the Lagrange weights at 0, computed once per coordinate set (cached for
// the one-shot Combine). Both work over cache-sized blocks without
// allocating in steady state.
//
// A split must generate k−1 random bytes per secret byte, so the
// generator dominates: crypto/cipher's AES-128-CTR runs at about 11 GB/s
// per core with AES-NI. The shares are then computed by fused
// multiply-accumulate kernels (AVX-512 GFNI: one pass over each share
// block per group of up to four coefficient runs, the secret term needing
// no multiplication), or else by the SIMD GF(2^8) kernels of
// github.com/klauspost/reedsolomon (same 0x11D field), one pass per
// coefficient run. Combining always uses the latter.
//
// Measured on one core of an Intel Xeon (AVX-512, GFNI) with Go 1.26,
// 64 KiB secrets: split 3-of-5 ≈ 3.4–3.8 GB/s of secret, combine ≈ 17–22
// GB/s; about 104 and 1000 times the naive per-byte reference in the tests
// (BenchmarkSpeedup). On CPUs without AVX-512 GFNI split 3-of-5 runs at
// about 2.1 GB/s (BenchmarkSplitPortable). The build tag purego
// disables this package's assembly, and crypto/aes's as well, which makes
// the generator and so splitting far slower (split 3-of-5 ≈ 0.1 GB/s).
// "go test -bench . -cpu 1" in this package measures all of these beside
// the reference and the random generator alone (BenchmarkCSPRNG);
// BenchmarkSpeedup times the fast path and the reference alternately and
// reports their ratio.
package sss
