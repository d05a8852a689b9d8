package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

func TestReleaseDue(t *testing.T) {
	const mib = 1 << 20
	base := heapSample{allocs: 1000 * mib, live: 100 * mib, held: 200 * mib}
	for _, tc := range []struct {
		name string
		cur  heapSample
		want bool
	}{
		{"quiet with the heap twice the live data", heapSample{allocs: base.allocs + mib/2, live: 100 * mib, held: 200 * mib}, true},
		{"quiet under a quarter of the live heap", heapSample{allocs: base.allocs + 24*mib, live: 100 * mib, held: 200 * mib}, true},
		{"busy: a quarter of the live heap allocated", heapSample{allocs: base.allocs + 25*mib, live: 100 * mib, held: 200 * mib}, false},
		{"spare exactly half the live heap", heapSample{allocs: base.allocs, live: 100 * mib, held: 150 * mib}, true},
		{"little spare: under half the live heap", heapSample{allocs: base.allocs, live: 100 * mib, held: 149 * mib}, false},
		{"little spare: under the floor", heapSample{allocs: base.allocs, live: 8 * mib, held: 23 * mib}, false},
		{"small heap, enough spare", heapSample{allocs: base.allocs + mib/2, live: 8 * mib, held: 24 * mib}, true},
		{"small heap, allocating over the floor", heapSample{allocs: base.allocs + mib, live: 2 * mib, held: 24 * mib}, false},
		{"samples out of order", heapSample{allocs: base.allocs - 1, live: 100 * mib, held: 200 * mib}, false},
		{"held under live (just after a collection)", heapSample{allocs: base.allocs, live: 100 * mib, held: 90 * mib}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := releaseDue(base, tc.cur); got != tc.want {
				t.Errorf("releaseDue(%+v, %+v) = %v, want %v", base, tc.cur, got, tc.want)
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
	runtime.GC() // the burst is garbage now; its spans are free but not returned
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
	if r.check() {
		t.Error("released again with nothing freed since")
	}
}
