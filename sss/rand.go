package sss

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
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
// instead of the default AES-128-CTR generator keyed from crypto/rand.
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

// ctrKeySize is the generator's AES key size: AES-128.
const ctrKeySize = 16

// ctrRand is a fast CSPRNG: AES-128 in CTR mode (the standard library's
// crypto/aes and crypto/cipher) with a random key and IV from
// crypto/rand, producing keystream in bulk, up to len(zeroBlock) bytes
// per XORKeyStream call. It is not safe for concurrent use.
type ctrRand struct {
	stream cipher.Stream
	used   int64
}

func newCTRRand() *ctrRand {
	g := &ctrRand{}
	g.rekey()
	return g
}

func (g *ctrRand) rekey() {
	// AES-128: a 128-bit security level, as much as the rest of the system offers, and 40%
	// more keystream per second than AES-256 (fewer rounds), which is most of Split's cost.
	var seed [ctrKeySize + aes.BlockSize]byte
	// crypto/rand.Read never returns an error on supported platforms
	// (it crashes the program irrecoverably instead).
	_, _ = rand.Read(seed[:])
	block, err := aes.NewCipher(seed[:ctrKeySize])
	if err != nil {
		panic(fmt.Sprintf("sss: aes.NewCipher: %v", err)) // unreachable: the key length is fixed
	}
	g.stream = cipher.NewCTR(block, seed[ctrKeySize:])
	clear(seed[:])
	g.used = 0
}

// fill overwrites b with fresh keystream.
func (g *ctrRand) fill(b []byte) {
	if g.used+int64(len(b)) > ctrRekeyBytes {
		g.rekey()
	}
	g.used += int64(len(b))
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		g.stream.XORKeyStream(b[:n], zeroBlock[:n])
		b = b[n:]
	}
}

// Read implements io.Reader; it always fills p completely.
func (g *ctrRand) Read(p []byte) (int, error) {
	g.fill(p)
	return len(p), nil
}
