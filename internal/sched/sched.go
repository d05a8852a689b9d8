// Package sched decides which path carries each piece of a session's data.
//
// A Scheduler sees each path's measurements — whether it is live, the bytes queued on it and in
// flight, its smoothed round-trip time and delivery rate — never the data itself. Policies range
// from the seed protocol's deterministic round-robin to adaptive ones that weigh queue against
// rate:
//
//   - [AdaptiveName] ([Adaptive], the default): each chunk goes to the path on which it would be
//     delivered first, given each path's backlog, rate and one-way delay, or to a less busy path
//     that would deliver it late by no more than the earliest path's own backlog takes.
//   - [LowestRTTName] ([LowestRTT]): the lowest-RTT path that has room, as Linux MPTCP's default
//     scheduler does.
//   - [RedundantName] ([Redundant]): adaptive's choice, plus a copy of each chunk on every other
//     live path with room (see [Replicator]).
//   - [RoundRobinName] ([RoundRobin]): the live paths in turn.
package sched

import (
	"fmt"
	"slices"
	"time"
)

// Path is a scheduler's view of one path at the moment of a decision.
//
// Policies tolerate any values: negative byte counts and RTTs count as 0, a DeliveryRate that is
// not positive (or is NaN) counts as "not yet measured", and an infinite one as very fast.
type Path struct {
	Index       int   // the path's index in its session
	Live        bool  // the path can carry data now; a path that is not live is never picked
	QueuedBytes int64 // bytes accepted for the path but not yet written to its socket
	// InFlight is the bytes written to the path's socket and not yet acknowledged by the peer:
	// those still in the kernel's send buffer, those on the wire, and those delivered whose
	// acknowledgement is on its way back.
	InFlight int64
	SRTT     time.Duration // smoothed round-trip time; 0 if not yet measured
	// DeliveryRate is the rate, in bytes per second, at which the peer has recently been
	// acknowledging the path's data, smoothed; 0 if not yet measured. It should reflect what the
	// path delivers while it has data to send.
	DeliveryRate float64
	// Full reports that the path's queue has no room for another chunk now: a chunk given to it
	// would wait for room (the sender is ahead of the path).
	Full bool
	// Answer marks the path the peer's data last arrived on: light traffic answered there keeps
	// a request and its reply on one connection, as TCP would ([Adaptive]'s affinity).
	Answer bool
	// Lossy marks a path whose TCP connection retransmitted recently: a chunk given to it may
	// wait a retransmission there, a round trip or more ([LossCopy]).
	Lossy bool
}

// Scheduler picks a path for each piece of data. Implementations need not be safe for concurrent
// use: a session calls its scheduler under its send lock.
type Scheduler interface {
	// Pick returns the position in paths of the path that should carry a piece of size bytes,
	// or -1 if no path is live.
	Pick(paths []Path, size int) int
	// Name returns the policy's name as used in configuration.
	Name() string
}

// Policy names, as used in configuration and returned by [Scheduler.Name].
const (
	// RoundRobinName is the name of the round-robin policy ([RoundRobin]).
	RoundRobinName = "round-robin"
	// AdaptiveName is the name of the adaptive, earliest-delivery policy ([Adaptive]).
	AdaptiveName = "adaptive"
	// LowestRTTName is the name of the lowest-RTT-with-room policy ([LowestRTT]).
	LowestRTTName = "lowest-rtt"
	// RedundantName is the name of the redundant policy ([Redundant]).
	RedundantName = "redundant"
)

// DefaultName is the policy a session should use when none is configured.
const DefaultName = AdaptiveName

var policies = map[string]func() Scheduler{
	RoundRobinName: func() Scheduler { return &RoundRobin{} },
	AdaptiveName:   func() Scheduler { return &Adaptive{} },
	LowestRTTName:  func() Scheduler { return &LowestRTT{} },
	RedundantName:  func() Scheduler { return &Redundant{} },
}

// New returns a fresh scheduler of the named policy, one of [Names]; an unknown name is an error
// that lists the valid ones.
func New(name string) (Scheduler, error) {
	f, ok := policies[name]
	if !ok {
		return nil, fmt.Errorf("sched: unknown scheduler %q (have %v)", name, Names())
	}
	return f(), nil
}

// Names lists the available policies, sorted.
func Names() []string {
	var names []string
	for n := range policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RoundRobin is the seed protocol's deterministic routing: pieces go to the live paths in turn,
// in index order, skipping dead ones. It runs at the pace of the slowest path, since every path
// gets the same share.
type RoundRobin struct {
	last int // Index of the path picked last; the next pick starts after it
	used bool
}

// Name implements Scheduler.
func (*RoundRobin) Name() string { return RoundRobinName }

// Pick implements Scheduler: the first live path whose Index follows the last one picked,
// wrapping around.
func (rr *RoundRobin) Pick(paths []Path, size int) int {
	best, wrap := -1, -1
	for i, p := range paths {
		if !p.Live {
			continue
		}
		if rr.used && p.Index <= rr.last {
			if wrap < 0 || p.Index < paths[wrap].Index {
				wrap = i
			}
			continue
		}
		if best < 0 || p.Index < paths[best].Index {
			best = i
		}
	}
	if best < 0 {
		best = wrap
	}
	if best >= 0 {
		rr.last, rr.used = paths[best].Index, true
	}
	return best
}
