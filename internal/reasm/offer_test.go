package reasm

import (
	"bytes"
	"testing"

	"github.com/braidnet/braid/internal/wire"
)

// TestOfferReplacesAStalledReservation: a copy offered while the chunk is being filled takes its
// place if the reservation is cancelled, and is handed back unused if it is committed.
func TestOfferReplacesAStalledReservation(t *testing.T) {
	const cs = 8
	h0 := wire.ChunkHeader{Item: 0, Chunk: 0, Total: 2}
	h1 := wire.ChunkHeader{Item: 0, Chunk: 1, Total: 2}
	newR := func() *Reassembler { return New(Config{ChunkSize: cs, MaxTotal: 10, Budget: 1 << 10}) }

	t.Run("cancel commits the copy", func(t *testing.T) {
		r := newR()
		dst, dup, err := r.ReserveBy(h0, cs, 7)
		if err != nil || dup || len(dst) != cs {
			t.Fatal(dup, err)
		}
		if owner, busy := r.BusyOwner(h0); !busy || owner != 7 {
			t.Fatalf("BusyOwner = %d, %v", owner, busy)
		}
		if _, dup, _ := r.ReserveBy(h0, cs, 3); !dup {
			t.Fatal("second reservation of a busy chunk not a duplicate")
		}
		if r.Offer(h0, []byte("short")) {
			t.Fatal("accepted a copy of the wrong length")
		}
		if r.Offered(h0) {
			t.Fatal("Offered before any offer")
		}
		copyData := []byte("AAAAAAAA")
		if !r.Offer(h0, copyData) || r.Offer(h0, []byte("BBBBBBBB")) {
			t.Fatal("Offer: want the first copy kept and a second refused")
		}
		if !r.Offered(h0) || r.Offered(h1) || r.Offered(wire.ChunkHeader{Item: 9, Total: 1}) {
			t.Fatal("Offered: want the offered chunk only")
		}
		committed, spare := r.Cancel(h0)
		if !committed || !bytes.Equal(spare, copyData) {
			t.Fatalf("Cancel = %v, %q", committed, spare)
		}
		if r.Offered(h0) {
			t.Fatal("Offered after the copy took the chunk's place")
		}
		if _, busy := r.BusyOwner(h0); busy {
			t.Fatal("still busy")
		}
		d1, _, _ := r.Reserve(h1, 3)
		copy(d1, "xyz")
		r.Commit(h1)
		msg, _, ok := r.Pop()
		if !ok || string(msg) != "AAAAAAAAxyz" {
			t.Fatalf("Pop = %q, %v", msg, ok)
		}
	})
	t.Run("commit drops the copy", func(t *testing.T) {
		r := newR()
		dst, _, _ := r.ReserveBy(h0, cs, 1)
		r.Offer(h0, []byte("CCCCCCCC"))
		copy(dst, "DDDDDDDD")
		if spare := r.Commit(h0); string(spare) != "CCCCCCCC" {
			t.Fatalf("spare %q", spare)
		}
		if committed, _ := r.Cancel(h0); committed {
			t.Fatal("Cancel after Commit committed")
		}
	})
	t.Run("offer needs a reservation", func(t *testing.T) {
		r := newR()
		if r.Offer(h0, make([]byte, cs)) {
			t.Fatal("Offer without a reservation kept the copy")
		}
		if _, busy := r.BusyOwner(wire.ChunkHeader{Item: 5, Chunk: 9, Total: 2}); busy {
			t.Fatal("unknown chunk busy")
		}
	})
}
