package disperse

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/braidnet/braid/sss"
	"github.com/klauspost/reedsolomon"

	"github.com/braidnet/braid/internal/wire"
)

// Sizes of a coded chunk's integrity material.
const (
	KeySize = 16 // the chunk's AES-128 GMAC key, fresh per chunk, secret-shared K-of-N
	TagSize = 16 // GMAC of the chunk's header fields and payload
)

// Errors of Decode.
var (
	// ErrIntegrity: no set of K pieces tried rebuilt a chunk whose tag (in aont, canary) verifies — a piece was
	// corrupted or forged.
	ErrIntegrity = errors.New("disperse: integrity check failed")
	// ErrTooFewPieces: fewer than K pieces were given.
	ErrTooFewPieces = errors.New("disperse: fewer than K pieces")
)

// maxAttempts bounds the sets of K pieces Decode tries before it gives up: with one bad piece
// among N, a handful suffice; trying every one of C(N, K) sets could take forever.
const maxAttempts = 64

// Codec turns chunks into pieces and back for one coded mode. Encode must not be called
// concurrently (a session's sends are serialised); Decode may be.
type Codec struct {
	mode     Mode
	split    *sss.Splitter // the whole secret (shamir) or the key alone (erasure); Encode only
	rs       reedsolomon.Encoder
	rsMu     sync.Mutex // serialises the Reed–Solomon encoder, which does not promise concurrent use
	combMu   sync.Mutex
	combs    map[string]*sss.Combiner // by the x coordinates of a K-set
	keyShare [][]byte                 // Encode scratch (erasure)
	shards   [][]byte                 // Encode scratch (aont)
	hash     hash.Hash                // Encode scratch (aont): SHA-256
}

// New returns a Codec for a coded mode.
func New(m Mode) (*Codec, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if !m.Coded() {
		return nil, fmt.Errorf("%w: %s makes no pieces", ErrBadMode, m)
	}
	c := &Codec{mode: m, combs: make(map[string]*sss.Combiner)}
	var err error
	if m.Kind != Shamir {
		if c.rs, err = reedsolomon.New(m.K, m.N-m.K); err != nil {
			return nil, err
		}
	}
	switch m.Kind {
	case AONT:
		c.shards, c.hash = make([][]byte, m.N), sha256.New()
		return c, nil // no Shamir: the package holds its key
	case Erasure:
		c.keyShare = make([][]byte, m.N)
	}
	if c.split, err = sss.NewSplitter(m.K, sss.SeqX(m.N)); err != nil {
		return nil, err
	}
	return c, nil
}

// Mode returns the codec's mode.
func (c *Codec) Mode() Mode { return c.mode }

// shardSize is the erasure shard length for a chunk of length bytes.
func (c *Codec) shardSize(length int) int { return c.mode.shardSize(length) }

// PieceSize returns the length of each piece of a chunk of length payload bytes.
func (c *Codec) PieceSize(length int) int { return c.mode.PieceSize(length) }

// BufferSize returns the capacity Encode needs in the buffer holding a chunk of length bytes.
func (c *Codec) BufferSize(length int) int {
	switch c.mode.Kind {
	case Shamir:
		return length + TagSize + KeySize
	case AONT:
		return length // Encode writes the package into the pieces
	}
	return c.mode.K * c.shardSize(length)
}

// tag computes the chunk's GMAC — AES-128-GCM authenticating, and encrypting nothing — over its
// identity and payload. The key is used for this one chunk only, so a fixed nonce is safe.
func tag(key []byte, h wire.ChunkHeader, length int, payload []byte, out []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[0:], h.Item)
	binary.BigEndian.PutUint32(nonce[8:], h.Chunk)
	// The payload is the authenticated data; the rest of the chunk's identity is the (encrypted,
	// and so authenticated) plaintext, whose ciphertext is dropped.
	var id [8]byte
	binary.BigEndian.PutUint32(id[0:], h.Total)
	binary.BigEndian.PutUint32(id[4:], uint32(length))
	var sealed [len(id) + TagSize]byte
	copy(out[:TagSize], gcm.Seal(sealed[:0], nonce[:], id[:], payload)[len(id):])
	return nil
}

