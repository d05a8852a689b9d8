package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// A server that set up thousands of sessions in a burst keeps the heap the burst grew: the Go
// runtime holds up to about twice the live heap (GOGC's headroom for the next collection), and an
// idle server allocates too little for another collection to come and free what the burst left
// as garbage. A concentrator then idles for hours with its resident memory up to twice what its
// sessions use. The memory releaser watches the runtime's own counters and, once the process
// has allocated little for a whole period while a sizeable share of its heap lies spare (garbage
// not yet collected, or free), collects it and returns what is free to the OS (a collection that
// also empties the buffer pools' spares, then debug.FreeOSMemory). It does so at most once per
// collection the runtime ran of its own accord: after a release, only a new burst (or slow
// allocation up to the collector's goal) makes it due again, so a busy server, which needs the
// headroom, never pays for it, and an idle one pays once.

// heapSample is what the memory releaser reads from the runtime each period.
type heapSample struct {
	allocs uint64 // bytes allocated since the process started (/gc/heap/allocs:bytes)
	live   uint64 // bytes of objects the last collection found live (/gc/heap/live:bytes)
	// held is the heap memory the process holds: its objects, live or garbage not yet collected
	// (/memory/classes/heap/objects:bytes), and free memory not returned to the OS
	// (/memory/classes/heap/free:bytes).
	held   uint64
	cycles uint64 // collections the runtime started of its own accord (/gc/cycles/automatic:gc-cycles)
}

// Release thresholds. What a forced collection would give back, the heap held beyond the live
// objects, is worth it from a quarter of the live heap and minSpareRelease. Quiet is allocating
// less than a quarter of the live heap (and quietAllocFloor) in a period, so that what is given
// back would not be needed for several periods. (An idle server still allocates a little, for
// its keepalives.)
const (
	minSpareRelease = 4 << 20
	quietAllocFloor = 1 << 20
)

// releaseDue reports whether spare heap memory should be returned to the OS at cur, the period's
// sample after prev, when the last release was after releasedCycles automatic collections: the
// runtime has collected of its own accord since, the process was quiet over the period, and
// enough lies spare.
func releaseDue(prev, cur heapSample, releasedCycles uint64) bool {
	if cur.allocs < prev.allocs {
		return false // not a pair of samples in order
	}
	quiet := cur.allocs-prev.allocs < max(cur.live/4, quietAllocFloor)
	spare := cur.spare()
	return cur.cycles > releasedCycles && quiet && spare >= minSpareRelease && spare >= cur.live/4
}

// spare is the heap held beyond the live objects (0 if the last collection's live figure is the
// larger, as it may be just after one).
func (h heapSample) spare() uint64 {
	if h.held < h.live {
		return 0
	}
	return h.held - h.live
}

var heapSampleNames = []string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes", "/gc/cycles/automatic:gc-cycles"}

// readHeapSample reads the runtime's heap counters, reusing buf (from newHeapSampleBuf).
func readHeapSample(buf []metrics.Sample) heapSample {
	metrics.Read(buf)
	v := func(i int) uint64 {
		if buf[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return buf[i].Value.Uint64()
	}
	return heapSample{allocs: v(0), live: v(1), held: v(2) + v(3), cycles: v(4)}
}

// newHeapSampleBuf returns the runtime/metrics samples readHeapSample reads.
func newHeapSampleBuf() []metrics.Sample {
	buf := make([]metrics.Sample, len(heapSampleNames))
	for i, n := range heapSampleNames {
		buf[i].Name = n
	}
	return buf
}

// memReleaser is the memory releaser's state between periods.
type memReleaser struct {
	buf      []metrics.Sample
	prev     heapSample
	released uint64 // automatic collections before the last release (0: none yet)
	log      *slog.Logger
}

// newMemReleaser returns a memory releaser whose first period starts now.
func newMemReleaser(log *slog.Logger) *memReleaser {
	r := &memReleaser{buf: newHeapSampleBuf(), log: log}
	r.prev = readHeapSample(r.buf)
	return r
}

// check takes this period's sample and returns the free memory to the OS if releaseDue says so;
// it reports whether it did.
func (r *memReleaser) check() bool {
	cur := readHeapSample(r.buf)
	due := releaseDue(r.prev, cur, r.released)
	if due {
		start := time.Now()
		// Two collections: the buffer pools (sync.Pool) keep what they hold through one, and an
		// idle server's pools hold the last transfers' buffers, which it no longer needs.
		runtime.GC()
		debug.FreeOSMemory()
		after := readHeapSample(r.buf)
		r.log.Info("returned unused heap memory to the OS", "held_mib", cur.held>>20,
			"live_mib", after.live>>20, "held_after_mib", after.held>>20, "took", time.Since(start).Round(time.Millisecond))
		cur, r.released = after, after.cycles
	}
	r.prev = cur
	return due
}

// releaseIdleMemory runs a memory releaser every period until ctx ends.
func releaseIdleMemory(ctx context.Context, period time.Duration, log *slog.Logger) {
	r := newMemReleaser(log)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check()
		}
	}
}
