package disperse

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"

	"github.com/braidnet/braid/internal/bufpool"
	"github.com/braidnet/braid/internal/wire"
)

// AONT-RS (Resch and Plank, "AONT-RS: Blending Security and Performance in Dispersed Storage
// Systems", FAST 2011), as mode aont:K/N makes it of one chunk of L bytes:
//
//	key     = 32 fresh random bytes
//	C       = AES-256-CTR(key, counter block 0)(chunk ‖ zeros ‖ canary)
//	package = C ‖ (SHA-256(C) XOR key)                                   K × s bytes
//
// cut into K shards of s bytes, then Reed–Solomon coded into N pieces. Whoever holds the whole
// package (K pieces) hashes C, unfolds the key and decrypts; whoever holds less lacks part of C,
// so its hash, so the key. The canary is the chunk's identity, known to the receiver: a package
// altered anywhere hashes to another key, and then the canary does not decrypt right.
//
// The padding that makes the package K equal shards is inside the encryption, not after it: K−1
// pieces leave exactly s bytes of the package undetermined (the code is MDS), and only if none of
// those bytes is a known zero is that s bytes of the attacker's uncertainty. A zero pad after
// the package could fill most of the last shard, leaving a few bytes to guess and the canary to
// confirm the guess. For the same reason s is at least AONTMinShard, so that even a tiny chunk
// leaves 256 bits to guess.
//
// The cipher is AES-256 in counter mode rather than ChaCha20 because it is in the standard
// library (ChaCha20 alone is not: it would add golang.org/x/crypto) and runs on the AES
// instructions of amd64 and arm64, the CPUs Braid runs on, at several GB/s; SHA-256 likewise uses
// the CPU's SHA extensions where there are any. Each key encrypts one chunk, so the fixed counter
// block is safe.

// Sizes of an aont package's parts beyond the chunk's bytes.
const (
	AONTKeySize = 32          // the chunk's AES-256 key, fresh per chunk
	CanarySize  = 20          // item id (64) ‖ chunk id (32) ‖ total (32) ‖ L (32), encrypted after the chunk
	DiffSize    = sha256.Size // the difference block: SHA-256 of the ciphertext XOR the key

	// AONTMinShard is the least shard (piece) length: what K−1 pieces leave undetermined of a
	// package is one shard's worth, and 32 bytes of it are as hard to guess as the key.
	AONTMinShard = 32

	aontOverhead = CanarySize + DiffSize
)

// aontPad is the number of zero bytes encrypted between a chunk of length bytes and its canary,
// for shards of s bytes: what fills the package to K × s.
func (m Mode) aontPad(length, s int) int { return m.K*s - length - aontOverhead }

// canary returns the known plaintext an aont package ends its ciphertext with: the chunk's
// identity, so that a package moved to another chunk does not verify either.
func canary(h wire.ChunkHeader, length int) [CanarySize]byte {
	var c [CanarySize]byte
	binary.BigEndian.PutUint64(c[0:], h.Item)
	binary.BigEndian.PutUint32(c[8:], h.Chunk)
	binary.BigEndian.PutUint32(c[12:], h.Total)
	binary.BigEndian.PutUint32(c[16:], uint32(length))
	return c
}

// newCTR returns AES-256-CTR keyed with key, counter block zero.
func newCTR(key []byte) (cipher.Stream, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var iv [aes.BlockSize]byte
	return cipher.NewCTR(block, iv[:]), nil
}

// spread addresses a package laid out across K data shards of s bytes each.
type spread struct {
	shards [][]byte
	s      int
}

// seg returns the package bytes from off up to end, or as many of them as lie in one shard.
func (p spread) seg(off, end int) []byte {
	j := off / p.s
	o := off - j*p.s
	return p.shards[j][o : o+min(p.s-o, end-off)]
}

// each calls fn with the package bytes from off to end, shard by shard, in order.
func (p spread) each(off, end int, fn func(seg []byte)) {
	for off < end {
		seg := p.seg(off, end)
		fn(seg)
		off += len(seg)
	}
}

