package session

import (
	"math"
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

// TestRTTEstimateIdleRestart: a busy path's SRTT carries the queue its data built; a probe's
// sample taken with nothing in flight that is under half of it starts the estimate again, as a
// first sample (RFC 6298 2.2), while a sample closer to it is smoothed in as usual.
func TestRTTEstimateIdleRestart(t *testing.T) {
	var e rttEstimate
	now := time.Duration(0)
	for range 40 { // a backlog of seconds: samples of 1.5 s
		now += 100 * ms
		e = e.sample(1500*ms, now)
	}
	if e.srtt < 1400*ms || e.min != 1500*ms {
		t.Fatalf("busy: %+v", e)
	}
	near, restarted := e.sampleIdle(800*ms, now+ms)
	if restarted || near.srtt >= e.srtt || near.srtt < 1300*ms {
		t.Fatalf("a sample over half the SRTT restarted the estimate or was not smoothed: %+v, %v", near, restarted)
	}
	got, restarted := e.sampleIdle(20*ms, now+2*ms)
	if !restarted || got.srtt != 20*ms || got.rttvar != 10*ms || got.at != now+2*ms {
		t.Fatalf("idle 20ms sample after a 1.5s SRTT: %+v, restarted %v; want SRTT 20ms, RTTVAR 10ms", got, restarted)
	}
	if got.min != 20*ms {
		t.Fatalf("min %v, want the new lower sample", got.min)
	}
	if _, restarted := (rttEstimate{}).sampleIdle(20*ms, ms); restarted {
		t.Fatal("a first sample reported as a restart")
	}
	if got, restarted := e.sampleIdle(0, now); restarted || got != e {
		t.Fatalf("a zero sample changed the estimate: %+v", got)
	}
}

func TestRefreshDue(t *testing.T) {
	for _, c := range []struct {
		now, sampled, probed time.Duration
		want                 bool
	}{
		{now: time.Second, sampled: time.Second - rttRefresh, probed: 0, want: false}, // sample just fresh enough
		{now: time.Second, sampled: time.Second - rttRefresh - ms, probed: 0, want: true},
		{now: time.Second, sampled: 0, probed: time.Second - ms, want: false}, // a probe is out
		{now: time.Second, sampled: 0, probed: time.Second - rttRefresh - ms, want: true},
	} {
		if got := refreshDue(c.now, c.sampled, c.probed); got != c.want {
			t.Errorf("refreshDue(%v, sampled %v, probed %v) = %v, want %v", c.now, c.sampled, c.probed, got, c.want)
		}
	}
}

func TestStaleRate(t *testing.T) {
	const best = 6e6
	for _, c := range []struct {
		restarted bool
		rate      float64
		want      bool
	}{
		{true, 2e5, true},                      // lowered while it lagged, far below the best
		{false, 2e5, false},                    // RTT not restarted: nothing says the path changed
		{true, 0, false},                       // not measured: nothing to forget
		{true, best / staleRateFactor, false},  // within the factor
		{true, best/staleRateFactor - 1, true}, // just under it
		{true, best, false},                    // the best itself
	} {
		if got := staleRate(c.restarted, c.rate, best); got != c.want {
			t.Errorf("staleRate(%v, %v, %v) = %v, want %v", c.restarted, c.rate, best, got, c.want)
		}
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
		lossy     bool
		want      int64
	}{
		{"unmeasured", 0, 0, 64 << 10, false, initialInflight},
		{"unmeasured, big chunks", 0, 0, 1 << 20, false, 2 << 20},
		// 2 × 100 MB/s × (10 + 5) ms
		{"measured", 100e6, 10 * ms, 64 << 10, false, 3_000_000},
		// 2 × 100 MB/s × (10 + 5 + 50) ms
		{"measured, lossy", 100e6, 10 * ms, 64 << 10, true, 13_000_000},
		// 2 × 6.25 MB/s × (20 + 5) ms = 312,500 bytes: two 256 KiB chunks are more
		{"50 Mbit/s, 20 ms: two chunks", 6.25e6, 20 * ms, 256 << 10, false, 512 << 10},
		{"slow path: two chunks", 1000, 10 * ms, 64 << 10, false, 128 << 10},
	} {
		if got := inflightCap(tc.rate, tc.minRTT, tc.chunkSize, tc.lossy); got != tc.want {
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

func TestLagLimit(t *testing.T) {
	const chunk = 256 << 10
	if got := lagLimit(0, 20*ms, chunk); got != 0 {
		t.Errorf("unmeasured rate: limit %v, want none", got)
	}
	if got := lagLimit(math.NaN(), 20*ms, chunk); got != 0 {
		t.Errorf("NaN rate: limit %v, want none", got)
	}
	// 50 Mbit/s: a 256 KiB chunk takes 41.9 ms; three of them, the 20 ms round trip, the 5 ms
	// acknowledgement delay and two 50 ms ticks.
	want := 3*time.Duration(float64(chunk)/6.25e6*float64(time.Second)) + 20*ms + ackDelay + 2*monitorTick
	if got := lagLimit(6.25e6, 20*ms, chunk); got != want || got < 240*ms || got > 260*ms {
		t.Errorf("50 Mbit/s: limit %v, want %v (about 251 ms)", got, want)
	}
	// A path 16 times slower is allowed 16 times the transmission.
	fast, slow := lagLimit(6.25e6, 20*ms, chunk), lagLimit(6.25e6/16, 20*ms, chunk)
	if slow-125*ms != 16*(fast-125*ms) {
		t.Errorf("16x slower: %v, fast %v", slow, fast)
	}
}

func TestLaggingAndReinject(t *testing.T) {
	const limit = 200 * ms
	for _, tc := range []struct {
		name                         string
		now, oldest, progress, limit time.Duration
		others                       int
		wantLagging, wantReinject    bool
	}{
		{"nothing outstanding", 10 * time.Second, 0, 0, limit, 1, false, false},
		{"no rate measured", 10 * time.Second, ms, 0, 0, 1, false, false},
		{"young chunk", 150 * ms, 50 * ms, 0, limit, 1, false, false},
		{"exactly the limit", 250 * ms, 50 * ms, 0, limit, 1, false, false},
		{"silent past the limit", 251 * ms, 50 * ms, 0, limit, 1, true, true},
		{"old chunk, acknowledgements flowing", 2 * time.Second, 50 * ms, 1900 * ms, limit, 1, false, false},
		{"acknowledgements stopped", 2 * time.Second, 50 * ms, 1700 * ms, limit, 2, true, true},
		{"lagging, but no other path to take its chunks", 2 * time.Second, 50 * ms, 0, limit, 0, true, false},
	} {
		if got := lagging(tc.now, tc.oldest, tc.progress, tc.limit); got != tc.wantLagging {
			t.Errorf("lagging, %s: %v", tc.name, got)
		}
		if got := reinject(tc.now, tc.oldest, tc.progress, tc.limit, tc.others); got != tc.wantReinject {
			t.Errorf("reinject, %s: %v", tc.name, got)
		}
	}
}

func TestLagRate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		old   float64
		acked int64
		since time.Duration
		want  float64
	}{
		{"unmeasured stays unmeasured", 0, 1 << 20, time.Second, 0},
		{"collapsed 16x: halved", 6.25e6, 390_625 / 5, 200 * ms, 6.25e6 / 2},
		{"down by a third: to what it delivered", 6.25e6, 833_333, 200 * ms, 833_333 / 0.2},
		{"nothing delivered (stopped, not slowed): kept", 6.25e6, 0, 200 * ms, 6.25e6},
		{"no time elapsed: halved", 6.25e6, 1, 0, 6.25e6 / 2},
		{"delivered more than the estimate: kept", 1e6, 1 << 20, 200 * ms, 1e6},
	} {
		if got := lagRate(tc.old, tc.acked, tc.since); math.Abs(got-tc.want) > 1e-6*max(1, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTCPSilent: a path counts as stopped by its kernel's view only with Braid data outstanding,
// two or more segments unacknowledged, and no ACK for longer than three minimum round trips and
// the delayed-ACK slack, counted from the later of the oldest send and the last ACK.
func TestTCPSilent(t *testing.T) {
	const ms = time.Millisecond
	srtt := 20 * ms
	limit := tcpSilenceLimit(silenceRTT(srtt, 10*ms)) // max(2 × 20, 20 + 45) = 65 ms
	if limit != 65*ms {
		t.Fatalf("limit %v, want 65ms", limit)
	}
	for _, tc := range []struct {
		name                 string
		now, oldest, lastACK time.Duration
		unacked              uint32
		want                 bool
		due                  time.Duration
	}{
		{"silent past the limit", 1000 * ms, 500 * ms, 400 * ms, 10, true, 0},
		{"an ACK just now", 1000 * ms, 500 * ms, 999 * ms, 10, false, 0},
		{"no ACK for longer than srtt: look again at the limit", 1000 * ms, 500 * ms, 970 * ms, 10, false, 36 * ms},
		{"data sent within the limit", 1000 * ms, 950 * ms, 100 * ms, 10, false, 16 * ms},
		{"just at the limit", 1000 * ms, 935 * ms, 0, 10, false, 1 * ms},
		{"just past it", 1000 * ms, 934 * ms, 0, 10, true, 0},
		{"nothing outstanding", 1000 * ms, 0, 0, 10, false, 0},
		{"one segment: its ACK may be delayed", 1000 * ms, 500 * ms, 0, 1, false, 0},
	} {
		got, due := tcpSilent(tc.now, tc.oldest, tc.lastACK, tc.unacked, srtt, limit)
		if got != tc.want || due != tc.due {
			t.Errorf("%s: tcpSilent = %v, %v; want %v, %v", tc.name, got, due, tc.want, tc.due)
		}
	}
	for _, tc := range []struct{ srtt, minRTT, want time.Duration }{
		{100 * ms, 20 * ms, 200 * ms},                             // a delay that grew slowly: two round trips as they are now
		{0, 20 * ms, 65 * ms},                                     // no kernel figure: the path's own minimum
		{100 * time.Microsecond, 0, 45*ms + 100*time.Microsecond}, // loopback: the delayed ACK
	} {
		if got := tcpSilenceLimit(silenceRTT(tc.srtt, tc.minRTT)); got != tc.want {
			t.Errorf("tcpSilenceLimit(silenceRTT(%v, %v)) = %v, want %v", tc.srtt, tc.minRTT, got, tc.want)
		}
	}
}

func TestSlowForControl(t *testing.T) {
	for _, tc := range []struct {
		srtt, best time.Duration
		want       bool
	}{
		{100 * ms, 20 * ms, true},                              // a delay that jumped: leave ACKs to the fast path
		{45 * ms, 20 * ms, false},                              // within 2 × 20 + 5
		{46 * ms, 20 * ms, true},                               // just beyond
		{300 * time.Microsecond, 50 * time.Microsecond, false}, // loopback: the slack keeps both
		{100 * ms, 0, false},                                   // no other path measured
	} {
		if got := slowForControl(tc.srtt, tc.best); got != tc.want {
			t.Errorf("slowForControl(%v, %v) = %v, want %v", tc.srtt, tc.best, got, tc.want)
		}
	}
}
