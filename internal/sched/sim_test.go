package sched

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// This file holds a small deterministic simulation of a session sending a bulk stream over
// several paths, in discrete time, to show what a policy's choices do to throughput. Nothing in
// it reads the wall clock.
//
// Each path serializes its queue at its rate; a chunk whose last byte has been serialized
// arrives half a round trip later and is acknowledged a whole round trip later (no loss, no
// socket buffer, no cross traffic). The sender behaves as the session's route does: it picks a
// path for the next chunk, then waits until that path's queue has room for it (queues hold at
// most queueLimit bytes, like the session's per-path queue), then picks for the next chunk. The
// receiver delivers chunks in sequence order; throughput counts only in-order delivery.

// simPath configures one simulated path.
type simPath struct {
	mbit float64       // rate, Mbit/s
	rtt  time.Duration // base round-trip time
}

// simConfig configures a simulation.
type simConfig struct {
	paths      []simPath
	chunk      int           // chunk size, bytes
	queueLimit int64         // per-path queue bound, bytes (a chunk always fits an empty queue)
	duration   time.Duration // simulated time
	step       time.Duration // time step
	// hideUntilAck hides a path's SRTT and DeliveryRate (reports 0) until its first chunk has
	// been acknowledged, as at the start of a session.
	hideUntilAck bool
	// offered is the rate at which the application produces data, Mbit/s; 0 means it always
	// has more (a bulk transfer).
	offered float64
	// events change path conditions during the run.
	events []simEvent
}

// simEvent changes a path at a given simulated time.
type simEvent struct {
	at   time.Duration
	path int
	mbit float64       // new rate, if not 0
	rtt  time.Duration // new RTT, if not 0
	dead bool          // the path stops being live (what it holds still drains)
}

// simResult is what a simulation measured.
type simResult struct {
	inOrder    int64   // bytes delivered in order by the end
	mbit       float64 // in-order throughput, Mbit/s
	chunks     []int   // chunks handed to each path
	sinceEvent []int   // chunks handed to each path that were picked after the first event
	picks      int     // Pick calls
	badPick    string  // the first invalid pick, if any
	// meanLatency and maxLatency are over the chunks delivered in order: from the moment the
	// application produced the chunk to the moment the peer could deliver it in order.
	meanLatency, maxLatency time.Duration
}

// share is the fraction of all chunks handed to path i.
func (r simResult) share(i int) float64 {
	total := 0
	for _, n := range r.chunks {
		total += n
	}
	if total == 0 {
		return 0
	}
	return float64(r.chunks[i]) / float64(total)
}

type simFlight struct {
	size  int64
	ackAt time.Duration
}

type simState struct {
	mbit     float64
	rtt      time.Duration
	dead     bool
	acked    bool    // an ack has come back
	credit   float64 // bytes the path may still serialize in this step
	queue    []int   // seqs waiting, queue[0] being serialized
	headDone int64   // bytes of queue[0] already serialized
	queued   int64
	flight   []simFlight
	inFlight int64
}

