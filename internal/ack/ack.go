// Package ack is session-level acknowledgement: the receiver's record of which chunk sequence
// numbers have arrived (Received), and the sender's record of which are still unacknowledged
// (Outstanding). A CHUNK_ACK frame carries the first as a cumulative point and ranges; applying it
// to the second releases exactly the chunks that arrived.
//
// Neither type is safe for concurrent use; the session serialises calls.
package ack

import (
	"errors"
	"fmt"
	"slices"

	"github.com/braidnet/braid/internal/wire"
)

// ErrTooFarAhead reports a sequence number further beyond the cumulative point than a sender that
// respects the receive window can ever be.
var ErrTooFarAhead = errors.New("ack: sequence number too far ahead")

// Received records arrived sequence numbers: a cumulative point, and a ring bitmap of the span
// above it. Add is amortised O(1) whatever the arrival order, so a sender that leaves many gaps
// costs no more than one that leaves none.
type Received struct {
	cum  uint64   // every seq below it has arrived
	span uint64   // largest allowed distance of a new seq above cum
	mask uint64   // ring size − 1 (the ring is a power of two of at least span bits)
	ring []uint64 // bit (seq & mask) is set when seq, in [cum, cum+span), has arrived
}

// NewReceived returns an empty record that accepts sequence numbers up to span above its
// cumulative point. A span of window ÷ chunk size bounds it for a sender that respects the
// window; the record's memory is about span/8 bytes.
func NewReceived(span uint64) *Received {
	span = max(span, 1)
	size := uint64(64)
	for size < span {
		size <<= 1
	}
	return &Received{span: span, mask: size - 1, ring: make([]uint64, size/64)}
}

func (r *Received) bit(seq uint64) (word int, b uint64) {
	i := seq & r.mask
	return int(i / 64), uint64(1) << (i % 64)
}

// Allowed reports whether Add would accept seq: it fails, wrapping ErrTooFarAhead, for a seq too
// far beyond the cumulative point.
func (r *Received) Allowed(seq uint64) error {
	if seq >= r.cum && seq-r.cum >= r.span {
		return fmt.Errorf("%w: %d with all below %d received, limit %d ahead", ErrTooFarAhead, seq, r.cum, r.span)
	}
	return nil
}

// Add records seq and reports whether it was new.
func (r *Received) Add(seq uint64) (bool, error) {
	if seq < r.cum {
		return false, nil
	}
	if err := r.Allowed(seq); err != nil {
		return false, err
	}
	w, b := r.bit(seq)
	if r.ring[w]&b != 0 {
		return false, nil
	}
	r.ring[w] |= b
	// Advance the cumulative point over everything now contiguous, clearing bits as it goes
	// (each bit is set and cleared once: amortised O(1)).
	for {
		w, b := r.bit(r.cum)
		if r.ring[w]&b == 0 {
			break
		}
		r.ring[w] &^= b
		r.cum++
	}
	return true, nil
}

// Has reports whether seq has arrived.
func (r *Received) Has(seq uint64) bool {
	if seq < r.cum {
		return true
	}
	if seq-r.cum >= r.span {
		return false
	}
	w, b := r.bit(seq)
	return r.ring[w]&b != 0
}

// Cum returns the cumulative point: every seq below it has arrived.
func (r *Received) Cum() uint64 { return r.cum }

// each calls fn for the ranges above the cumulative point, in order, until fn returns false.
func (r *Received) each(fn func(wire.SeqRange) bool) {
	var open bool
	var from uint64
	for seq := r.cum + 1; seq < r.cum+r.span; {
		w, _ := r.bit(seq)
		off := seq & 63
		word := r.ring[w] >> off // the bits for seq onwards, within this word
		n := min(64-off, r.cum+r.span-seq)
		if !open && word == 0 {
			seq += n
			continue
		}
		if open && n == 64 && word == ^uint64(0) {
			seq += n
			continue
		}
		if word&1 != 0 && !open {
			open, from = true, seq
		} else if word&1 == 0 && open {
			open = false
			if !fn(wire.SeqRange{From: from, To: seq}) {
				return
			}
		}
		seq++
	}
	if open {
		fn(wire.SeqRange{From: from, To: r.cum + r.span})
	}
}

// Ranges returns how many ranges lie above the cumulative point.
func (r *Received) Ranges() int {
	n := 0
	r.each(func(wire.SeqRange) bool { n++; return true })
	return n
}

// Fill sets a to the current record: the cumulative point and the lowest MaxAckRanges ranges.
func (r *Received) Fill(a *wire.ChunkAck) {
	a.Cum = r.cum
	a.Ranges = a.Ranges[:0]
	r.each(func(g wire.SeqRange) bool {
		a.Ranges = append(a.Ranges, g)
		return len(a.Ranges) < wire.MaxAckRanges
	})
}

// Outstanding is the sender's chunks awaiting acknowledgement, by sequence number.
type Outstanding[T any] struct {
	m   map[uint64]T
	low uint64 // no outstanding seq is below it
}

// NewOutstanding returns an empty tracker.
func NewOutstanding[T any]() *Outstanding[T] { return &Outstanding[T]{m: make(map[uint64]T)} }

// Add records v as sent with seq.
func (o *Outstanding[T]) Add(seq uint64, v T) {
	if len(o.m) == 0 || seq < o.low {
		o.low = seq
	}
	o.m[seq] = v
}

// Remove forgets seq without acknowledging it (a chunk taken back before it was sent), and
// reports whether it was there.
func (o *Outstanding[T]) Remove(seq uint64) bool {
	_, ok := o.m[seq]
	delete(o.m, seq)
	return ok
}

// Len returns the number of unacknowledged chunks.
func (o *Outstanding[T]) Len() int { return len(o.m) }

// Each calls fn for every unacknowledged chunk, in no particular order.
func (o *Outstanding[T]) Each(fn func(seq uint64, v T)) {
	for s, v := range o.m {
		fn(s, v)
	}
}

// InOrder calls fn for every unacknowledged chunk that keep selects, lowest seq first (what the
// receiver needs first to deliver in order). keep sees every chunk before fn sees any, and only
// the chunks it selects are sorted, in scratch, which InOrder returns for reuse. fn may remove
// chunks; one removed before its turn is skipped.
func (o *Outstanding[T]) InOrder(scratch []uint64, keep func(seq uint64, v T) bool, fn func(seq uint64, v T)) []uint64 {
	scratch = scratch[:0]
	for s, v := range o.m {
		if keep(s, v) {
			scratch = append(scratch, s)
		}
	}
	slices.Sort(scratch)
	for _, s := range scratch {
		if v, ok := o.m[s]; ok {
			fn(s, v)
		}
	}
	return scratch
}

// Apply removes every chunk that a acknowledges, calling acked once for each.
func (o *Outstanding[T]) Apply(a *wire.ChunkAck, acked func(seq uint64, v T)) {
	o.release(o.low, a.Cum, acked)
	if a.Cum > o.low {
		o.low = a.Cum
	}
	for _, g := range a.Ranges {
		o.release(g.From, g.To, acked)
	}
}

// release acknowledges [from, to): by walking the range or the map, whichever is shorter.
func (o *Outstanding[T]) release(from, to uint64, acked func(uint64, T)) {
	if from >= to || len(o.m) == 0 {
		return
	}
	if to-from <= uint64(len(o.m)) {
		for s := from; s < to; s++ {
			if v, ok := o.m[s]; ok {
				delete(o.m, s)
				acked(s, v)
			}
		}
		return
	}
	for s, v := range o.m {
		if s >= from && s < to {
			delete(o.m, s)
			acked(s, v)
		}
	}
}