// encrypt writes src, encrypted with stream, into the package at off, and hashes what it wrote.
func (p spread) encrypt(stream cipher.Stream, hs hash.Hash, off int, src []byte) {
	p.each(off, off+len(src), func(seg []byte) {
		n := len(seg)
		stream.XORKeyStream(seg, src[:n])
		hs.Write(seg)
		src = src[n:]
	})
}

// decrypt reads the package from off into dst, decrypting it with stream.
func (p spread) decrypt(stream cipher.Stream, off int, dst []byte) {
	p.each(off, off+len(dst), func(seg []byte) {
		n := len(seg)
		stream.XORKeyStream(dst[:n], seg)
		dst = dst[n:]
	})
}

// encodeAONT is Encode in mode aont: it writes the package straight into the data shards of the
// pieces (buf is only read) and computes the parity shards.
func (c *Codec) encodeAONT(h wire.ChunkHeader, buf []byte, length int, pieces [][]byte) error {
	var key [AONTKeySize]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	defer clear(key[:])
	stream, err := newCTR(key[:])
	if err != nil {
		return err
	}
	k, s := c.mode.K, c.shardSize(length)
	for j := range c.shards {
		c.shards[j] = pieces[j][:s]
	}
	p := spread{shards: c.shards[:k], s: s}
	c.hash.Reset()
	cn := canary(h, length)
	p.encrypt(stream, c.hash, 0, buf[:length])
	pad := c.mode.aontPad(length, s)
	p.each(length, length+pad, func(seg []byte) {
		clear(seg)
		stream.XORKeyStream(seg, seg)
		c.hash.Write(seg)
	})
	p.encrypt(stream, c.hash, length+pad, cn[:])
	var diff [DiffSize]byte
	c.hash.Sum(diff[:0])
	subtle.XORBytes(diff[:], diff[:], key[:])
	cend := k*s - DiffSize
	off := cend
	p.each(cend, k*s, func(seg []byte) {
		copy(seg, diff[off-cend:])
		off += len(seg)
	})
	if c.mode.N > k {
		c.rsMu.Lock()
		err := c.rs.Encode(c.shards)
		c.rsMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// tryAONT rebuilds the package from the pieces use, unfolds its key, decrypts the chunk into dst
// and reports whether the canary came out right.
func (c *Codec) tryAONT(h wire.ChunkHeader, length int, pieces [][]byte, use []int, dst []byte) (bool, error) {
	k, s := c.mode.K, c.shardSize(length)
	shards := make([][]byte, c.mode.N)
	for _, j := range use {
		shards[j] = pieces[j]
	}
	var scratch [][]byte
	for j := range k {
		if shards[j] == nil {
			b := bufpool.Get(s)
			scratch = append(scratch, b)
			shards[j] = b[:0] // Reed–Solomon rebuilds into the room given
		}
	}
	defer func() {
		for _, b := range scratch {
			bufpool.Put(b)
		}
	}()
	if scratch != nil {
		c.rsMu.Lock()
		err := c.rs.ReconstructData(shards)
		c.rsMu.Unlock()
		if err != nil {
			return false, err
		}
	}
	p := spread{shards: shards[:k], s: s}
	hs := sha256.New()
	cend := k*s - DiffSize
	p.each(0, cend, func(seg []byte) { hs.Write(seg) })
	var key [AONTKeySize]byte
	hs.Sum(key[:0])
	defer clear(key[:])
	off := cend
	p.each(cend, cend+DiffSize, func(seg []byte) {
		subtle.XORBytes(key[off-cend:], key[off-cend:], seg)
		off += len(seg)
	})
	stream, err := newCTR(key[:])
	if err != nil {
		return false, err
	}
	p.decrypt(stream, 0, dst[:length])
	// What follows the chunk must decrypt to the zero pad and the canary.
	var tailArr, wantArr [256]byte
	n := cend - length
	tail, want := tailArr[:0], wantArr[:0]
	if n <= len(tailArr) {
		tail, want = tailArr[:n], wantArr[:n]
	} else {
		tail, want = make([]byte, n), make([]byte, n)
	}
	p.decrypt(stream, length, tail)
	cn := canary(h, length)
	copy(want[len(want)-CanarySize:], cn[:])
	return subtle.ConstantTimeCompare(tail, want) == 1, nil
}