// Encode makes the N pieces of the chunk h whose payload is buf[:length]. buf must have capacity
// BufferSize(length); Encode uses the room after the payload. pieces[j] receives piece j and must
// have length PieceSize(length).
func (c *Codec) Encode(h wire.ChunkHeader, buf []byte, length int, pieces [][]byte) error {
	if len(pieces) != c.mode.N || cap(buf) < c.BufferSize(length) {
		return fmt.Errorf("disperse: Encode needs %d pieces and a %d-byte buffer", c.mode.N, c.BufferSize(length))
	}
	ps := c.PieceSize(length)
	for j, p := range pieces {
		if len(p) != ps {
			return fmt.Errorf("disperse: piece %d has %d bytes, want %d", j, len(p), ps)
		}
	}
	if c.mode.Kind == AONT {
		return c.encodeAONT(h, buf, length, pieces)
	}
	buf = buf[:c.BufferSize(length)]
	var key [KeySize]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	defer clear(key[:])
	if c.mode.Kind == Shamir {
		// secret = payload ‖ tag ‖ key, split whole: each piece is one share of it.
		secret := buf[:length+TagSize+KeySize]
		if err := tag(key[:], h, length, buf[:length], secret[length:length+TagSize]); err != nil {
			return err
		}
		copy(secret[length+TagSize:], key[:])
		err := c.split.Split(pieces, secret)
		clear(secret[length:])
		return err
	}
	// data = payload ‖ tag ‖ zero padding, cut into K shards; N−K parity shards; each piece also
	// carries its share of the key.
	s := c.shardSize(length)
	if err := tag(key[:], h, length, buf[:length], buf[length:length+TagSize]); err != nil {
		return err
	}
	clear(buf[length+TagSize:])
	shards := make([][]byte, c.mode.N)
	for j := range shards {
		shards[j] = pieces[j][:s]
		if j < c.mode.K {
			copy(shards[j], buf[j*s:(j+1)*s])
		}
		c.keyShare[j] = pieces[j][s:]
	}
	if c.mode.N > c.mode.K {
		c.rsMu.Lock()
		err := c.rs.Encode(shards)
		c.rsMu.Unlock()
		if err != nil {
			return err
		}
	}
	return c.split.Split(c.keyShare, key[:])
}

// Result tells how Decode rebuilt a chunk.
type Result struct {
	Used     []int // the pieces the chunk was rebuilt from
	Failed   int   // sets of K pieces whose tag did not verify before one did
	Suspects []int // pieces in every failing set (or, if none is, in any) but not in the one that verified
}

// Decode rebuilds the chunk h of length payload bytes into dst (which must have length bytes)
// from pieces, indexed by piece number, nil where absent. It tries sets of K pieces, lowest
// numbers first, until one yields a chunk whose tag verifies; it fails with ErrIntegrity if none
// does (within a bounded number of tries), and ErrTooFewPieces if fewer than K are present.
// dst's contents are unspecified after a failure.
func (c *Codec) Decode(h wire.ChunkHeader, length int, pieces [][]byte, dst []byte) (Result, error) {
	k, ps := c.mode.K, c.PieceSize(length)
	if len(pieces) != c.mode.N || len(dst) != length {
		return Result{}, fmt.Errorf("disperse: Decode needs %d pieces and a %d-byte destination", c.mode.N, length)
	}
	var present []int
	for j, p := range pieces {
		if p != nil {
			if len(p) != ps {
				return Result{}, fmt.Errorf("disperse: piece %d has %d bytes, want %d", j, len(p), ps)
			}
			present = append(present, j)
		}
	}
	if len(present) < k {
		return Result{}, fmt.Errorf("%w: %d of %d", ErrTooFewPieces, len(present), k)
	}
	var res Result
	var failed []int // per piece, how many failing sets it was in
	for attempt, use := 0, make([]int, k); attempt < maxAttempts && candidate(attempt, present, k, use); attempt++ {
		ok, err := c.try(h, length, pieces, use, dst)
		if err != nil {
			return res, err
		}
		if ok {
			res.Used = use
			res.Suspects = suspects(failed, res.Failed, use)
			return res, nil
		}
		res.Failed++
		if failed == nil {
			failed = make([]int, c.mode.N)
		}
		for _, j := range use {
			failed[j]++
		}
	}
	return res, fmt.Errorf("%w: item %d chunk %d: %d sets of %d pieces tried", ErrIntegrity, h.Item, h.Chunk, res.Failed, k)
}

