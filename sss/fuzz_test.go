package sss

import (
	"bytes"
	"testing"
)

// FuzzCombine feeds arbitrary share sets to Combine: it must never panic,
// and whenever it succeeds it must agree with the per-byte reference.
// Encoding: data[0] = share count m, then m x bytes, then the Y bytes,
// split evenly (any remainder goes to the last share, exercising the
// length check).
func FuzzCombine(f *testing.F) {
	f.Add([]byte{2, 1, 2, 10, 20})
	f.Add([]byte{3, 1, 2, 3, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{2, 0, 1, 5, 5})
	f.Add([]byte{2, 9, 9})
	f.Add([]byte{1, 1, 42})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			if _, err := Combine(nil); err == nil {
				t.Fatal("Combine(nil) succeeded")
			}
			return
		}
		m := int(data[0])
		data = data[1:]
		if m > len(data) {
			m = len(data)
		}
		xs, data := data[:m], data[m:]
		shares := make([]Share, m)
		per := 0
		if m > 0 {
			per = len(data) / m
		}
		for i := range shares {
			shares[i].X = xs[i]
			end := (i + 1) * per
			if i == m-1 {
				end = len(data)
			}
			shares[i].Y = data[i*per : end]
		}
		got, err := Combine(shares)
		if err != nil {
			return
		}
		if want := refCombine(shares); !bytes.Equal(got, want) {
			t.Fatalf("Combine differs from reference for %d shares", m)
		}
	})
}

// FuzzSplitCombine splits arbitrary secrets with arbitrary parameters and
// a fuzzer-chosen deterministic random stream; valid parameters must
// round-trip through any k shares (taken from a fuzzer-chosen offset) and
// match the reference split, invalid ones must fail cleanly.
func FuzzSplitCombine(f *testing.F) {
	f.Add([]byte("hello"), uint8(2), uint8(3), uint64(1), uint8(0))
	f.Add([]byte{}, uint8(3), uint8(5), uint64(2), uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 200), uint8(5), uint8(9), uint64(3), uint8(4))
	f.Add([]byte("x"), uint8(1), uint8(1), uint64(4), uint8(0))
	f.Add([]byte("x"), uint8(40), uint8(30), uint64(5), uint8(0))
	f.Fuzz(func(t *testing.T, secret []byte, k, n uint8, seed uint64, off uint8) {
		shares, err := Split(secret, int(k), int(n), WithRandom(detRandom(seed)))
		if err != nil {
			if k >= 2 && k <= n {
				t.Fatalf("Split(k=%d, n=%d) failed: %v", k, n, err)
			}
			return
		}
		if k < 2 || k > n {
			t.Fatalf("Split accepted k=%d, n=%d", k, n)
		}
		want, err := refSplit(secret, int(k), SeqX(int(n)), detRandom(seed))
		if err != nil {
			t.Fatal(err)
		}
		for i := range shares {
			if !bytes.Equal(shares[i].Y, want[i].Y) {
				t.Fatalf("share %d differs from reference", i)
			}
		}
		start := int(off) % (int(n) - int(k) + 1)
		got, err := Combine(shares[start : start+int(k)])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("round trip failed (k=%d, n=%d, len=%d)", k, n, len(secret))
		}
	})
}
