package sss

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// detRandom returns a deterministic random stream for tests.
func detRandom(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

type kn struct{ k, n int }

func (c kn) String() string { return fmt.Sprintf("%dof%d", c.k, c.n) }

// testConfigs are the fixed (k, n) pairs plus a few random ones.
func testConfigs(r *rand.Rand) []kn {
	cs := []kn{{2, 2}, {2, 3}, {3, 5}, {4, 6}, {5, 5}, {6, 9}, {16, 32}, {255, 255}, {2, 255}, {100, 255}}
	for range 4 {
		n := 2 + r.IntN(60)
		cs = append(cs, kn{2 + r.IntN(n-1), n})
	}
	return cs
}

// subsets returns index sets of size k from 0..n-1: all of them when
// there are few, otherwise count random ones (in random order).
func subsets(r *rand.Rand, k, n, count int) [][]int {
	var all [][]int
	if n <= 8 {
		var rec func(start int, cur []int)
		rec = func(start int, cur []int) {
			if len(cur) == k {
				all = append(all, append([]int(nil), cur...))
				return
			}
			for i := start; i < n; i++ {
				rec(i+1, append(cur, i))
			}
		}
		rec(0, nil)
		return all
	}
	for range count {
		all = append(all, r.Perm(n)[:k])
	}
	return all
}

func pick(shares []Share, idx []int) []Share {
	out := make([]Share, len(idx))
	for i, j := range idx {
		out[i] = shares[j]
	}
	return out
}

var testSizes = []int{0, 1, 2, 31, 63, 64, 65, 1000, maxBlock - 1, maxBlock, maxBlock + 1, 3*maxBlock + 17}

func TestRoundTrip(t *testing.T) {
	for _, mode := range asmModes() {
		t.Run(mode.name, func(t *testing.T) {
			defer mode.set()()
			testRoundTrip(t)
		})
	}
}

func testRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range testConfigs(r) {
		t.Run(c.String(), func(t *testing.T) {
			sizes := testSizes
			if c.k > 50 {
				sizes = []int{0, 1, 65, 2*blockSize(c.k) + 3}
			}
			for _, size := range sizes {
				secret := randBytes(r, size)
				shares, err := Split(secret, c.k, c.n)
				if err != nil {
					t.Fatal(err)
				}
				if len(shares) != c.n {
					t.Fatalf("got %d shares", len(shares))
				}
				for i, s := range shares {
					if s.X != byte(i+1) || len(s.Y) != size {
						t.Fatalf("share %d: x=%d len=%d", i, s.X, len(s.Y))
					}
				}
				count := 10
				if size > 10000 || c.k > 50 {
					count = 3
				}
				for _, idx := range subsets(r, c.k, c.n, count) {
					got, err := Combine(pick(shares, idx))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("size %d: subset %v did not recover the secret", size, idx)
					}
				}
				// More than k shares (here: all of them) also recover it.
				got, err := Combine(shares)
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("size %d: all %d shares did not recover the secret (err %v)", size, c.n, err)
				}
			}
		})
	}
}

