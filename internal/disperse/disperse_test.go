package disperse

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/braidnet/braid/internal/wire"
	"github.com/braidnet/braid/sss"
)

func TestParse(t *testing.T) {
	good := map[string]Mode{
		"":               {Kind: Plain},
		"plain":          {Kind: Plain},
		"Redundant":      {Kind: Redundant},
		"shamir:2/3":     {Kind: Shamir, K: 2, N: 3},
		"shamir:255/255": {Kind: Shamir, K: 255, N: 255},
		"erasure:2/2":    {Kind: Erasure, K: 2, N: 2},
		" erasure:4/6 ":  {Kind: Erasure, K: 4, N: 6},
		"aont:2/3":       {Kind: AONT, K: 2, N: 3},
		"AONT:255/255":   {Kind: AONT, K: 255, N: 255},
	}
	for s, want := range good {
		m, err := Parse(s)
		if err != nil || m != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", s, m, err, want)
			continue
		}
		if again, err := Parse(m.String()); err != nil || again != m {
			t.Errorf("Parse(%q.String() = %q) = %+v, %v", s, m.String(), again, err)
		}
	}
	for _, s := range []string{"stripe", "plain:2/3", "redundant:1/1", "shamir", "shamir:", "shamir:2",
		"shamir:3/2", "shamir:1/3", "shamir:0/0", "shamir:2/256", "erasure:1/2", "aont:1/3", "aont:3/2", "aont:2/256", "aont", "aont:2", "aont:/3", "shamir:a/b", "shamir:2/3/4", "shamir:-2/3"} {
		if m, err := Parse(s); !errors.Is(err, ErrBadMode) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrBadMode", s, m, err)
		}
	}
}

func TestFromWire(t *testing.T) {
	for _, m := range []Mode{{Kind: Plain}, {Kind: Redundant}, {Kind: Shamir, K: 3, N: 5}, {Kind: Erasure, K: 2, N: 4}, {Kind: AONT, K: 2, N: 3}} {
		got, err := FromWire(m.Wire())
		if err != nil || got != m {
			t.Errorf("FromWire(%v.Wire()) = %+v, %v", m, got, err)
		}
	}
	for _, b := range [][3]uint8{{0, 1, 0}, {1, 0, 2}, {2, 1, 3}, {2, 4, 3}, {3, 0, 0}, {4, 1, 3}, {4, 3, 2}, {5, 2, 3}, {0xff, 0, 0}} {
		if _, err := FromWire(b[0], b[1], b[2]); !errors.Is(err, ErrBadMode) {
			t.Errorf("FromWire(%v) accepted", b)
		}
	}
}

// encode makes the pieces of a random chunk of the given length and returns them with the payload.
func encode(t testing.TB, c *Codec, h wire.ChunkHeader, payload []byte) [][]byte {
	t.Helper()
	buf := make([]byte, len(payload), c.BufferSize(len(payload)))
	copy(buf, payload)
	pieces := make([][]byte, c.mode.N)
	for j := range pieces {
		pieces[j] = make([]byte, c.PieceSize(len(payload)))
	}
	if err := c.Encode(h, buf, len(payload), pieces); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:len(payload)], payload) {
		t.Fatal("Encode changed the payload")
	}
	return pieces
}

func modes() []Mode {
	return []Mode{
		{Kind: Shamir, K: 2, N: 2}, {Kind: Shamir, K: 2, N: 3}, {Kind: Shamir, K: 3, N: 5}, {Kind: Shamir, K: 5, N: 5},
		{Kind: Erasure, K: 2, N: 2}, {Kind: Erasure, K: 2, N: 3}, {Kind: Erasure, K: 3, N: 5}, {Kind: Erasure, K: 4, N: 7},
		{Kind: AONT, K: 2, N: 2}, {Kind: AONT, K: 2, N: 3}, {Kind: AONT, K: 3, N: 5}, {Kind: AONT, K: 4, N: 7},
	}
}

// subsets calls fn for every subset of {0..n-1} with k members.
func subsets(n, k int, fn func([]int)) {
	set := make([]int, k)
	for i := range set {
		set[i] = i
	}
	for {
		fn(set)
		if !nextSet(set, n) {
			return
		}
	}
}

