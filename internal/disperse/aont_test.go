package disperse

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/quick"

	"github.com/klauspost/reedsolomon"

	"github.com/braidnet/braid/internal/wire"
)

// maxChunk is the session's largest chunk (session.MaxChunkSize).
const maxChunk = 1 << 20

// TestAONTFormatPinned ties aont pieces to docs/PROTOCOL.md, section 5.10, undoing them here
// without the package's code: the data pieces are the package's shards, the package is
// AES-256-CTR(key, counter 0) of chunk ‖ canary followed by SHA-256 of that ciphertext XOR key,
// the padding is zeros and the parity pieces are klauspost/reedsolomon's.
func TestAONTFormatPinned(t *testing.T) {
	if AONTKeySize != 32 || CanarySize != 20 || DiffSize != 32 || AONTMinShard != 32 {
		t.Fatalf("AONTKeySize %d, CanarySize %d, DiffSize %d, AONTMinShard %d; docs/PROTOCOL.md says 32, 20, 32 and 32",
			AONTKeySize, CanarySize, DiffSize, AONTMinShard)
	}
	m := Mode{Kind: AONT, K: 3, N: 5}
	for _, c := range []struct{ got, want int }{
		{m.PieceSize(1000), (1000 + 52 + 2) / 3}, {m.PieceSize(0), 32}, {m.PieceSize(44), 32}, {m.PieceSize(45), 33},
		{m.ChunkCharge(1024), 1024 + 2*((1024+52+2)/3)},
	} {
		if c.got != c.want {
			t.Errorf("got %d, docs say %d", c.got, c.want)
		}
	}
	c, _ := New(m)
	h := wire.ChunkHeader{Item: 0x0102030405060708, Chunk: 9, Total: 11, Seq: 77}
	payload := []byte("pinned payload bytes, a few more than one AES block")
	l := len(payload)
	pieces := encode(t, c, h, payload)
	pkg := bytes.Join(pieces[:m.K], nil)
	if len(pkg) != m.K*m.PieceSize(l) {
		t.Fatalf("package of %d bytes", len(pkg))
	}
	ct, diff := pkg[:len(pkg)-32], pkg[len(pkg)-32:]
	sum := sha256.Sum256(ct)
	key := make([]byte, 32)
	for i := range key {
		key[i] = sum[i] ^ diff[i]
	}
	block, _ := aes.NewCipher(key)
	plain := make([]byte, len(ct))
	cipher.NewCTR(block, make([]byte, 16)).XORKeyStream(plain, ct)
	if !bytes.Equal(plain[:l], payload) {
		t.Fatalf("the package decrypts to %q", plain[:l])
	}
	want := binary.BigEndian.AppendUint64(nil, h.Item)
	want = binary.BigEndian.AppendUint32(want, h.Chunk)
	want = binary.BigEndian.AppendUint32(want, h.Total)
	want = binary.BigEndian.AppendUint32(want, uint32(l))
	if pad := plain[l : len(plain)-20]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Fatalf("padding decrypts to % x, want zeros", pad)
	}
	if !bytes.Equal(plain[len(plain)-20:], want) {
		t.Fatalf("canary % x, the spec's is % x", plain[len(plain)-20:], want)
	}
	rs, _ := reedsolomon.New(m.K, m.N-m.K)
	shards := make([][]byte, m.N)
	for j := range shards {
		shards[j] = make([]byte, len(pieces[0]))
		if j < m.K {
			copy(shards[j], pieces[j])
		}
	}
	if err := rs.Encode(shards); err != nil {
		t.Fatal(err)
	}
	for j := m.K; j < m.N; j++ {
		if !bytes.Equal(shards[j], pieces[j]) {
			t.Fatalf("parity piece %d is not the Reed–Solomon parity of the data pieces", j)
		}
	}
}

