package main

import (
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReleaseDue(t *testing.T) {
	const mib = 1 << 20
	base := heapSample{allocs: 1000 * mib, live: 100 * mib, held: 200 * mib, cycles: 7}
	at := func(alloc, live, held uint64) heapSample {
		return heapSample{allocs: base.allocs + alloc, live: live * mib, held: held * mib, cycles: 8}
	}
	for _, tc := range []struct {
		name     string
		cur      heapSample
		released uint64
		want     bool
	}{
		{"quiet with the heap twice the live data", at(mib/2, 100, 200), 7, true},
		{"quiet under a quarter of the live heap", at(24*mib, 100, 200), 7, true},
		{"busy: a quarter of the live heap allocated", at(25*mib, 100, 200), 7, false},
		{"spare a quarter of the live heap", at(0, 100, 125), 7, true},
		{"little spare: under a quarter of the live heap", at(0, 100, 124), 7, false},
		{"little spare: under the floor", at(0, 8, 11), 7, false},
		{"at the floor", at(0, 8, 12), 7, true},
		{"small heap, enough spare", at(mib/2, 8, 24), 7, true},
		{"small heap, allocating over the floor", at(mib, 2, 24), 7, false},
		{"no collection since the last release", at(0, 100, 200), 8, false},
		{"never released", at(0, 100, 200), 0, true},
		{"samples out of order", heapSample{allocs: base.allocs - 1, live: 100 * mib, held: 200 * mib, cycles: 8}, 7, false},
		{"held under live (just after a collection)", at(0, 100, 90), 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := releaseDue(base, tc.cur, tc.released); got != tc.want {
				t.Errorf("releaseDue(%+v, %+v, %d) = %v, want %v", base, tc.cur, tc.released, got, tc.want)
			}
		})
	}
}

// TestMemReleaserReturnsFreedHeap grows the heap by a burst of short-lived allocations, as a
// burst of handshakes does, and checks that a quiet period after it returns the freed heap to the
// OS, once: the next quiet period has nothing worth a collection.
func TestMemReleaserReturnsFreedHeap(t *testing.T) {
	burst := func() {
		keep := make([][]byte, 0, 256)
		for range 256 {
			keep = append(keep, make([]byte, 256<<10)) // 64 MiB live at the peak
		}
		runtime.KeepAlive(keep)
	}
	burst()
	runtime.GC()       // the burst is garbage now; its spans are free but not returned
	var pool sync.Pool // as the buffer pools: one collection keeps what a pool holds
	pool.Put(make([]byte, 8<<20))
	r := newMemReleaser(slog.New(slog.NewTextHandler(io.Discard, nil)))
	before := readHeapSample(newHeapSampleBuf())
	if before.spare() < minSpareRelease {
		t.Skipf("the runtime already returned the burst's memory (%d MiB held, %d live)", before.held>>20, before.live>>20)
	}
	// Goroutines of earlier tests winding down may allocate within the "period" (here: none):
	// take a fresh starting sample and try again a few times.
	released := r.check()
	for try := 0; !released && try < 5; try++ {
		r.prev = readHeapSample(r.buf)
		released = r.check()
	}
	if !released {
		t.Fatalf("a quiet period with %d MiB of heap held, %d live, did not release it", before.held>>20, before.live>>20)
	}
	if after := readHeapSample(newHeapSampleBuf()); after.spare() >= before.spare()/2 {
		t.Errorf("heap held %d MiB, live %d after the release; %d and %d before", after.held>>20, after.live>>20, before.held>>20, before.live>>20)
	}
	if pool.Get() != nil {
		t.Error("a pooled buffer survived the release")
	}
	if r.check() {
		t.Error("released again with nothing freed since")
	}
}

// TestServeReleasesMemory: braid serve runs the memory releaser every --release-memory, and
// logs a release after a burst of garbage in its process (here the test's own, which serve
// shares). The runtime's own scavenger may return the burst's pages first, the race detector
// slowing the releaser down: then there is nothing left to release, and the test is skipped.
func TestServeReleasesMemory(t *testing.T) {
	sp := startServeOut(t, "--release-memory", "50ms")
	keep := make([][]byte, 0, 256)
	for range 256 {
		keep = append(keep, make([]byte, 256<<10))
	}
	runtime.KeepAlive(keep)
	keep = nil
	runtime.GC() // the burst is free heap now, as a setup burst's is after the runtime's next collection
	logged := func() bool { return strings.Contains(sp.err.String(), "returned unused heap memory to the OS") }
	buf := newHeapSampleBuf()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if logged() {
			return
		}
		if h := readHeapSample(buf); h.spare() < minSpareRelease || h.spare() < h.live/4 {
			// Released: by the releaser, which logs just after, or by the runtime.
			time.Sleep(time.Second)
			if logged() {
				return
			}
			t.Skipf("the runtime returned the burst's memory itself (%d MiB held, %d live)", h.held>>20, h.live>>20)
		}
	}
	t.Fatalf("no release logged in 10 s with the burst's memory still held:\n%s", sp.err)
}
