package ack

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/braidnet/braid/internal/wire"
)

func TestReceivedMerges(t *testing.T) {
	r := NewReceived(1000)
	for _, s := range []uint64{5, 7, 6, 10, 3, 4} {
		if ok, err := r.Add(s); !ok || err != nil {
			t.Fatalf("Add(%d) = %v, %v", s, ok, err)
		}
	}
	// Received: 3..7, 10. Missing 0..2, 8, 9.
	var a wire.ChunkAck
	r.Fill(&a)
	if a.Cum != 0 || len(a.Ranges) != 2 || a.Ranges[0] != (wire.SeqRange{From: 3, To: 8}) || a.Ranges[1] != (wire.SeqRange{From: 10, To: 11}) {
		t.Fatalf("%+v", a)
	}
	for _, s := range []uint64{0, 1, 2} {
		r.Add(s)
	}
	if r.Cum() != 8 || r.Ranges() != 1 {
		t.Fatalf("cum %d ranges %d", r.Cum(), r.Ranges())
	}
	if ok, _ := r.Add(5); ok {
		t.Fatal("duplicate reported new")
	}
	r.Add(9)
	r.Add(8)
	if r.Cum() != 11 || r.Ranges() != 0 || !r.Has(10) || r.Has(11) {
		t.Fatalf("cum %d ranges %d", r.Cum(), r.Ranges())
	}
	if _, err := r.Add(11 + 1000); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("far ahead: %v", err)
	}
}

func TestOutstandingApply(t *testing.T) {
	o := NewOutstanding[string]()
	for s := uint64(0); s < 10; s++ {
		o.Add(s, "c")
	}
	var got []uint64
	o.Apply(&wire.ChunkAck{Cum: 3, Ranges: []wire.SeqRange{{From: 5, To: 7}}}, func(s uint64, _ string) { got = append(got, s) })
	if len(got) != 5 || o.Len() != 5 {
		t.Fatalf("acked %v, %d left", got, o.Len())
	}
	// A stale ACK acknowledges nothing new.
	got = nil
	o.Apply(&wire.ChunkAck{Cum: 2}, func(s uint64, _ string) { got = append(got, s) })
	if len(got) != 0 {
		t.Fatalf("stale ack released %v", got)
	}
}

// FuzzAckStateMachine drives a sender and a receiver through random sends, losses, duplicates,
// reordering, and ACKs that are lost, reordered or stale, and checks that the sender releases a
// chunk only once it has arrived, exactly once, and releases everything once everything has
// arrived and a fresh ACK gets through.
func FuzzAckStateMachine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uint64(1))
	f.Add([]byte{0xff, 0, 0xff, 0, 0x80, 0x40}, uint64(42))
	f.Fuzz(func(t *testing.T, prog []byte, seed uint64) {
		const span = 512
		rng := rand.New(rand.NewPCG(seed, 3))
		recv := NewReceived(span)
		out := NewOutstanding[int]()
		var next uint64
		arrived := map[uint64]bool{}
		released := map[uint64]bool{}
		var acks [][]byte // ACK frames in flight, encoded
		release := func(s uint64, v int) {
			if released[s] {
				t.Fatalf("seq %d released twice", s)
			}
			if !arrived[s] {
				t.Fatalf("seq %d released before it arrived", s)
			}
			if uint64(v) != s {
				t.Fatalf("value %d for seq %d", v, s)
			}
			released[s] = true
		}
		deliver := func(s uint64) {
			if s-recv.Cum() >= span && s >= recv.Cum() {
				return // a window-respecting sender never gets this far ahead
			}
			isNew, err := recv.Add(s)
			if err != nil {
				t.Fatal(err)
			}
			if isNew == arrived[s] {
				t.Fatalf("Add(%d) new=%v but arrived=%v", s, isNew, arrived[s])
			}
			arrived[s] = true
		}
		for _, op := range prog {
			switch op % 5 {
			case 0, 1: // send a few chunks; some arrive at once, in any order
				n := uint64(op>>3) + 1
				for range n {
					out.Add(next, int(next))
					if rng.IntN(4) > 0 {
						deliver(next)
					}
					next++
				}
			case 2: // a retransmission or late copy of some unacknowledged chunk arrives
				if next > recv.Cum() {
					deliver(recv.Cum() + uint64(rng.IntN(int(min(next-recv.Cum(), span)))))
				}
			case 3: // the receiver emits an ACK
				var a wire.ChunkAck
				recv.Fill(&a)
				acks = append(acks, wire.AppendChunkAck(nil, a))
			case 4: // an ACK in flight arrives (any of them: reordered), or is lost
				if len(acks) == 0 {
					continue
				}
				i := rng.IntN(len(acks))
				p := acks[i]
				acks = append(acks[:i], acks[i+1:]...)
				if op&0x80 != 0 {
					continue
				}
				var a wire.ChunkAck
				if err := wire.ParseChunkAck(p, &a); err != nil {
					t.Fatalf("receiver produced a malformed ACK: %v", err)
				}
				out.Apply(&a, release)
			}
			if recv.Ranges() > span/2+1 {
				t.Fatalf("%d ranges for span %d", recv.Ranges(), span)
			}
		}
		// Everything arrives; fresh ACKs release everything.
		for s := uint64(0); s < next; s++ {
			if !arrived[s] {
				deliver(s)
			}
		}
		var a wire.ChunkAck
		recv.Fill(&a)
		out.Apply(&a, release)
		if out.Len() != 0 || recv.Cum() != next || len(released) != int(next) {
			t.Fatalf("after all arrived: %d outstanding, cum %d of %d, %d released", out.Len(), recv.Cum(), next, len(released))
		}
	})
}

