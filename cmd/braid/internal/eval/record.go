package eval

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// headerSize is the workload's header at the front of every message: a sequence number and the
// wall-clock time (Unix nanoseconds) the message was due to be sent, so that a receiver in
// another process on the same machine can measure its latency.
const headerSize = 16

// Bin is the width of the time series: throughput is sampled every Bin.
const Bin = 100 * time.Millisecond

func putHeader(msg []byte, seq uint64, due time.Time) {
	binary.BigEndian.PutUint64(msg[0:8], seq)
	binary.BigEndian.PutUint64(msg[8:16], uint64(due.UnixNano()))
}

func readHeader(msg []byte) (seq uint64, due time.Time, ok bool) {
	if len(msg) < headerSize {
		return 0, time.Time{}, false
	}
	return binary.BigEndian.Uint64(msg[0:8]), time.Unix(0, int64(binary.BigEndian.Uint64(msg[8:16]))), true
}

// Recording is what a receiver observed during one run, relative to the workload's start; it
// is what the netns server agent sends back, and the input of Analyze.
type Recording struct {
	Start      time.Time       `json:"start"`      // the workload's start (wall clock)
	Deliveries []Delivery      `json:"deliveries"` // every message delivered, in order
	Samples    []Sample        `json:"samples"`    // cumulative bytes per path, every Bin
	PathUnit   string          `json:"path_unit"`  // what the per-path counters count
	Latencies  []time.Duration `json:"latencies"`  // for the messages workload
	Extra      map[string]any  `json:"extra,omitempty"`
}

// Delivery is one message handed to the receiving application.
type Delivery struct {
	At    time.Duration `json:"at"` // since Start
	Bytes int           `json:"bytes"`
}

// Sample is the receiver's cumulative byte count per path at one moment.
type Sample struct {
	At    time.Duration `json:"at"` // since Start
	Bytes []int64       `json:"bytes"`
}

// recorder collects a Recording from concurrent goroutines.
type recorder struct {
	mu  sync.Mutex
	rec Recording
	// counters that may restart (a re-dialed path starts again from 0) are made cumulative
	last, total []int64
}

func newRecorder(start time.Time, paths int, unit string) *recorder {
	return &recorder{
		rec:   Recording{Start: start, PathUnit: unit},
		last:  make([]int64, paths),
		total: make([]int64, paths),
	}
}

// delivered records a message received now; its header, if any, gives its latency.
func (r *recorder) delivered(msg []byte, latency bool) {
	now := time.Now()
	r.deliveredAt(now, len(msg), msg, latency)
}

func (r *recorder) deliveredAt(now time.Time, n int, msg []byte, latency bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Deliveries = append(r.rec.Deliveries, Delivery{At: now.Sub(r.rec.Start), Bytes: n})
	if latency {
		if _, due, ok := readHeader(msg); ok {
			r.rec.Latencies = append(r.rec.Latencies, now.Sub(due))
		}
	}
}

// sample records raw per-path counters read now; a counter that went down has restarted.
func (r *recorder) sample(raw []int64) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, v := range raw {
		if i >= len(r.last) {
			break
		}
		if v >= r.last[i] {
			r.total[i] += v - r.last[i]
		} else {
			r.total[i] += v
		}
		r.last[i] = v
	}
	r.rec.Samples = append(r.rec.Samples, Sample{At: now.Sub(r.rec.Start), Bytes: slices.Clone(r.total)})
}

func (r *recorder) recording() *Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.rec
	out.Deliveries = slices.Clone(r.rec.Deliveries)
	out.Samples = slices.Clone(r.rec.Samples)
	out.Latencies = slices.Clone(r.rec.Latencies)
	return &out
}

// sampleEvery calls read and records its result every Bin from start until stop is closed
// (and once more then).
func (r *recorder) sampleEvery(start time.Time, read func() []int64, stop <-chan struct{}) {
	if d := time.Until(start); d > 0 {
		select {
		case <-time.After(d):
		case <-stop:
			return
		}
	}
	r.sample(read())
	t := time.NewTicker(Bin)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.sample(read())
		case <-stop:
			r.sample(read())
			return
		}
	}
}

// sampleFrom runs sampleEvery in its own goroutine; the returned function stops it and waits
// for the last sample.
func (r *recorder) sampleFrom(start time.Time, read func() []int64) func() {
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		r.sampleEvery(start, read, stop)
	}()
	return func() {
		close(stop)
		<-sampled
	}
}
