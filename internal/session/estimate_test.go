package session

import (
	"testing"
	"time"
)

const ms = time.Millisecond

func TestRTTEstimate(t *testing.T) {
	var e rttEstimate
	if got := e.rto(200*ms, 0); got != time.Second {
		t.Fatalf("RTO before any sample %v, want 1s (RFC 6298 2.1)", got)
	}
	e = e.sample(0, 0) // not a sample
	if e != (rttEstimate{}) {
		t.Fatalf("a zero sample changed the estimate: %+v", e)
	}
	e = e.sample(100*ms, time.Second)
	if e.srtt != 100*ms || e.rttvar != 50*ms || e.min != 100*ms || e.minAt != time.Second {
		t.Fatalf("first sample: %+v, want SRTT=R, RTTVAR=R/2 (RFC 6298 2.2)", e)
	}
	e = e.sample(200*ms, 2*time.Second)
	// RTTVAR = 3/4·50 + 1/4·|100-200| = 62.5; SRTT = 7/8·100 + 1/8·200 = 112.5 (RFC 6298 2.3).
	if e.rttvar != 62500*time.Microsecond || e.srtt != 112500*time.Microsecond {
		t.Fatalf("second sample: %+v", e)
	}
	if e.min != 100*ms {
		t.Fatalf("min %v after a larger sample within the window, want 100ms", e.min)
	}
	if got, want := e.rto(0, 0), 112500*time.Microsecond+4*62500*time.Microsecond; got != want {
		t.Fatalf("RTO %v, want SRTT+4·RTTVAR = %v", got, want)
	}
	if got := e.rto(time.Second, 0); got != time.Second {
		t.Fatalf("RTO %v under a floor of 1s", got)
	}
	if got := e.rto(0, 2); got != 4*e.rto(0, 0) {
		t.Fatalf("RTO after two expiries %v, want four times %v", got, e.rto(0, 0))
	}
	if got := e.rto(0, 100); got != e.rto(0, maxBackoff) {
		t.Fatalf("RTO backoff not bounded: %v", got)
	}
	// The minimum stands for minRTTWindow, then a larger sample replaces it.
	e = e.sample(300*ms, time.Second+minRTTWindow)
	if e.min != 100*ms {
		t.Fatalf("min replaced within its window: %v", e.min)
	}
	e = e.sample(300*ms, time.Second+minRTTWindow+ms)
	if e.min != 300*ms {
		t.Fatalf("min %v after its window, want the new sample", e.min)
	}
}

func TestRateSampler(t *testing.T) {
	const iv = rateInterval
	var r rateSampler
	// Idle: nothing to measure, however long.
	if r.sample(10*iv, ms, 0, false) || r.rate != 0 {
		t.Fatalf("an idle path measured: %+v", r)
	}
	// Busy from 10 intervals on: the sample starts then, not at 0.
	start := 10 * iv
	if r.sample(start, ms, 0, true) || r.start != start {
		t.Fatalf("first busy look: %+v, want a sample started at %v", r, start)
	}
	if r.sample(start+iv/2, ms, 1<<20, true) {
		t.Fatal("a sample closed before rateInterval")
	}
	// Busy at both ends: 1 MiB in rateInterval.
	first := iv
	if !r.sample(start+first, ms, 1<<20, true) || r.rate != float64(1<<20)/first.Seconds() {
		t.Fatalf("first sample: rate %v", r.rate)
	}
	rate := r.rate
	// Busy at both ends, at twice the rate: the estimate moves halfway.
	r.sample(start+first+iv, ms, 1<<20+int64(2*rate*iv.Seconds()), true)
	if got, want := r.rate, 1.5*rate; got < want*0.999 || got > want*1.001 {
		t.Fatalf("rate %v, want %v", got, want)
	}
	est := r.rate
	// Idle at the end and slower: the application had little to send; the estimate stands.
	if r.sample(start+first+2*iv, ms, 1<<20+int64(2*rate*iv.Seconds())+1, false) || r.rate != est {
		t.Fatalf("an idle sample lowered the rate to %v", r.rate)
	}
	// Starting busy again restarts the sample at once.
	r.sample(start+first+2*iv+ms, ms, 0, true)
	if r.start != start+first+2*iv+ms {
		t.Fatalf("sample not restarted when the path became busy: %+v", r)
	}
	// The span is at least two round trips.
	if r.sample(r.start+3*iv, 2*iv, 1<<40, true) {
		t.Fatal("a sample shorter than two round trips closed")
	}
}

func TestInflightCap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rate      float64
		minRTT    time.Duration
		chunkSize int
		want      int64
	}{
		{"unmeasured", 0, 0, 64 << 10, initialInflight},
		{"unmeasured, big chunks", 0, 0, 1 << 20, 2 << 20},
		// 2 × 100 MB/s × (10 + 5 + 50) ms
		{"measured", 100e6, 10 * ms, 64 << 10, 13_000_000},
		{"slow path: two chunks", 1000, 10 * ms, 64 << 10, 128 << 10},
	} {
		if got := inflightCap(tc.rate, tc.minRTT, tc.chunkSize); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestStalledAndSuspect(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		now, oldest, progress, r time.Duration
		want                     bool
	}{
		{"nothing outstanding", 10 * time.Second, 0, 0, ms, false},
		{"young", 100 * ms, 50 * ms, 0, 200 * ms, false},
		{"old, no acknowledgement since", time.Second, 100 * ms, 0, 200 * ms, true},
		{"old, but acknowledgements keep coming", time.Second, 100 * ms, 900 * ms, 200 * ms, false},
		{"exactly one RTO", 300 * ms, 100 * ms, 0, 200 * ms, false},
	} {
		if got := stalled(tc.now, tc.oldest, tc.progress, tc.r); got != tc.want {
			t.Errorf("stalled, %s: %v", tc.name, got)
		}
	}
	if suspect(time.Second, time.Second+200*ms, 200*ms) {
		t.Error("suspect after exactly MinRTO of silence")
	}
	if !suspect(time.Second, time.Second+201*ms, 200*ms) {
		t.Error("not suspect after more than MinRTO of silence while another path was heard")
	}
}