// simulate runs cfg with the scheduler s and reports the in-order throughput.
func simulate(cfg simConfig, s Scheduler) simResult {
	ps := make([]simState, len(cfg.paths))
	for i, p := range cfg.paths {
		ps[i] = simState{mbit: p.mbit, rtt: p.rtt}
	}
	res := simResult{chunks: make([]int, len(ps)), sinceEvent: make([]int, len(ps))}
	evented := false
	view := make([]Path, len(ps))
	// arrival is when each chunk, by seq, reached the peer (-1 until it does); produced is when
	// the application produced it.
	var arrival []time.Duration
	produced := func(seq int) time.Duration {
		if cfg.offered <= 0 {
			return 0
		}
		return time.Duration(float64(seq+1) * float64(cfg.chunk) * 8 / (cfg.offered * 1e6) * float64(time.Second))
	}
	size := int64(cfg.chunk)
	// The sender's next chunk: its seq (-1 if the application has not produced it yet), the
	// path picked for it (-1 if none yet), and whether it was picked after the first event.
	pending, pendingPath, pendingLate := -1, -1, false
	events := cfg.events
	for now := time.Duration(0); now < cfg.duration; now += cfg.step {
		for len(events) > 0 && events[0].at <= now {
			e := events[0]
			events = events[1:]
			evented = true
			if e.mbit > 0 {
				ps[e.path].mbit = e.mbit
			}
			if e.rtt > 0 {
				ps[e.path].rtt = e.rtt
			}
			ps[e.path].dead = ps[e.path].dead || e.dead
		}
		// Acknowledgements.
		for i := range ps {
			p := &ps[i]
			for len(p.flight) > 0 && p.flight[0].ackAt <= now {
				p.inFlight -= p.flight[0].size
				p.flight = p.flight[1:]
				p.acked = true
			}
		}
		// The sender: hand chunks over while the chosen path has room, as route does.
		for {
			if pending < 0 {
				if produced(len(arrival)) > now {
					break // the application has nothing more yet
				}
				pending, pendingPath = len(arrival), -1
				arrival = append(arrival, -1)
			}
			if pendingPath < 0 {
				for i := range ps {
					p := &ps[i]
					view[i] = Path{Index: i, Live: !p.dead, QueuedBytes: p.queued, InFlight: p.inFlight,
						Full: len(p.queue) > 0 && p.queued+size > cfg.queueLimit}
					if p.acked || !cfg.hideUntilAck {
						view[i].SRTT, view[i].DeliveryRate = p.rtt, p.mbit*1e6/8
					}
				}
				res.picks++
				k := s.Pick(view, cfg.chunk)
				if k < -1 || k >= len(view) || (k >= 0 && !view[k].Live) {
					if res.badPick == "" {
						res.badPick = fmt.Sprintf("Pick = %d for %+v", k, view)
					}
					k = -1
				}
				if k < 0 {
					break // no live path; try again next step
				}
				pendingPath, pendingLate = k, evented
			}
			p := &ps[pendingPath]
			if p.dead {
				pendingPath = -1 // the path ended under us: pick again, as route does
				continue
			}
			if len(p.queue) > 0 && p.queued+size > cfg.queueLimit {
				break // wait for room on the chosen path
			}
			p.queue = append(p.queue, pending)
			p.queued += size
			res.chunks[pendingPath]++
			if pendingLate {
				res.sinceEvent[pendingPath]++
			}
			pending = -1
		}
		// Serialization; a chunk finishing in this step arrives half a round trip after it.
		end := now + cfg.step
		for i := range ps {
			p := &ps[i]
			p.credit += p.mbit * 1e6 / 8 * cfg.step.Seconds()
			for len(p.queue) > 0 && p.credit >= 1 {
				n := min(int64(p.credit), size-p.headDone)
				p.credit -= float64(n)
				p.headDone += n
				p.queued -= n
				p.inFlight += n
				if p.headDone == size {
					arrival[p.queue[0]] = end + p.rtt/2
					p.flight = append(p.flight, simFlight{size: size, ackAt: end + p.rtt})
					p.queue = p.queue[1:]
					p.headDone = 0
				}
			}
			if len(p.queue) == 0 {
				p.credit = 0 // an idle path cannot bank its capacity
			}
		}
	}
	var inOrderAt, total time.Duration
	for seq, at := range arrival {
		if at < 0 || at > cfg.duration {
			break
		}
		inOrderAt = max(inOrderAt, at)
		lat := inOrderAt - produced(seq)
		total += lat
		res.maxLatency = max(res.maxLatency, lat)
		res.inOrder += size
	}
	if n := res.inOrder / size; n > 0 {
		res.meanLatency = total / time.Duration(n)
	}
	res.mbit = float64(res.inOrder) * 8 / cfg.duration.Seconds() / 1e6
	return res
}

// simBulk is the standard bulk-transfer setting: 256 KiB chunks (the session's default), a
// 2 MiB queue per path (the session's pathQueueBytes), 10 s in 100 µs steps.
func simBulk(paths ...simPath) simConfig {
	return simConfig{
		paths:      paths,
		chunk:      256 << 10,
		queueLimit: 2 << 20,
		duration:   10 * time.Second,
		step:       100 * time.Microsecond,
	}
}

// runSim simulates cfg under the named policy, failing the test on an invalid pick.
func runSim(t *testing.T, cfg simConfig, name string) simResult {
	t.Helper()
	r := simulate(cfg, newPolicy(t, name))
	if r.badPick != "" {
		t.Fatalf("%s: %s", name, r.badPick)
	}
	return r
}