// TestReceivedGappy: every other seq of a large span missing — the pattern that made a sorted
// range list quadratic — is recorded exactly, and filling the gaps collapses it.
func TestReceivedGappy(t *testing.T) {
	const span = 1 << 16
	r := NewReceived(span)
	for s := uint64(1); s < span; s += 2 {
		if ok, err := r.Add(s); !ok || err != nil {
			t.Fatal(s, ok, err)
		}
	}
	if r.Cum() != 0 || r.Ranges() != span/2 {
		t.Fatalf("cum %d, %d ranges", r.Cum(), r.Ranges())
	}
	var a wire.ChunkAck
	r.Fill(&a)
	if len(a.Ranges) != wire.MaxAckRanges || a.Ranges[0] != (wire.SeqRange{From: 1, To: 2}) {
		t.Fatalf("%d ranges, first %v", len(a.Ranges), a.Ranges[0])
	}
	for s := uint64(0); s < span; s += 2 {
		r.Add(s)
	}
	if r.Cum() != span || r.Ranges() != 0 {
		t.Fatalf("cum %d, %d ranges", r.Cum(), r.Ranges())
	}
}

// BenchmarkReceivedGappy is the per-chunk cost of recording a window's worth of seqs arriving
// with every other one delayed: constant, not growing with the number of gaps.
func BenchmarkReceivedGappy(b *testing.B) {
	const span = 1 << 16
	b.ReportAllocs()
	for b.Loop() {
		r := NewReceived(span)
		for s := uint64(1); s < span; s += 2 {
			r.Add(s)
		}
		for s := uint64(0); s < span; s += 2 {
			r.Add(s)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/span, "ns/seq")
}

// TestOutstandingInOrder: only the chunks keep selects reach fn, lowest seq first, and one that fn
// removes before its turn is skipped.
func TestOutstandingInOrder(t *testing.T) {
	o := NewOutstanding[int]()
	for _, s := range []uint64{9, 3, 7, 1, 5, 4} {
		o.Add(s, int(s)*10)
	}
	var got []uint64
	odd := func(s uint64, v int) bool { return s%2 == 1 && v == int(s)*10 }
	scratch := o.InOrder(nil, odd, func(s uint64, _ int) {
		got = append(got, s)
		if s == 3 {
			o.Remove(7)
		}
	})
	if !slices.Equal(got, []uint64{1, 3, 5, 9}) {
		t.Errorf("visited %v; want [1 3 5 9]", got)
	}
	if cap(scratch) < 5 {
		t.Errorf("scratch of capacity %d returned", cap(scratch))
	}
}
