package reasm

import (
	"bytes"
	"testing"
)

// TestLazyAllocation: a large item's message buffer is not allocated on its first chunk. A chunk
// alone costs its own bytes; the buffer comes once 1/LazyFactor of the chunks are in, the
// chunks held until then (committed, being filled, or offered copies) land in it, and the
// message is exact.
func TestLazyAllocation(t *testing.T) {
	if LazyFactor != 8 { // docs/PROTOCOL.md, 5.3
		t.Fatalf("LazyFactor = %d, documented as 8", LazyFactor)
	}
	const cs, total = 16, 40
	var allocated, freed int
	r := New(Config{ChunkSize: cs, MaxTotal: 100, Budget: 1 << 20,
		Alloc: func(n int) []byte { allocated += n; return make([]byte, n) },
		Free:  func(b []byte) { freed += len(b) },
	})
	msg := make([]byte, (total-1)*cs+5)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	parts := split(msg, cs)
	fill := func(c int) []byte {
		dst, dup, err := r.Reserve(hdr(0, uint32(c), total), len(parts[c]))
		if err != nil || dup {
			t.Fatalf("chunk %d: %v %v", c, dup, err)
		}
		return dst
	}
	// The last chunk first (5 bytes): only those are allocated, though the item is 40 chunks.
	copy(fill(total-1), parts[total-1])
	r.Commit(hdr(0, total-1, total))
	if allocated != 5 {
		t.Fatalf("after one 5-byte chunk of a %d-chunk item: %d bytes allocated", total, allocated)
	}
	// A chunk held up mid-read, and one whose read fails and is replaced by an offered copy.
	busy := fill(3)
	failing := fill(4)
	if !r.Offer(hdr(0, 4, total), bytes.Clone(parts[4])) {
		t.Fatal("Offer refused")
	}
	if committed, spare := r.Cancel(hdr(0, 4, total)); !committed || spare != nil {
		t.Fatalf("Cancel = %v, %v: the copy should become the chunk's own buffer", committed, spare)
	}
	_ = failing
	// total/LazyFactor = 5 chunks reserved: the fifth makes the buffer.
	copy(fill(0), parts[0])
	r.Commit(hdr(0, 0, total))
	if allocated > 4*cs+5 {
		t.Fatalf("before a fifth of the chunks: %d bytes allocated", allocated)
	}
	copy(fill(1), parts[1])
	r.Commit(hdr(0, 1, total))
	if allocated < total*cs {
		t.Fatalf("the message buffer was not made at %d of %d chunks (%d bytes allocated)", 5, total, allocated)
	}
	copy(busy, parts[3]) // the held-up read finishes after the buffer was made
	r.Commit(hdr(0, 3, total))
	for c := range total - 1 {
		if c == 0 || c == 1 || c == 3 || c == 4 {
			continue
		}
		copy(fill(c), parts[c])
		r.Commit(hdr(0, uint32(c), total))
	}
	got, _, ok := r.Pop()
	if !ok || !bytes.Equal(got, msg) {
		t.Fatalf("Pop: ok %v, message intact %v", ok, bytes.Equal(got, msg))
	}
	// Every chunk buffer of its own was given back: the last chunk's, 0's and 4's copy when the
	// buffer was made, 3's at its commit, and 4's own at its failed read (1 went straight in).
	if want := 5 + 4*cs; freed != want {
		t.Fatalf("freed %d bytes of chunk buffers, want %d", freed, want)
	}
	if len(r.items) != 0 {
		t.Fatal("item left behind")
	}
}