// TestAONTQuick: random modes, chunk lengths (from empty and one byte to the largest chunk),
// identities and sets of K pieces: the chunk comes back exactly.
func TestAONTQuick(t *testing.T) {
	lengths := []int{0, 1, 2, 51, 52, 53, 4095, 65536, maxChunk - 1, maxChunk}
	codecs := codecCache{}
	f := func(seed uint64, kk, extra uint8, which uint8, item uint64, chunk uint32) bool {
		r := rand.New(rand.NewPCG(seed, 1))
		m := Mode{Kind: AONT, K: int(kk%7) + 2}
		m.N = m.K + int(extra%4)
		c := codecs.get(t, m)
		n := lengths[int(which)%len(lengths)]
		if which >= 128 {
			n = r.IntN(70000)
		}
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		// The package is K shards of at least AONTMinShard bytes, padded by less than K bytes
		// beyond that minimum.
		if s := m.PieceSize(n); s < AONTMinShard || m.K*s < n+aontOverhead || s > AONTMinShard && m.K*s >= n+aontOverhead+m.K {
			t.Logf("%v, %d bytes: pieces of %d", m, n, s)
			return false
		}
		h := wire.ChunkHeader{Item: item, Chunk: chunk, Total: chunk + 1}
		pieces := encode(t, c, h, payload)
		given := make([][]byte, m.N)
		for _, j := range r.Perm(m.N)[:m.K] {
			given[j] = pieces[j]
		}
		dst := make([]byte, n)
		res, err := c.Decode(h, n, given, dst)
		if err != nil || res.Failed != 0 || !bytes.Equal(dst, payload) {
			t.Logf("%v, %d bytes, pieces %v: %+v %v", m, n, res.Used, res, err)
			return false
		}
		return true
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 60}); err != nil {
		t.Fatal(err)
	}
}

// TestAONTEveryByteTampered: with N = K, a change to any one byte of any piece — in the
// chunk's ciphertext, the padding's, the canary's or the difference block — fails with
// ErrIntegrity; with one spare piece the chunk comes back exactly without the changed piece.
func TestAONTEveryByteTampered(t *testing.T) {
	payload := []byte("a short chunk whose every byte of every piece gets tampered with")
	h := wire.ChunkHeader{Item: 3, Chunk: 1, Total: 2}
	for _, m := range []Mode{{Kind: AONT, K: 2, N: 2}, {Kind: AONT, K: 3, N: 4}} {
		c, _ := New(m)
		pieces := encode(t, c, h, payload)
		s := len(pieces[0])
		for bad := range m.N {
			for pos := range s {
				given := make([][]byte, m.N)
				for j := range given {
					given[j] = bytes.Clone(pieces[j])
				}
				given[bad][pos] ^= 0x40
				dst := make([]byte, len(payload))
				res, err := c.Decode(h, len(payload), given, dst)
				if err == nil && !bytes.Equal(dst, payload) {
					t.Fatalf("%v: piece %d byte %d changed: wrong bytes delivered", m, bad, pos)
				}
				switch {
				case m.N == m.K:
					if !errors.Is(err, ErrIntegrity) {
						t.Fatalf("%v: piece %d byte %d changed: %+v %v", m, bad, pos, res, err)
					}
				case err != nil:
					t.Fatalf("%v: piece %d byte %d changed: %v", m, bad, pos, err)
				}
			}
		}
	}
}

