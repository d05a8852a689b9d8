package sss

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

// Option configures a Splitter, SplitWriter or the one-shot Split
// functions.
type Option func(*config)

type config struct {
	random io.Reader
}

// WithRandom makes the split draw its polynomial coefficients from r
// instead of the default AES-256-CTR generator keyed from crypto/rand.
//
// r must be a cryptographically secure source: anyone who can predict
// its output can recover the secret from a single share. The option
// exists for tests (deterministic streams) and for callers with their own
// vetted generator. A nil r selects the default generator.
func WithRandom(r io.Reader) Option {
	return func(c *config) { c.random = r }
}

func buildConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// zeroBlock is an all-zero, read-only source for producing raw keystream
// with XORKeyStream. Shared by all goroutines; never written.
var zeroBlock [32 << 10]byte

// ctrRekeyBytes bounds how much keystream one AES key produces before the
// generator re-keys from crypto/rand (2^36 bytes = 2^32 blocks, keeping
// the PRP/PRF distinguishing advantage below 2^-64).
const ctrRekeyBytes = 1 << 36

// ctrRand is a fast CSPRNG: AES-256 in CTR mode with a random key and IV
// from crypto/rand, producing keystream in bulk. It is not safe for
// concurrent use.
//
// With useVAES the keystream comes from aes256CTRKeystream, four blocks
// per instruction; the IV is then 8 random nonce bytes followed by a
// 64-bit big-endian block counter starting at 0, which the re-keying bound
// keeps far from wrapping. Otherwise crypto/cipher's CTR stream is used
// with a fully random 16-byte IV. Either way the output is AES-256-CTR
// keystream under a fresh random key.
type ctrRand struct {
	stream cipher.Stream // portable path
	rk     [240]byte     // VAES path: expanded key
	nonce  [8]byte       // VAES path: first half of every counter block
	block  uint64        // VAES path: next block number
	used   int64
}

func newCTRRand() *ctrRand {
	g := &ctrRand{}
	g.rekey()
	return g
}

func (g *ctrRand) rekey() {
	var seed [32 + aes.BlockSize]byte
	// crypto/rand.Read never returns an error on supported platforms
	// (it crashes the program irrecoverably instead).
	_, _ = rand.Read(seed[:])
	if useVAES {
		g.setKey((*[32]byte)(seed[:32]), [8]byte(seed[32:40]), 0)
	} else {
		block, err := aes.NewCipher(seed[:32])
		if err != nil {
			panic(fmt.Sprintf("sss: aes.NewCipher: %v", err)) // unreachable: the key length is fixed
		}
		g.stream = cipher.NewCTR(block, seed[32:])
	}
	clear(seed[:])
	g.used = 0
}

// setKey installs key and IV nonce‖block for the VAES path.
func (g *ctrRand) setKey(key *[32]byte, nonce [8]byte, block uint64) {
	aes256ExpandKey(key, &g.rk)
	g.nonce = nonce
	g.block = block
	g.stream = nil
}

// fill overwrites b with fresh keystream.
func (g *ctrRand) fill(b []byte) {
	if g.used+int64(len(b)) > ctrRekeyBytes {
		g.rekey()
	}
	g.used += int64(len(b))
	if g.stream == nil {
		g.vaesFill(b)
		return
	}
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		g.stream.XORKeyStream(b[:n], zeroBlock[:n])
		b = b[n:]
	}
}

// vaesFill writes keystream straight into b, 64 bytes (4 blocks) at a
// time; the keystream beyond a final partial group is discarded.
func (g *ctrRand) vaesFill(b []byte) {
	var ctr [64]byte
	if n := len(b) &^ 63; n > 0 {
		g.counters(&ctr)
		aes256CTRKeystream(&g.rk, &ctr, &b[0], n)
		g.block += uint64(n / aes.BlockSize)
		b = b[n:]
	}
	if len(b) > 0 {
		var tmp [64]byte
		g.counters(&ctr)
		aes256CTRKeystream(&g.rk, &ctr, &tmp[0], len(tmp))
		g.block += 4
		copy(b, tmp[:])
		clear(tmp[:])
	}
}

// counters sets ctr to the next four counter blocks in the layout
// aes256CTRKeystream expects.
func (g *ctrRand) counters(ctr *[64]byte) {
	for l := range 4 {
		copy(ctr[16*l:], g.nonce[:])
		binary.LittleEndian.PutUint64(ctr[16*l+8:], g.block+uint64(l))
	}
}

// Read implements io.Reader; it always fills p completely.
func (g *ctrRand) Read(p []byte) (int, error) {
	g.fill(p)
	return len(p), nil
}