func TestTooFewSharesDoNotRecover(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range testConfigs(r) {
		t.Run(c.String(), func(t *testing.T) {
			secret := randBytes(r, 32)
			shares, err := Split(secret, c.k, c.n)
			if err != nil {
				t.Fatal(err)
			}
			for _, idx := range subsets(r, c.k-1, c.n, 5) {
				// Told the threshold, a Combiner refuses k−1 shares.
				sub := pick(shares, idx)
				xs := make([]byte, len(sub))
				for i, s := range sub {
					xs[i] = s.X
				}
				if _, err := NewCombiner(c.k, xs); !errors.Is(err, ErrTooFewShares) {
					t.Fatalf("NewCombiner(k=%d) with %d shares: err = %v, want ErrTooFewShares", c.k, len(xs), err)
				}
				// Combine cannot know k: it interpolates what it is given
				// and returns unrelated bytes (or ErrTooFewShares for a
				// single share), as documented.
				got, err := Combine(sub)
				if c.k == 2 {
					if !errors.Is(err, ErrTooFewShares) {
						t.Fatalf("one share: err = %v, want ErrTooFewShares", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				// Equality has probability 2^-256.
				if bytes.Equal(got, secret) {
					t.Fatalf("k-1 shares %v recovered the secret", idx)
				}
			}
		})
	}
}

// TestSplitMatchesReference checks the SIMD split byte for byte against
// the per-byte Horner reference fed the same coefficient stream.
func TestSplitMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for ci, c := range testConfigs(r) {
		t.Run(c.String(), func(t *testing.T) {
			sizes := testSizes
			if c.k > 50 {
				sizes = []int{1, 65, 2*blockSize(c.k) + 3}
			}
			for _, size := range sizes {
				secret := randBytes(r, size)
				xs := randXs(r, c.n)
				seed := uint64(ci*1000 + size)
				want, err := refSplit(secret, c.k, xs, detRandom(seed))
				if err != nil {
					t.Fatal(err)
				}
				// Every code path must produce the reference's shares.
				for _, mode := range asmModes() {
					got, dst := splitBothWays(t, mode, secret, c.k, xs, seed)
					for i := range want {
						if got[i].X != want[i].X || !bytes.Equal(got[i].Y, want[i].Y) || !bytes.Equal(dst[i], want[i].Y) {
							t.Fatalf("%s, size %d: share %d (x=%d) differs from reference", mode.name, size, i, xs[i])
						}
					}
				}
			}
		})
	}
}

// splitBothWays splits secret in the given mode with SplitX and with a
// Splitter, both fed the deterministic stream seed.
func splitBothWays(t *testing.T, mode asmMode, secret []byte, k int, xs []byte, seed uint64) ([]Share, [][]byte) {
	t.Helper()
	defer mode.set()()
	got, err := SplitX(secret, k, xs, WithRandom(detRandom(seed)))
	if err != nil {
		t.Fatal(err)
	}
	// The Splitter must consume the stream identically.
	sp, err := NewSplitter(k, xs, WithRandom(detRandom(seed)))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([][]byte, len(xs))
	for i := range dst {
		dst[i] = make([]byte, len(secret))
	}
	if err := sp.Split(dst, secret); err != nil {
		t.Fatal(err)
	}
	return got, dst
}

// randXs returns n distinct random non-zero coordinates.
func randXs(r *rand.Rand, n int) []byte {
	perm := r.Perm(255)
	xs := make([]byte, n)
	for i := range xs {
		xs[i] = byte(perm[i] + 1)
	}
	return xs
}

// TestCombineMatchesReference checks the SIMD combine against per-byte
// Lagrange interpolation, for arbitrary (not necessarily consistent)
// share bytes.
func TestCombineMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, m := range []int{2, 3, 5, 10, 17, 64, 255} {
		sizes := []int{1, 7, 64, 1000, combineChunk + 33}
		if m > 17 {
			sizes = []int{1, 7, 65} // the reference is O(m²) per byte
		}
		for _, size := range sizes {
			shares := make([]Share, m)
			for i, x := range randXs(r, m) {
				shares[i] = Share{X: x, Y: randBytes(r, size)}
			}
			got, err := Combine(shares)
			if err != nil {
				t.Fatal(err)
			}
			if want := refCombine(shares); !bytes.Equal(got, want) {
				t.Fatalf("m=%d size=%d: combine differs from reference", m, size)
			}
		}
	}
}

func TestKnownVector(t *testing.T) {
	// Hand-checkable 2-of-3 split of one byte 0x42 with coefficient
	// a1 = 0x80: y(x) = 0x42 ⊕ 0x80·x in GF(2^8)/0x11D.
	// 0x80·1 = 0x80, 0x80·2 = 0x1D, 0x80·3 = 0x9D.
	shares, err := Split([]byte{0x42}, 2, 3, WithRandom(bytes.NewReader([]byte{0x80})))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x42 ^ 0x80, 0x42 ^ 0x1D, 0x42 ^ 0x9D}
	for i, s := range shares {
		if s.Y[0] != want[i] {
			t.Errorf("share x=%d: got %#x, want %#x", s.X, s.Y[0], want[i])
		}
	}
}