// suspects names the pieces to blame for nfailed failing sets, given how often each piece was in
// one: a single bad piece is in all of them; with several, any piece of a failing set is suspect.
func suspects(failed []int, nfailed int, used []int) []int {
	var all, any []int
	for j, n := range failed {
		if n == 0 || contains(used, j) {
			continue
		}
		any = append(any, j)
		if n == nfailed {
			all = append(all, j)
		}
	}
	if len(all) > 0 {
		return all
	}
	return any
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// candidate fills use with the attempt-th set of K pieces to try, from the present ones, and
// reports whether there is one. First the K lowest; then the K+1 lowest less one, for each of
// the K lowest in turn — so a single bad piece, wherever it is, is left out within K+1 attempts —
// then every other set in lexicographic order.
func candidate(attempt int, present []int, k int, use []int) bool {
	n := len(present)
	if attempt == 0 || attempt <= k && n > k {
		skip := attempt - 1 // -1: none
		for i, j := 0, 0; j < k; i++ {
			if i != skip {
				use[j] = present[i]
				j++
			}
		}
		return true
	}
	// Lexicographic sets, skipping those the first rounds tried (the sets within the K+1 lowest).
	tried := 1
	if n > k {
		tried += k
	}
	set := make([]int, k)
	for i := range set {
		set[i] = i
	}
	for skipped := 0; ; {
		if set[k-1] > k { // not within the K+1 lowest
			if skipped == attempt-tried {
				for i, pos := range set {
					use[i] = present[pos]
				}
				return true
			}
			skipped++
		}
		if !nextSet(set, n) {
			return false
		}
	}
}

// nextSet advances set, ascending positions below n, to the next combination in lexicographic
// order, reporting false after the last.
func nextSet(set []int, n int) bool {
	k := len(set)
	for i := k - 1; i >= 0; i-- {
		if set[i] < n-k+i {
			set[i]++
			for j := i + 1; j < k; j++ {
				set[j] = set[j-1] + 1
			}
			return true
		}
	}
	return false
}

// combiner returns the cached combiner for the pieces use (x = index + 1).
func (c *Codec) combiner(use []int) (*sss.Combiner, error) {
	var xsArr [MaxN]byte
	xs := xsArr[:len(use)]
	for i, j := range use {
		xs[i] = byte(j + 1)
	}
	c.combMu.Lock()
	defer c.combMu.Unlock()
	if cb, ok := c.combs[string(xs)]; ok {
		return cb, nil
	}
	cb, err := sss.NewCombiner(c.mode.K, xs)
	if err != nil {
		return nil, err
	}
	if len(c.combs) >= 1024 {
		clear(c.combs)
	}
	c.combs[string(xs)] = cb
	return cb, nil
}

// try rebuilds the chunk from the pieces use and reports whether its tag verifies.
func (c *Codec) try(h wire.ChunkHeader, length int, pieces [][]byte, use []int, dst []byte) (bool, error) {
	if c.mode.Kind == AONT {
		return c.tryAONT(h, length, pieces, use, dst)
	}
	cb, err := c.combiner(use)
	if err != nil {
		return false, err
	}
	ys := make([][]byte, len(use))
	var trailer [TagSize + KeySize]byte // tag ‖ key
	if c.mode.Kind == Shamir {
		for i, j := range use {
			ys[i] = pieces[j][:length]
		}
		if err := cb.Combine(dst, ys); err != nil {
			return false, err
		}
		for i, j := range use {
			ys[i] = pieces[j][length:]
		}
		if err := cb.Combine(trailer[:], ys); err != nil {
			return false, err
		}
	} else {
		s := c.shardSize(length)
		shards := make([][]byte, c.mode.N)
		missing := false
		for _, j := range use {
			shards[j] = pieces[j][:s]
		}
		for j := range c.mode.K {
			missing = missing || shards[j] == nil
		}
		if missing {
			c.rsMu.Lock()
			err := c.rs.ReconstructData(shards)
			c.rsMu.Unlock()
			if err != nil {
				return false, err
			}
		}
		// The data shards hold payload ‖ tag ‖ padding.
		off := 0
		for j := 0; j < c.mode.K && off < length+TagSize; j++ {
			sh := shards[j]
			if off < length {
				n := copy(dst[off:], sh)
				sh = sh[n:]
				off += n
			}
			if off >= length {
				n := copy(trailer[off-length:TagSize], sh)
				off += n
			}
		}
		for i, j := range use {
			ys[i] = pieces[j][s:]
		}
		if err := cb.Combine(trailer[TagSize:], ys); err != nil {
			return false, err
		}
	}
	var want [TagSize]byte
	if err := tag(trailer[TagSize:], h, length, dst, want[:]); err != nil {
		return false, err
	}
	ok := subtle.ConstantTimeCompare(want[:], trailer[:TagSize]) == 1
	clear(trailer[:])
	return ok, nil
}
