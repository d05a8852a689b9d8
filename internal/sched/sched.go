// Package sched decides which path carries each piece of a session's data.
//
// A Scheduler sees each path's measurements — whether it is live, the bytes queued on it, its
// smoothed round-trip time and delivery rate — never the data itself. Policies range from the
// seed protocol's deterministic round-robin to adaptive ones that weigh queue against rate.
package sched

import (
	"fmt"
	"slices"
	"time"
)

// Path is a scheduler's view of one path at the moment of a decision.
type Path struct {
	Index        int           // the path's index in its session
	Live         bool          // the path can carry data now
	QueuedBytes  int64         // bytes accepted for the path but not yet written to its socket
	InFlight     int64         // bytes written but not yet acknowledged by the peer
	SRTT         time.Duration // smoothed round-trip time; 0 if not yet measured
	DeliveryRate float64       // recent delivery rate in bytes per second; 0 if not yet measured
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

// RoundRobinName is the name of the round-robin policy.
const RoundRobinName = "round-robin"

var policies = map[string]func() Scheduler{
	RoundRobinName: func() Scheduler { return &RoundRobin{} },
}

// New returns a fresh scheduler of the named policy.
func New(name string) (Scheduler, error) {
	f, ok := policies[name]
	if !ok {
		return nil, fmt.Errorf("sched: unknown scheduler %q (have %v)", name, Names())
	}
	return f(), nil
}

// Names lists the available policies.
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
