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

// Received records arrived sequence numbers as a cumulative point and ranges above it.
type Received struct {
	cum    uint64
	ranges []wire.SeqRange // ascending, disjoint, non-adjacent, all above cum
	span   uint64          // largest allowed distance of a new seq above cum
}

// NewReceived returns an empty record that accepts sequence numbers up to span above its
// cumulative point. A span of window ÷ chunk size bounds it for a sender that respects the window;
// it also bounds the number of ranges, and so the memory, to span/2.
func NewReceived(span uint64) *Received { return &Received{span: max(span, 1)} }

// Add records seq and reports whether it was new.
func (r *Received) Add(seq uint64) (bool, error) {
	if seq < r.cum {
		return false, nil
	}
	if seq-r.cum >= r.span {
		return false, fmt.Errorf("%w: %d with all below %d received, limit %d ahead", ErrTooFarAhead, seq, r.cum, r.span)
	}
	if seq == r.cum {
		r.cum++
		if len(r.ranges) > 0 && r.ranges[0].From == r.cum {
			r.cum = r.ranges[0].To
			r.ranges = slices.Delete(r.ranges, 0, 1)
		}
		return true, nil
	}
	// i is the first range starting above seq.
	i, _ := slices.BinarySearchFunc(r.ranges, seq, func(g wire.SeqRange, s uint64) int {
		if g.From > s {
			return 1
		}
		return -1
	})
	if i > 0 && seq < r.ranges[i-1].To {
		return false, nil
	}
	joinPrev := i > 0 && r.ranges[i-1].To == seq
	joinNext := i < len(r.ranges) && r.ranges[i].From == seq+1
	switch {
	case joinPrev && joinNext:
		r.ranges[i-1].To = r.ranges[i].To
		r.ranges = slices.Delete(r.ranges, i, i+1)
	case joinPrev:
		r.ranges[i-1].To++
	case joinNext:
		r.ranges[i].From--
	default:
		r.ranges = slices.Insert(r.ranges, i, wire.SeqRange{From: seq, To: seq + 1})
	}
	return true, nil
}

// Has reports whether seq has arrived.
func (r *Received) Has(seq uint64) bool {
	if seq < r.cum {
		return true
	}
	for _, g := range r.ranges {
		if seq < g.From {
			return false
		}
		if seq < g.To {
			return true
		}
	}
	return false
}

// Cum returns the cumulative point: every seq below it has arrived.
func (r *Received) Cum() uint64 { return r.cum }

// Ranges returns how many ranges lie above the cumulative point.
func (r *Received) Ranges() int { return len(r.ranges) }

// Fill sets a to the current record: the cumulative point and the lowest MaxAckRanges ranges.
func (r *Received) Fill(a *wire.ChunkAck) {
	a.Cum = r.cum
	a.Ranges = append(a.Ranges[:0], r.ranges[:min(len(r.ranges), wire.MaxAckRanges)]...)
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

// Len returns the number of unacknowledged chunks.
func (o *Outstanding[T]) Len() int { return len(o.m) }

// Each calls fn for every unacknowledged chunk, in no particular order.
func (o *Outstanding[T]) Each(fn func(seq uint64, v T)) {
	for s, v := range o.m {
		fn(s, v)
	}
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