func TestValidation(t *testing.T) {
	secret := []byte("secret")
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"k=1", func() error { _, err := Split(secret, 1, 3); return err }, ErrInvalidThreshold},
		{"k=0", func() error { _, err := Split(secret, 0, 3); return err }, ErrInvalidThreshold},
		{"k>n", func() error { _, err := Split(secret, 4, 3); return err }, ErrInvalidThreshold},
		{"n=256", func() error { _, err := Split(secret, 2, 256); return err }, ErrInvalidThreshold},
		{"n=1", func() error { _, err := Split(secret, 2, 1); return err }, ErrInvalidThreshold},
		{"negative", func() error { _, err := Split(secret, -2, -1); return err }, ErrInvalidThreshold},
		{"x=0", func() error { _, err := SplitX(secret, 2, []byte{1, 0, 3}); return err }, ErrInvalidX},
		{"x dup", func() error { _, err := SplitX(secret, 2, []byte{1, 2, 1}); return err }, ErrInvalidX},
		{"xs too few", func() error { _, err := SplitX(secret, 3, []byte{1, 2}); return err }, ErrInvalidThreshold},
		{"splitter k", func() error { _, err := NewSplitter(1, SeqX(3)); return err }, ErrInvalidThreshold},
		{"splitter x", func() error { _, err := NewSplitter(2, []byte{5, 5}); return err }, ErrInvalidX},
		{"combine none", func() error { _, err := Combine(nil); return err }, ErrTooFewShares},
		{"combine one", func() error { _, err := Combine([]Share{{1, secret}}); return err }, ErrTooFewShares},
		{"combine x=0", func() error { _, err := Combine([]Share{{0, secret}, {1, secret}}); return err }, ErrInvalidX},
		{"combine x dup", func() error { _, err := Combine([]Share{{7, secret}, {7, secret}}); return err }, ErrInvalidX},
		{"combine length", func() error { _, err := Combine([]Share{{1, secret}, {2, secret[1:]}}); return err }, ErrShareLength},
		{"combiner too few for k", func() error { _, err := NewCombiner(3, []byte{1, 2}); return err }, ErrTooFewShares},
		{"combiner one x", func() error { _, err := NewCombiner(0, []byte{1}); return err }, ErrTooFewShares},
		{"combiner k=1", func() error { _, err := NewCombiner(1, []byte{1, 2}); return err }, ErrInvalidThreshold},
		{"combiner x dup", func() error { _, err := NewCombiner(0, []byte{1, 1}); return err }, ErrInvalidX},
		{"combiner length", func() error {
			c, _ := NewCombiner(0, []byte{1, 2})
			return c.Combine(make([]byte, 3), [][]byte{make([]byte, 3), make([]byte, 2)})
		}, ErrShareLength},
		{"splitter dst length", func() error {
			s, _ := NewSplitter(2, SeqX(2))
			return s.Split([][]byte{make([]byte, 6), make([]byte, 5)}, secret)
		}, ErrShareLength},
		{"split writer xs", func() error {
			_, err := NewSplitWriter([]io.Writer{io.Discard, io.Discard}, 2, []byte{1, 2, 3})
			return err
		}, ErrInvalidX},
		{"split writer k", func() error {
			_, err := NewSplitWriter([]io.Writer{io.Discard, io.Discard}, 3, nil)
			return err
		}, ErrInvalidThreshold},
		{"combine reader xs", func() error {
			_, err := NewCombineReader([]io.Reader{strings.NewReader(""), strings.NewReader("")}, []byte{1})
			return err
		}, ErrInvalidX},
		{"combine reader one", func() error {
			_, err := NewCombineReader([]io.Reader{strings.NewReader("")}, []byte{1})
			return err
		}, ErrTooFewShares},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "sss: ") {
				t.Fatalf("error %q lacks the sss: prefix", err)
			}
		})
	}
}

