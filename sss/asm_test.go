package sss

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"testing"
)

// TestCTRMatchesStdlib checks the VAES keystream generator against
// crypto/cipher's AES-256-CTR with the same key and IV, across call
// boundaries, partial groups and a carry out of the low 32 counter bits.
func TestCTRMatchesStdlib(t *testing.T) {
	if !useVAES {
		t.Skip("no VAES/AVX-512 on this CPU (or purego build)")
	}
	var key [32]byte
	for i := range key {
		key[i] = byte(i*37 + 11)
	}
	nonce := [8]byte{0xf0, 1, 2, 3, 4, 5, 6, 0xff}
	for _, start := range []uint64{0, 1, 1<<32 - 5, 1<<63 - 1000} {
		var g ctrRand
		g.setKey(&key, nonce, start)
		block, err := aes.NewCipher(key[:])
		if err != nil {
			t.Fatal(err)
		}
		var iv [16]byte
		copy(iv[:], nonce[:])
		binary.BigEndian.PutUint64(iv[8:], start)
		want := cipher.NewCTR(block, iv[:])
		for _, n := range []int{64, 512, 0, 576, 4096 + 64*3, 1, 100, 63, 8192, 65} {
			got := make([]byte, n)
			g.fill(got)
			// A partial final group consumes a whole 4-block group.
			consumed := (n + 63) &^ 63
			exp := make([]byte, consumed)
			want.XORKeyStream(exp, exp)
			if !bytes.Equal(got, exp[:n]) {
				t.Fatalf("start %d, fill(%d): keystream differs from crypto/cipher", start, n)
			}
		}
	}
}

// TestCTRRekey checks that the generator re-keys after ctrRekeyBytes.
func TestCTRRekey(t *testing.T) {
	for _, vaes := range asmModes() {
		t.Run(vaes.name, func(t *testing.T) {
			defer vaes.set()()
			g := newCTRRand()
			a := make([]byte, 64)
			g.fill(a)
			g.used = ctrRekeyBytes - 10
			rk, stream := g.rk, g.stream
			g.fill(make([]byte, 64))
			if g.used != 64 || (g.rk == rk && g.stream == stream) {
				t.Fatalf("no re-key: used=%d", g.used)
			}
		})
	}
}

type asmMode struct {
	name string
	set  func() (restore func())
}

// asmModes returns the code paths to test: the portable one and, when
// the CPU has them, the assembly ones.
func asmModes() []asmMode {
	modes := []asmMode{{"portable", func() func() {
		v, g := useVAES, useGFNI
		useVAES, useGFNI = false, false
		return func() { useVAES, useGFNI = v, g }
	}}}
	if useVAES || useGFNI {
		modes = append(modes, asmMode{"asm", func() func() { return func() {} }})
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