// rateSum is the sum of the paths' rates, Mbit/s.
func rateSum(paths []simPath) float64 {
	var sum float64
	for _, p := range paths {
		sum += p.mbit
	}
	return sum
}

// TestSimThroughput is the headline comparison: a bulk transfer over paths of 200, 100, 50 and
// 25 Mbit/s. Adaptive approaches the sum of the rates; round-robin, held to equal shares by the
// bounded queues, gets four times the slowest.
func TestSimThroughput(t *testing.T) {
	tests := []struct {
		name string
		rtts [4]time.Duration
	}{
		{"equal RTTs", [4]time.Duration{20 * ms, 20 * ms, 20 * ms, 20 * ms}},
		{"slower paths longer", [4]time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms}},
		{"slower paths shorter", [4]time.Duration{80 * ms, 40 * ms, 20 * ms, 10 * ms}},
	}
	for _, tt := range tests {
		cfg := simBulk(simPath{200, tt.rtts[0]}, simPath{100, tt.rtts[1]}, simPath{50, tt.rtts[2]}, simPath{25, tt.rtts[3]})
		sum, rrLimit := rateSum(cfg.paths), 4*25.0
		got := map[string]simResult{}
		for _, name := range allNames {
			got[name] = runSim(t, cfg, name)
			t.Logf("%s: %-11s %6.1f Mbit/s (%.3f of the sum %.0f), chunks per path %v",
				tt.name, name, got[name].mbit, got[name].mbit/sum, sum, got[name].chunks)
		}
		if r := got[AdaptiveName].mbit / sum; r < 0.97 {
			t.Errorf("%s: adaptive reached %.3f of the sum of rates", tt.name, r)
		}
		if got[RedundantName].mbit != got[AdaptiveName].mbit {
			t.Errorf("%s: redundant's primary picks differ from adaptive's", tt.name)
		}
		if r := got[LowestRTTName].mbit / sum; r < 0.9 {
			t.Errorf("%s: lowest-rtt reached %.3f of the sum of rates", tt.name, r)
		}
		if r := got[RoundRobinName].mbit / rrLimit; r < 0.95 || r > 1.02 {
			t.Errorf("%s: round-robin reached %.3f of 4 x the slowest", tt.name, r)
		}
		if r := got[AdaptiveName].mbit / got[RoundRobinName].mbit; r < 3.5 {
			t.Errorf("%s: adaptive only %.2f x round-robin", tt.name, r)
		}
	}
}

// TestSimShares checks that under load adaptive shares the chunks out in proportion to the
// paths' rates, and round-robin equally.
func TestSimShares(t *testing.T) {
	tests := []struct {
		name  string
		paths []simPath
	}{
		{"200 and 25", []simPath{{200, 20 * ms}, {25, 20 * ms}}},
		{"200 and 25, slow path longer", []simPath{{200, 10 * ms}, {25, 60 * ms}}},
		{"equal", []simPath{{100, 20 * ms}, {100, 20 * ms}}},
		{"200, 100, 50, 25", []simPath{{200, 20 * ms}, {100, 20 * ms}, {50, 20 * ms}, {25, 20 * ms}}},
	}
	for _, tt := range tests {
		cfg := simBulk(tt.paths...)
		sum := rateSum(tt.paths)
		ad, rr := runSim(t, cfg, AdaptiveName), runSim(t, cfg, RoundRobinName)
		for i, p := range tt.paths {
			if got, want := ad.share(i), p.mbit/sum; math.Abs(got-want) > 0.02 {
				t.Errorf("%s: adaptive gave path %d a share of %.3f, want %.3f (chunks %v)", tt.name, i, got, want, ad.chunks)
			}
			if got, want := rr.share(i), 1/float64(len(tt.paths)); math.Abs(got-want) > 0.01 {
				t.Errorf("%s: round-robin gave path %d a share of %.3f, want %.3f (chunks %v)", tt.name, i, got, want, rr.chunks)
			}
		}
	}
}