// TestRoundTripAnyK: every set of exactly K pieces rebuilds the chunk, for many lengths.
func TestRoundTripAnyK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range modes() {
		c, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 31, 32, 33, 1000, 4096 + 7} {
			h := wire.ChunkHeader{Item: r.Uint64(), Chunk: 3, Total: 9, Seq: 44}
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(r.Uint32())
			}
			pieces := encode(t, c, h, payload)
			subsets(m.N, m.K, func(use []int) {
				given := make([][]byte, m.N)
				for _, j := range use {
					given[j] = pieces[j]
				}
				dst := make([]byte, n)
				res, err := c.Decode(h, n, given, dst)
				if err != nil || !bytes.Equal(dst, payload) || res.Failed != 0 {
					t.Fatalf("%v len %d from %v: %+v %v", m, n, use, res, err)
				}
			})
			// K−1 pieces are refused with the documented error.
			given := make([][]byte, m.N)
			for j := range m.K - 1 {
				given[j] = pieces[j]
			}
			if _, err := c.Decode(h, n, given, make([]byte, n)); !errors.Is(err, ErrTooFewPieces) {
				t.Fatalf("%v: K-1 pieces: %v", m, err)
			}
		}
	}
}

// TestCorruptionDetected: a flipped bit in any one piece is never delivered: with N > K the other
// pieces rebuild the chunk and the bad one is named; with N = K decoding fails with ErrIntegrity.
func TestCorruptionDetected(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, m := range modes() {
		c, _ := New(m)
		payload := make([]byte, 5000)
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		h := wire.ChunkHeader{Item: 1, Chunk: 0, Total: 1, Seq: 1}
		pieces := encode(t, c, h, payload)
		for bad := range m.N {
			for _, pos := range []int{0, len(pieces[bad]) / 2, len(pieces[bad]) - 1} {
				given := make([][]byte, m.N)
				for j := range given {
					given[j] = bytes.Clone(pieces[j])
				}
				given[bad][pos] ^= 1 << (pos % 8)
				dst := make([]byte, len(payload))
				res, err := c.Decode(h, len(payload), given, dst)
				if m.N == m.K {
					if !errors.Is(err, ErrIntegrity) {
						t.Fatalf("%v: piece %d byte %d flipped: %+v %v", m, bad, pos, res, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(dst, payload) {
					t.Fatalf("%v: piece %d byte %d flipped: not recovered: %+v %v", m, bad, pos, res, err)
				}
				if contains(res.Used, bad) {
					t.Fatalf("%v: rebuilt from the corrupted piece %d: %+v", m, bad, res)
				}
				if res.Failed > 0 && (len(res.Suspects) != 1 || res.Suspects[0] != bad) {
					t.Fatalf("%v: piece %d corrupted, suspects %v", m, bad, res.Suspects)
				}
			}
		}
	}
}

// TestHeaderBound: pieces moved to another chunk's identity do not verify.
func TestHeaderBound(t *testing.T) {
	for _, m := range []Mode{{Kind: Shamir, K: 2, N: 3}, {Kind: Erasure, K: 2, N: 3}, {Kind: AONT, K: 2, N: 3}} {
		c, _ := New(m)
		h := wire.ChunkHeader{Item: 5, Chunk: 1, Total: 4, Seq: 10}
		pieces := encode(t, c, h, []byte("a chunk of some message"))
		for _, other := range []wire.ChunkHeader{{Item: 6, Chunk: 1, Total: 4}, {Item: 5, Chunk: 2, Total: 4}, {Item: 5, Chunk: 1, Total: 5}} {
			if _, err := c.Decode(other, 23, pieces, make([]byte, 23)); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%v: pieces of %+v accepted as %+v: %v", m, h, other, err)
			}
		}
		// The same pieces read as a chunk of another length (one whose pieces are as long).
		if _, err := c.Decode(h, 24, pieces, make([]byte, 24)); m.PieceSize(24) == m.PieceSize(23) && !errors.Is(err, ErrIntegrity) {
			t.Errorf("%v: a 23-byte chunk accepted as 24 bytes: %v", m, err)
		}
	}
}

// TestPiecesLookRandom: every piece of an all-zero chunk, in the modes that hide it (shamir, and
// aont with its parity pieces), looks uniform (chi-square over byte values, 255 degrees of
// freedom, p = 0.0001 critical value 347), and two encodings of it share no piece.
func TestPiecesLookRandom(t *testing.T) {
	for _, m := range []Mode{{Kind: Shamir, K: 2, N: 3}, {Kind: AONT, K: 2, N: 3}} {
		c, _ := New(m)
		zero := make([]byte, 1<<18)
		a := encode(t, c, wire.ChunkHeader{Total: 1}, zero)
		b := encode(t, c, wire.ChunkHeader{Total: 1}, zero)
		for j := range a {
			if x := ChiSquare(a[j]); x > 347 {
				t.Errorf("%s: piece %d of zeros: chi-square %.0f", m, j, x)
			}
			if bytes.Equal(a[j], b[j]) {
				t.Errorf("%s: piece %d identical in two encodings", m, j)
			}
		}
	}
}

func TestChiSquare(t *testing.T) {
	if x := ChiSquare(make([]byte, 1<<16)); x < 1e6 {
		t.Errorf("zeros: chi-square %.0f, want huge", x)
	}
	seq := make([]byte, 1<<16)
	for i := range seq {
		seq[i] = byte(i)
	}
	if x := ChiSquare(seq); x != 0 {
		t.Errorf("a perfectly even byte count: chi-square %.0f, want 0", x)
	}
}

func TestEncodeRejectsBadBuffers(t *testing.T) {
	c, _ := New(Mode{Kind: Erasure, K: 2, N: 3})
	pieces := [][]byte{make([]byte, c.PieceSize(10)), make([]byte, c.PieceSize(10)), make([]byte, c.PieceSize(10))}
	if err := c.Encode(wire.ChunkHeader{}, make([]byte, 10), 10, pieces); err == nil {
		t.Error("a buffer without room was accepted")
	}
	if err := c.Encode(wire.ChunkHeader{}, make([]byte, 10, 100), 10, pieces[:2]); err == nil {
		t.Error("N-1 pieces accepted")
	}
	if _, err := New(Mode{Kind: Plain}); err == nil {
		t.Error("a codec for plain")
	}
}

// FuzzDecode: arbitrary pieces never panic Decode, and never verify unless they are the real
// pieces (a forgery would need the secret-shared key).
func FuzzDecode(f *testing.F) {
	f.Add(uint8(2), uint8(3), uint16(10), []byte("some piece bytes to play with"), false)
	f.Add(uint8(3), uint8(5), uint16(0), []byte{}, true)
	f.Add(uint8(0x82), uint8(4), uint16(1), []byte("aont"), false)
	f.Fuzz(func(t *testing.T, k, n uint8, length uint16, data []byte, erasure bool) {
		m := Mode{Kind: Shamir, K: int(k&0x7f%6) + 2}
		switch {
		case k&0x80 != 0:
			m.Kind = AONT
		case erasure:
			m.Kind = Erasure
		}
		m.N = m.K + int(n%3)
		c, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		l := int(length % 2048)
		ps := c.PieceSize(l)
		pieces := make([][]byte, m.N)
		for j := range pieces {
			if len(data) > 0 && data[j%len(data)]%4 == 0 {
				continue // absent
			}
			p := make([]byte, ps)
			for i := range p {
				if len(data) > 0 {
					p[i] = data[(i+j*7)%len(data)]
				}
			}
			pieces[j] = p
		}
		_, err = c.Decode(wire.ChunkHeader{Total: 1}, l, pieces, make([]byte, l))
		if err == nil {
			t.Fatalf("made-up pieces verified (%v, length %d)", m, l)
		}
		if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrTooFewPieces) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// BenchmarkCodec: encode (split) and decode (join) of a 64 KiB chunk in each coded mode, side by
// side in one run; MB/s is chunk bytes per second.
func BenchmarkCodec(b *testing.B) {
	for _, m := range []Mode{{Kind: Shamir, K: 2, N: 3}, {Kind: Erasure, K: 2, N: 3}, {Kind: AONT, K: 2, N: 3}} {
		c, _ := New(m)
		payload := make([]byte, 64<<10)
		h := wire.ChunkHeader{Total: 1}
		buf := make([]byte, len(payload), c.BufferSize(len(payload)))
		pieces := make([][]byte, m.N)
		for j := range pieces {
			pieces[j] = make([]byte, c.PieceSize(len(payload)))
		}
		b.Run(m.String()+"/encode", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if err := c.Encode(h, buf, len(payload), pieces); err != nil {
					b.Fatal(err)
				}
			}
		})
		c.Encode(h, buf, len(payload), pieces)
		dst := make([]byte, len(payload))
		b.Run(m.String()+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := c.Decode(h, len(payload), pieces, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Piece 0 lost: the erasure and aont data are rebuilt from a parity piece.
		lost := append([][]byte{nil}, pieces[1:]...)
		b.Run(m.String()+"/decode-without-0", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := c.Decode(h, len(payload), lost, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFormatPinned ties the piece formats to docs/PROTOCOL.md, section 5.10: sizes, the tag's
// construction, and shamir pieces being plain Shamir shares (x = j + 1) of chunk ‖ tag ‖ key.
func TestFormatPinned(t *testing.T) {
	if KeySize != 16 || TagSize != 16 {
		t.Fatalf("KeySize %d, TagSize %d; docs/PROTOCOL.md says 16 and 16", KeySize, TagSize)
	}
	sh, er := Mode{Kind: Shamir, K: 3, N: 5}, Mode{Kind: Erasure, K: 3, N: 5}
	for _, c := range []struct{ got, want int }{
		{sh.PieceSize(1000), 1032}, {er.PieceSize(1000), (1000+16+2)/3 + 16}, {er.PieceSize(0), 6 + 16},
		{sh.ChunkCharge(1024), 1024 + 2*(1024+32)}, {Mode{Kind: Redundant}.ChunkCharge(1024), 1024},
	} {
		if c.got != c.want {
			t.Errorf("got %d, docs say %d", c.got, c.want)
		}
	}
	c, _ := New(Mode{Kind: Shamir, K: 2, N: 3})
	h := wire.ChunkHeader{Item: 0x0102030405060708, Chunk: 9, Total: 11, Seq: 77}
	payload := []byte("pinned payload bytes")
	pieces := encode(t, c, h, payload)
	secret, err := sss.Combine([]sss.Share{{X: 1, Y: pieces[0]}, {X: 3, Y: pieces[2]}})
	if err != nil {
		t.Fatal(err)
	}
	l := len(payload)
	if !bytes.Equal(secret[:l], payload) {
		t.Fatal("the shares do not combine to the payload")
	}
	gotTag, key := secret[l:l+TagSize], secret[l+TagSize:]
	// The tag as the spec states it, computed here without the package's code.
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	nonce := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, h.Item), h.Chunk)
	plain := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, h.Total), uint32(l))
	sealed := gcm.Seal(nil, nonce, plain, payload)
	if want := sealed[len(plain):]; !bytes.Equal(gotTag, want) {
		t.Fatalf("tag % x, the spec's construction gives % x", gotTag, want)
	}
}

// FuzzParse: Parse never panics, and what it accepts is valid and round-trips through String.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"plain", "redundant", "shamir:2/3", "erasure:4/6", "shamir:255/255", "shamir:0/-1", "x:1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrBadMode) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrBadMode", s, err)
			}
			return
		}
		if m.Validate() != nil {
			t.Fatalf("Parse(%q) accepted invalid %+v", s, m)
		}
		if again, err := Parse(m.String()); err != nil || again != m {
			t.Fatalf("Parse(%q) = %+v; its String %q parses as %+v, %v", s, m, m.String(), again, err)
		}
	})
}

