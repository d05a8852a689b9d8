package sched

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func livePaths(indices ...int) []Path {
	ps := make([]Path, len(indices))
	for i, idx := range indices {
		ps[i] = Path{Index: idx, Live: true}
	}
	return ps
}

// picks runs n picks and returns the Index of each chosen path (or -1).
func picks(t *testing.T, s Scheduler, paths []Path, n int) []int {
	t.Helper()
	var got []int
	for range n {
		i := s.Pick(paths, 1024)
		if i < -1 || i >= len(paths) {
			t.Fatalf("Pick returned %d for %d paths", i, len(paths))
		}
		if i < 0 {
			got = append(got, -1)
			continue
		}
		if !paths[i].Live {
			t.Fatalf("Pick chose dead path %+v", paths[i])
		}
		got = append(got, paths[i].Index)
	}
	return got
}

func wantPicks(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: picked %v, want %v", what, got, want)
	}
}

func TestRoundRobinCycles(t *testing.T) {
	rr := &RoundRobin{}
	wantPicks(t, "4 live", picks(t, rr, livePaths(0, 1, 2, 3), 9), 0, 1, 2, 3, 0, 1, 2, 3, 0)
}

func TestRoundRobinSkipsDead(t *testing.T) {
	rr := &RoundRobin{}
	ps := livePaths(0, 1, 2, 3)
	ps[2].Live = false
	wantPicks(t, "path 2 dead", picks(t, rr, ps, 7), 0, 1, 3, 0, 1, 3, 0)

	rr = &RoundRobin{}
	ps = livePaths(0, 1, 2, 3)
	ps[0].Live = false
	wantPicks(t, "path 0 dead", picks(t, rr, ps, 4), 1, 2, 3, 1)

	rr = &RoundRobin{}
	ps = livePaths(0, 1, 2, 3)
	ps[0].Live, ps[1].Live, ps[3].Live = false, false, false
	wantPicks(t, "only path 2", picks(t, rr, ps, 3), 2, 2, 2)
}

func TestRoundRobinAllDead(t *testing.T) {
	rr := &RoundRobin{}
	if got := rr.Pick(nil, 1); got != -1 {
		t.Errorf("no paths: Pick = %d", got)
	}
	ps := livePaths(0, 1, 2, 3)
	wantPicks(t, "before", picks(t, rr, ps, 2), 0, 1)
	for i := range ps {
		ps[i].Live = false
	}
	wantPicks(t, "all dead", picks(t, rr, ps, 3), -1, -1, -1)
	// A -1 pick does not move the cursor: the rotation resumes after path 1.
	for i := range ps {
		ps[i].Live = true
	}
	wantPicks(t, "after", picks(t, rr, ps, 3), 2, 3, 0)
}

func TestRoundRobinRevival(t *testing.T) {
	rr := &RoundRobin{}
	ps := livePaths(0, 1, 2, 3)
	ps[2].Live = false
	wantPicks(t, "2 dead", picks(t, rr, ps, 2), 0, 1)
	ps[2].Live = true
	wantPicks(t, "2 back after 1", picks(t, rr, ps, 5), 2, 3, 0, 1, 2)

	rr = &RoundRobin{}
	ps = livePaths(0, 1, 2, 3)
	ps[1].Live = false
	wantPicks(t, "1 dead", picks(t, rr, ps, 3), 0, 2, 3)
	ps[1].Live = true
	// Path 1 is behind the cursor, so it comes in on the next lap, in index order.
	wantPicks(t, "1 back after 3", picks(t, rr, ps, 5), 0, 1, 2, 3, 0)
}

func TestRoundRobinByIndexNotPosition(t *testing.T) {
	rr := &RoundRobin{}
	ps := livePaths(2, 0, 3, 1)
	var pos []int
	for range 6 {
		pos = append(pos, rr.Pick(ps, 1))
	}
	// Index 0,1,2,3,0,1 sit at positions 1,3,0,2,1,3.
	wantPicks(t, "positions", pos, 1, 3, 0, 2, 1, 3)

	// Sparse indices, and the slice reordered between calls.
	rr = &RoundRobin{}
	wantPicks(t, "sparse", picks(t, rr, livePaths(7, 0, 5), 2), 0, 5)
	wantPicks(t, "sparse reordered", picks(t, rr, livePaths(5, 7, 0), 4), 7, 0, 5, 7)
	// A path that disappears from the slice is simply not considered.
	wantPicks(t, "path 0 removed", picks(t, rr, livePaths(7, 5), 3), 5, 7, 5)
}

