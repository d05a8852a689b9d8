package sched

import (
	"slices"
	"strings"
	"testing"
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