// FuzzAONTJoin: the real pieces of a chunk, with bytes changed and pieces left out as the input
// says, decode either to exactly the chunk or to ErrIntegrity / ErrTooFewPieces — never to other
// bytes; and unchanged pieces, K or more, always decode.
func FuzzAONTJoin(f *testing.F) {
	f.Add([]byte("payload"), uint8(2), uint8(1), uint8(0), []byte{})
	f.Add([]byte("payload"), uint8(2), uint8(1), uint8(1), []byte{3, 0x10})
	f.Add(make([]byte, 300), uint8(3), uint8(2), uint8(0x12), []byte{0, 1, 40, 0x80, 200, 7})
	f.Add([]byte{}, uint8(4), uint8(0), uint8(0), []byte{1, 1})
	codecs := codecCache{}
	f.Fuzz(func(t *testing.T, payload []byte, kk, extra, drop uint8, edits []byte) {
		m := Mode{Kind: AONT, K: int(kk%5) + 2}
		m.N = m.K + int(extra%3)
		c := codecs.get(t, m)
		if len(payload) > 4096 {
			payload = payload[:4096]
		}
		h := wire.ChunkHeader{Item: 9, Chunk: 2, Total: 3}
		pieces := encode(t, c, h, payload)
		present := 0
		for j := range pieces {
			if drop&(1<<j) != 0 {
				pieces[j] = nil
			} else {
				present++
			}
		}
		changed := false
		for i := 0; i+1 < len(edits); i += 2 {
			p := pieces[int(edits[i])%m.N]
			if p != nil && edits[i+1] != 0 {
				p[(int(edits[i])*131+int(edits[i+1]))%len(p)] ^= edits[i+1]
				changed = true
			}
		}
		dst := make([]byte, len(payload))
		_, err := c.Decode(h, len(payload), pieces, dst)
		switch {
		case err == nil && !bytes.Equal(dst, payload):
			t.Fatalf("%v: wrong bytes decoded without an error", m)
		case err != nil && !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrTooFewPieces):
			t.Fatalf("%v: unexpected error %v", m, err)
		case err != nil && !changed && present >= m.K:
			t.Fatalf("%v: unchanged pieces (%d present) failed: %v", m, present, err)
		case errors.Is(err, ErrTooFewPieces) != (present < m.K):
			t.Fatalf("%v: %d pieces present: %v", m, present, err)
		}
	})
}

// TestAONTNoKnownShardBytes: no byte of any piece is predictable — in particular not a padding
// byte, which K−1 holders could otherwise subtract from the one shard they lack. Two encodings of
// the same all-zero chunk agree on a byte position by chance alone (1 in 256); a pad in the clear
// would make whole runs agree. Lengths cover every remainder modulo K and the smallest chunks.
func TestAONTNoKnownShardBytes(t *testing.T) {
	for _, m := range []Mode{{Kind: AONT, K: 2, N: 3}, {Kind: AONT, K: 3, N: 3}, {Kind: AONT, K: 5, N: 7}} {
		c, _ := New(m)
		for n := range 200 {
			zero := make([]byte, n)
			a := encode(t, c, wire.ChunkHeader{Total: 1}, zero)
			b := encode(t, c, wire.ChunkHeader{Total: 1}, zero)
			for j := range a {
				same := 0
				for i := range a[j] {
					if a[j][i] == b[j][i] {
						same++
					}
				}
				if len(a[j]) < AONTMinShard || same > len(a[j])/4 {
					t.Fatalf("%v, %d-byte chunk: piece %d of %d bytes, %d the same in two encodings", m, n, j, len(a[j]), same)
				}
			}
		}
	}
}

// TestAONTLargeN: the widest modes (up to 255 pieces) rebuild from their last K pieces, parity
// only where N > K.
func TestAONTLargeN(t *testing.T) {
	for _, m := range []Mode{{Kind: AONT, K: 255, N: 255}, {Kind: AONT, K: 2, N: 255}, {Kind: AONT, K: 128, N: 255}} {
		c, err := New(m)
		if err != nil {
			t.Fatal(m, err)
		}
		for _, n := range []int{0, 1, 5000} {
			p := bytes.Repeat([]byte{7}, n)
			pieces := encode(t, c, wire.ChunkHeader{Total: 1}, p)
			given := make([][]byte, m.N)
			for j := m.N - m.K; j < m.N; j++ {
				given[j] = pieces[j]
			}
			dst := make([]byte, n)
			if _, err := c.Decode(wire.ChunkHeader{Total: 1}, n, given, dst); err != nil || !bytes.Equal(dst, p) {
				t.Fatal(m, n, err)
			}
		}
	}
}

// codecCache holds one Codec per mode for tests that draw many modes.
type codecCache map[Mode]*Codec

// get returns the Codec of m, made on first use.
func (cc codecCache) get(t testing.TB, m Mode) *Codec {
	c := cc[m]
	if c == nil {
		var err error
		if c, err = New(m); err != nil {
			t.Fatal(err)
		}
		cc[m] = c
	}
	return c
}