func TestRoundRobinIgnoresMeasurements(t *testing.T) {
	rr := &RoundRobin{}
	ps := livePaths(0, 1, 2)
	ps[0].QueuedBytes = 1 << 30
	ps[1].SRTT = 1 << 40
	ps[2].DeliveryRate = 1e12
	wantPicks(t, "measurements", picks(t, rr, ps, 6), 0, 1, 2, 0, 1, 2)
}

func TestNewAndNames(t *testing.T) {
	s, err := New("round-robin")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != RoundRobinName || RoundRobinName != "round-robin" {
		t.Errorf("Name() = %q", s.Name())
	}
	if _, ok := s.(*RoundRobin); !ok {
		t.Errorf("New(round-robin) = %T", s)
	}
	// Each New is a fresh scheduler with its own cursor.
	s2, _ := New(RoundRobinName)
	ps := livePaths(0, 1, 2)
	wantPicks(t, "first", picks(t, s, ps, 2), 0, 1)
	wantPicks(t, "second", picks(t, s2, ps, 1), 0)

	if s, err := New("nope"); err == nil || s != nil {
		t.Errorf("New(nope) = %v, %v", s, err)
	} else if !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "round-robin") {
		t.Errorf("error %q should name the policy and the choices", err)
	}
	if _, err := New(""); err == nil {
		t.Error("New(\"\") succeeded")
	}
	names := Names()
	if !slices.Contains(names, "round-robin") || !slices.IsSorted(names) {
		t.Errorf("Names() = %v", names)
	}
	for _, n := range names {
		if s, err := New(n); err != nil || s.Name() != n {
			t.Errorf("New(%q) = %v, %v", n, s, err)
		}
	}
}

// TestLossCopy: a chunk given to a lossy path is copied to the clean path that would deliver it
// first, and only to one that can take it at no cost to anything else.
func TestLossCopy(t *testing.T) {
	const ms = time.Millisecond
	clean := func(idx int) Path {
		return Path{Index: idx, Live: true, SRTT: 20 * ms, DeliveryRate: 6.25e6} // 50 Mbit/s: BDP 125 kB
	}
	lossy := func(idx int) Path { p := clean(idx); p.Lossy = true; return p }
	with := func(p Path, f func(*Path)) Path { f(&p); return p }
	for _, tc := range []struct {
		name   string
		paths  []Path
		picked int
		want   int
	}{
		{"picked path clean: no copy", []Path{clean(0), clean(1)}, 0, -1},
		{"picked lossy, other clean and idle", []Path{lossy(0), clean(1)}, 0, 1},
		{"picked lossy, the other lossy too", []Path{lossy(0), lossy(1)}, 0, -1},
		{"the clean path has a queue", []Path{lossy(0), with(clean(1), func(p *Path) { p.QueuedBytes = 1 })}, 0, -1},
		{"the clean path is full", []Path{lossy(0), with(clean(1), func(p *Path) { p.Full = true })}, 0, -1},
		{"the clean path has a backlog beyond its BDP", []Path{lossy(0), with(clean(1), func(p *Path) { p.InFlight = 300e3 })}, 0, -1},
		{"in flight within the BDP is no backlog", []Path{lossy(0), with(clean(1), func(p *Path) { p.InFlight = 100e3 })}, 0, 1},
		{"a low measured rate: in flight within the probe bound", []Path{lossy(0), with(clean(1), func(p *Path) { p.DeliveryRate = 1e6; p.InFlight = 200e3 })}, 0, 1},
		{"the clean path is not live", []Path{lossy(0), with(clean(1), func(p *Path) { p.Live = false })}, 0, -1},
		{"the clean path has no rate sample, little in flight", []Path{lossy(0), with(clean(1), func(p *Path) { p.DeliveryRate = 0; p.InFlight = 8e3 })}, 0, 1},
		{"the clean path has no rate sample, much in flight", []Path{lossy(0), with(clean(1), func(p *Path) { p.DeliveryRate = 0; p.InFlight = 300e3 })}, 0, -1},
		{"the clean path has no RTT sample", []Path{lossy(0), with(clean(1), func(p *Path) { p.SRTT = 0 })}, 0, -1},
		{"the earlier of two clean paths", []Path{lossy(0), with(clean(1), func(p *Path) { p.SRTT = 80 * ms }), clean(2)}, 0, 2},
		{"no path picked", []Path{lossy(0), clean(1)}, -1, -1},
	} {
		if got := LossCopy(tc.paths, tc.picked, 64<<10); got != tc.want {
			t.Errorf("%s: LossCopy = %d, want %d", tc.name, got, tc.want)
		}
	}
}