func TestOtherErrors(t *testing.T) {
	s, err := NewSplitter(2, SeqX(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Split(make([][]byte, 2), nil); err == nil || !strings.HasPrefix(err.Error(), "sss: ") {
		t.Fatalf("wrong dst count: err = %v", err)
	}
	c, err := NewCombiner(0, []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Combine(nil, make([][]byte, 3)); err == nil || !strings.HasPrefix(err.Error(), "sss: ") {
		t.Fatalf("wrong share count: err = %v", err)
	}
	// A random source that runs dry is reported, not ignored.
	_, err = Split(make([]byte, 100), 3, 5, WithRandom(bytes.NewReader(make([]byte, 10))))
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(err.Error(), "sss: ") {
		t.Fatalf("short random source: err = %v", err)
	}
}

func TestSplitterAndCombiner(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	xs := []byte{200, 3, 17, 99, 250, 1}
	s, err := NewSplitter(4, xs)
	if err != nil {
		t.Fatal(err)
	}
	if s.K() != 4 || s.N() != 6 || !bytes.Equal(s.Xs(), xs) {
		t.Fatalf("K/N/Xs = %d/%d/%v", s.K(), s.N(), s.Xs())
	}
	dst := make([][]byte, len(xs))
	prev := make([][]byte, len(xs))
	for round := range 5 {
		size := r.IntN(3 * maxBlock)
		secret := randBytes(r, size)
		for i := range dst {
			dst[i] = make([]byte, size)
		}
		if err := s.Split(dst, secret); err != nil {
			t.Fatal(err)
		}
		// Combiner with explicit threshold uses only the first k shares.
		order := r.Perm(len(xs))
		cxs := make([]byte, len(xs))
		ys := make([][]byte, len(xs))
		for i, j := range order {
			cxs[i], ys[i] = xs[j], dst[j]
		}
		for _, k := range []int{0, 4, 5} {
			c, err := NewCombiner(k, cxs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.Xs(), cxs) {
				t.Fatal("Xs mismatch")
			}
			out := make([]byte, size)
			if err := c.Combine(out, ys); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, secret) {
				t.Fatalf("round %d, k=%d: combiner did not recover the secret", round, k)
			}
		}
		// Fresh randomness every call.
		if round > 0 && size > 16 && len(prev[0]) > 16 && bytes.Equal(dst[0][:16], prev[0][:16]) {
			t.Fatal("two splits produced the same share prefix")
		}
		copy(prev, dst)
	}
	// The coefficient buffer is wiped after each split.
	for _, b := range s.buf {
		if b != 0 {
			t.Fatal("coefficient buffer not wiped")
		}
	}
}

func TestSameSecretDifferentShares(t *testing.T) {
	secret := make([]byte, 64)
	a, _ := Split(secret, 2, 2)
	b, _ := Split(secret, 2, 2)
	if bytes.Equal(a[0].Y, b[0].Y) {
		t.Fatal("two one-shot splits produced identical shares")
	}
}

func TestSharesDoNotAlias(t *testing.T) {
	shares, err := Split([]byte("abcdef"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), shares[1].Y...)
	shares[0].Y = append(shares[0].Y, 1, 2, 3)
	if !bytes.Equal(shares[1].Y, before) {
		t.Fatal("appending to one share overwrote another")
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, mode := range asmModes() {
		t.Run(mode.name, func(t *testing.T) {
			defer mode.set()()
			testZeroAllocs(t)
		})
	}
}

func testZeroAllocs(t *testing.T) {
	secret := make([]byte, 20000)
	s, err := NewSplitter(3, SeqX(5))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([][]byte, 5)
	for i := range dst {
		dst[i] = make([]byte, len(secret))
	}
	if n := testing.AllocsPerRun(50, func() {
		if err := s.Split(dst, secret); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Splitter.Split: %v allocs per run, want 0", n)
	}
	c, err := NewCombiner(3, []byte{1, 3, 5})
	if err != nil {
		t.Fatal(err)
	}
	ys := [][]byte{dst[0], dst[2], dst[4]}
	out := make([]byte, len(secret))
	if n := testing.AllocsPerRun(50, func() {
		if err := c.Combine(out, ys); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Combiner.Combine: %v allocs per run, want 0", n)
	}
	if !bytes.Equal(out, secret) {
		t.Fatal("round trip failed")
	}
}

func TestConcurrentUse(t *testing.T) {
	c, err := NewCombiner(0, []byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 11))
			for range 20 {
				secret := randBytes(r, r.IntN(5000))
				shares, err := Split(secret, 3, 5)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := Combine(shares[1:4])
				if err != nil || !bytes.Equal(got, secret) {
					t.Errorf("one-shot round trip failed: %v", err)
					return
				}
				out := make([]byte, len(secret))
				if err := c.Combine(out, [][]byte{shares[0].Y, shares[1].Y, shares[2].Y}); err != nil || !bytes.Equal(out, secret) {
					t.Errorf("shared combiner failed: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestStreams(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for _, c := range []kn{{2, 2}, {3, 5}, {16, 20}} {
		for _, size := range []int{0, 1, 1000, 100000} {
			t.Run(fmt.Sprintf("%v/%d", c, size), func(t *testing.T) {
				secret := randBytes(r, size)
				bufs := make([]*bytes.Buffer, c.n)
				ws := make([]io.Writer, c.n)
				for i := range bufs {
					bufs[i] = new(bytes.Buffer)
					ws[i] = bufs[i]
				}
				xs := randXs(r, c.n)
				w, err := NewSplitWriter(ws, c.k, xs)
				if err != nil {
					t.Fatal(err)
				}
				// Writes of assorted sizes.
				for rest := secret; len(rest) > 0; {
					n := min(len(rest), 1+r.IntN(3*maxBlock))
					m, err := w.Write(rest[:n])
					if err != nil || m != n {
						t.Fatalf("Write = %d, %v", m, err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte{1}); !errors.Is(err, ErrClosed) {
					t.Fatalf("write after close: %v", err)
				}
				for i := range bufs {
					if bufs[i].Len() != size {
						t.Fatalf("share %d has %d bytes, want %d", i, bufs[i].Len(), size)
					}
				}
				// Recover from a random k-subset through awkward readers.
				idx := r.Perm(c.n)[:c.k]
				rs := make([]io.Reader, c.k)
				cxs := make([]byte, c.k)
				shares := make([]Share, c.k)
				for i, j := range idx {
					cxs[i] = xs[j]
					shares[i] = Share{X: xs[j], Y: bufs[j].Bytes()}
					switch i % 3 {
					case 0:
						rs[i] = iotest.OneByteReader(bytes.NewReader(bufs[j].Bytes()))
					case 1:
						rs[i] = iotest.HalfReader(bytes.NewReader(bufs[j].Bytes()))
					default:
						rs[i] = bytes.NewReader(bufs[j].Bytes())
					}
				}
				cr, err := NewCombineReader(rs, cxs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(cr)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatal("stream round trip failed")
				}
				// Same as the one-shot combine.
				if size > 0 {
					one, err := Combine(shares)
					if err != nil || !bytes.Equal(one, secret) {
						t.Fatal("one-shot combine of streamed shares failed")
					}
				}
			})
		}
	}
}

func TestCombineReaderErrors(t *testing.T) {
	// Streams of different lengths.
	for _, lens := range [][2]int{{10, 9}, {9, 10}, {combineBlock, combineBlock + 1}, {combineBlock + 1, combineBlock}, {0, 1}} {
		rs := []io.Reader{bytes.NewReader(make([]byte, lens[0])), bytes.NewReader(make([]byte, lens[1]))}
		cr, err := NewCombineReader(rs, []byte{1, 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(cr); !errors.Is(err, ErrShareLength) {
			t.Fatalf("lengths %v: err = %v, want ErrShareLength", lens, err)
		}
	}
	// Reader failures are passed on.
	boom := errors.New("boom")
	cr, err := NewCombineReader([]io.Reader{strings.NewReader("abc"), iotest.ErrReader(boom)}, []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(cr); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "sss: ") {
		t.Fatalf("err = %v, want wrapped boom", err)
	}
	// Zero-length reads are no-ops.
	cr, _ = NewCombineReader([]io.Reader{strings.NewReader("a"), strings.NewReader("b")}, []byte{1, 2})
	if n, err := cr.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestSplitWriterErrors(t *testing.T) {
	w, err := NewSplitWriter([]io.Writer{io.Discard, &failWriter{after: 1}}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 3*maxBlock)
	n, err := w.Write(secret)
	if err == nil || n != maxBlock || !strings.HasPrefix(err.Error(), "sss: ") {
		t.Fatalf("Write = %d, %v; want %d and an error", n, err, maxBlock)
	}
	if _, err2 := w.Write(secret); err2 == nil {
		t.Fatal("error is not sticky")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close did not report the write error")
	}
	w, _ = NewSplitWriter([]io.Writer{io.Discard, shortWriter{}}, 2, nil)
	if _, err := w.Write([]byte("hello")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
}