// TestOneBadPieceAnywhere: with more than K pieces, one bad piece is found and left out wherever
// it is, even where a lexicographic search would spend every attempt on sets that include it.
func TestOneBadPieceAnywhere(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, m := range []Mode{{Kind: Shamir, K: 4, N: 10}, {Kind: Erasure, K: 5, N: 10}, {Kind: Shamir, K: 16, N: 32}, {Kind: Shamir, K: 2, N: 3},
		{Kind: AONT, K: 5, N: 10}, {Kind: AONT, K: 2, N: 3}} {
		c, err := New(m)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, 3000)
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		h := wire.ChunkHeader{Total: 1}
		pieces := encode(t, c, h, payload)
		for _, bad := range []int{0, m.N / 2, m.N - 1} {
			given := make([][]byte, m.N)
			for j := range given {
				given[j] = bytes.Clone(pieces[j])
			}
			given[bad][10] ^= 4
			dst := make([]byte, len(payload))
			res, err := c.Decode(h, len(payload), given, dst)
			if err != nil || !bytes.Equal(dst, payload) || contains(res.Used, bad) {
				t.Fatalf("%v, piece %d bad: %+v %v", m, bad, res, err)
			}
			if res.Failed > m.K+1 || res.Failed > 0 && (len(res.Suspects) != 1 || res.Suspects[0] != bad) {
				t.Errorf("%v, piece %d bad: %d failed sets, suspects %v", m, bad, res.Failed, res.Suspects)
			}
		}
	}
}

// TestCandidatesDistinct: the sets Decode tries are distinct K-sets of the present pieces, and
// (for small cases) all of them are reached.
func TestCandidatesDistinct(t *testing.T) {
	for _, c := range []struct{ n, k int }{{3, 2}, {5, 3}, {6, 2}, {4, 4}, {7, 4}} {
		present := make([]int, c.n)
		for i := range present {
			present[i] = i * 2
		}
		seen := map[string]bool{}
		use := make([]int, c.k)
		for a := 0; candidate(a, present, c.k, use); a++ {
			key := fmt.Sprint(use)
			if seen[key] {
				t.Fatalf("n=%d k=%d: set %v tried twice", c.n, c.k, use)
			}
			seen[key] = true
		}
		want := 1
		for i := 0; i < c.k; i++ {
			want = want * (c.n - i) / (i + 1)
		}
		if len(seen) != want {
			t.Errorf("n=%d k=%d: %d sets, want C(n,k) = %d", c.n, c.k, len(seen), want)
		}
	}
}