// TestSimLightTraffic checks that traffic the fast path can carry alone stays on it: no chunk
// waits for the slow path, whose delay would hold up in-order delivery.
func TestSimLightTraffic(t *testing.T) {
	for _, offered := range []float64{20, 100, 180} {
		cfg := simBulk(simPath{200, 10 * ms}, simPath{25, 60 * ms})
		cfg.offered = offered
		// A chunk's serialization on the fast path, its one-way delay, and a step's rounding.
		alone := time.Duration(float64(chunk)/r200*float64(time.Second)) + 5*ms + 2*cfg.step
		for _, name := range []string{AdaptiveName, LowestRTTName, RedundantName} {
			r := runSim(t, cfg, name)
			if r.chunks[1] != 0 || r.maxLatency > alone {
				t.Errorf("%s at %v Mbit/s: chunks %v, latency up to %v (alone %v)", name, offered, r.chunks, r.maxLatency, alone)
			}
		}
		if r := runSim(t, cfg, RoundRobinName); r.maxLatency <= alone {
			t.Errorf("round-robin at %v Mbit/s: latency up to %v", offered, r.maxLatency)
		}
	}
}

// TestSimRTTJump checks that the policies move away from a path whose RTT jumps from 10 ms to
// 1 s. Under light traffic every RTT-aware policy moves entirely to the other path. Under bulk
// traffic adaptive drops the path too (a chunk on it would arrive later than the bound), while
// lowest-rtt, like Linux MPTCP's default, still spills whatever the other path has no room for
// onto it, since it has room: it is logged, not asserted.
func TestSimRTTJump(t *testing.T) {
	tests := []struct {
		name     string
		offered  float64
		policies []string
	}{
		{"bulk", 0, []string{AdaptiveName, RedundantName}},
		{"50 Mbit/s", 50, []string{AdaptiveName, LowestRTTName, RedundantName}},
	}
	for _, tt := range tests {
		cfg := simBulk(simPath{200, 10 * ms}, simPath{100, 20 * ms})
		cfg.offered = tt.offered
		cfg.events = []simEvent{{at: 5 * time.Second, path: 0, rtt: time.Second}}
		for _, name := range allNames {
			r := runSim(t, cfg, name)
			before := [2]int{r.chunks[0] - r.sinceEvent[0], r.chunks[1] - r.sinceEvent[1]}
			t.Logf("%s: %s: chunks per path before the jump %v, after %v", tt.name, name, before, r.sinceEvent)
			if !slices.Contains(tt.policies, name) {
				continue
			}
			if before[0] == 0 || r.sinceEvent[0] != 0 || r.sinceEvent[1] == 0 {
				t.Errorf("%s: %s: chunks per path before the jump %v, after %v", tt.name, name, before, r.sinceEvent)
			}
			if tt.offered > 0 && before[1] != 0 {
				t.Errorf("%s: %s: the slower path had %d chunks before the jump", tt.name, name, before[1])
			}
		}
	}
}

// TestSimDeadPath checks that a path that stops being live gets nothing more, and the others
// carry on.
func TestSimDeadPath(t *testing.T) {
	cfg := simBulk(simPath{200, 10 * ms}, simPath{100, 20 * ms}, simPath{25, 20 * ms})
	cfg.events = []simEvent{{at: 2 * time.Second, path: 0, dead: true}}
	for _, name := range allNames {
		r := runSim(t, cfg, name)
		if r.sinceEvent[0] != 0 || r.sinceEvent[1] == 0 || r.sinceEvent[2] == 0 {
			t.Errorf("%s: chunks since path 0 died: %v", name, r.sinceEvent)
		}
	}
	// Adaptive: 2 s at 325 Mbit/s, then 8 s at 125.
	if r := runSim(t, cfg, AdaptiveName); r.mbit < 0.95*(2*325+8*125)/10.0 {
		t.Errorf("adaptive: %.1f Mbit/s", r.mbit)
	}
}

// TestSimProbing starts with no measurements: a path's SRTT and rate appear only once it has had
// a chunk acknowledged. Every path must be probed, and adaptive still approach the sum.
func TestSimProbing(t *testing.T) {
	cfg := simBulk(simPath{200, 10 * ms}, simPath{100, 20 * ms}, simPath{50, 40 * ms}, simPath{25, 80 * ms})
	cfg.hideUntilAck = true
	for _, name := range allNames {
		r := runSim(t, cfg, name)
		if slices.Contains(r.chunks, 0) {
			t.Errorf("%s: chunks per path %v", name, r.chunks)
		}
	}
	if r := runSim(t, cfg, AdaptiveName); r.mbit < 0.97*rateSum(cfg.paths) {
		t.Errorf("adaptive: %.1f Mbit/s", r.mbit)
	}
}
