package sched

import "time"

// Adaptive sends each chunk where it would be delivered soonest, without letting any path's
// queue delay in-order delivery by more than a bound: the expected-completion-time rule of the
// ECF and BLEST family of multipath schedulers, evaluated per chunk.
//
// For each live path it estimates two times for a chunk of size bytes handed to the path now:
//
//	ahead  = QueuedBytes + max(0, InFlight - DeliveryRate*SRTT)   bytes the chunk waits behind
//	wait   = ahead / DeliveryRate                                 until the path starts on it
//	linger = (ahead + size) / DeliveryRate + SRTT/2               until the peer has it
//
// The chunk waits behind the path's queue and behind whatever the path has in flight beyond one
// bandwidth-delay product (a backlog in the socket's send buffer), is serialized at the path's
// rate, and then travels for half a round trip. In-flight bytes within one bandwidth-delay product
// are already on the wire or delivered; they do not delay the chunk beyond the one-way delay that
// SRTT/2 counts, and charging them again would handicap a long-RTT path by a whole round trip
// once it is busy.
//
// The rule, with e the path of lowest linger (the earliest):
//
//   - If e's queue has room (not Full), the chunk goes to e: the earliest delivery, which is what
//     a message waiting for it wants.
//   - Otherwise the sender is ahead of e, and an idle path would be wasted: a path is eligible if
//     it is not Full and its linger exceeds e's by no more than e's wait, the time e needs to
//     deliver its own backlog: linger(p) <= linger(e) + wait(e). Pick returns the eligible path
//     with the lowest wait, ties going to the lowest linger, then in turn by Index as
//     [RoundRobin] does; with none eligible, e (the sender waits for room there).
//
// One exception keeps light traffic in place: if the path the peer's data last arrived on
// (Answer), or else the path picked last, has an RTT sample, is idle (nothing ahead of the chunk:
// wait is 0) and not Full, and its linger is within stickyFactor × the earliest's plus
// stickySlack, the chunk goes there. Paths whose estimates differ by noise would otherwise take
// turns; a request and its reply kept on one connection, as with TCP, let each TCP
// acknowledgement ride on the reply, keep the connection's state warm, and let the receiver read
// it on the goroutine waiting for it.
//
// So light traffic always goes to the earliest path and gets the lowest latency (a slow or long
// path is fed only when it is really the earliest), as with ECF's "wait for the fast path". Under
// load, once the earliest path is full, a path that would start on the chunk sooner (it is idle,
// or less backlogged) takes it, provided it delivers the chunk at most wait(e) after e would: the
// peer then holds at most about e's backlog out of order waiting for it. A path whose own queue would delay in-order
// delivery by more than that stops being fed until it drains. Under sustained load the paths'
// waits settle level, which shares the chunks out in proportion to the rates and keeps every
// path busy, so the session's throughput approaches the sum of the paths' rates rather than the
// number of paths times the slowest one. (Pure lowest-linger is not enough when the session's
// queues are bounded: a path whose one-chunk linger exceeds what the fastest path's full queue
// adds up to would never be used, and the sender would wait on the fastest path instead.)
//
// Paths without a measurement are probed so that every path gets measured. A path with no rate
// sample is assumed as fast as the fastest live path that has one (or, if none has, a nominal
// 100 Mbit/s, so that only backlog and RTT decide), and a path with no RTT sample is assumed to
// have the lowest RTT measured on a live path. But a path without a rate sample has had no
// traffic, so its TCP connection is in slow start: it sends an initial window (10 segments) in
// its first round trip and doubles it in each one after, and a chunk needs that many round trips
// however fast the path is. On a path with an RTT sample the estimate is the later of the two:
// a 64 KiB chunk on an unused 160 ms path takes three round trips, about 400 ms, not 80 ms, so
// it is not sent there to save a few milliseconds on a briefly stalled short path. The optimism is bounded: while any live path has
// a rate sample, a path without one is not given more than max(2 chunks, 256 KiB) of backlog,
// so a path that never answers takes no more than a probe's worth. Idle unmeasured paths tie,
// and so are taken in turn.
//
// Pick is O(len(paths)) and does not allocate. An Adaptive must not be copied after first use.
type Adaptive struct {
	rot rotation
}

// Name implements Scheduler.
func (*Adaptive) Name() string { return AdaptiveName }

// Pick implements Scheduler: the eligible live path that would start on a chunk of size bytes
// soonest, as the type's documentation describes, or -1 if no path is live.
func (a *Adaptive) Pick(paths []Path, size int) int {
	return pickEarliest(paths, size, &a.rot)
}

const (
	// nominalRate is the rate assumed for every path while no live path has a rate sample:
	// 100 Mbit/s, in bytes per second. Its value only weighs backlog against RTT.
	nominalRate = 100e6 / 8
	// maxRate caps a delivery rate (8 Pbit/s) so that rate*RTT stays finite even for an
	// infinite rate, and rate*0 is never NaN.
	maxRate = 1e15
	// probeChunks and probeBytes bound the backlog of a path without a rate sample while
	// another path has one: max(probeChunks chunks, probeBytes).
	probeChunks = 2
	probeBytes  = 256 << 10
	// initialWindow is what a TCP connection sends in its first round trip: Linux's initial
	// congestion window of 10 segments (RFC 6928) at the MSS of a 1500-byte MTU. A path with a
	// larger MSS (loopback) ramps up faster; the estimate is then conservative, and scales with
	// the RTT, which is tiny there.
	initialWindow = 10 * 1448
	// stickyFactor and stickySlack bound how much later than the earliest path an idle path
	// used last may deliver a chunk and still take it (Adaptive's affinity): within a quarter,
	// plus 100 µs of measurement noise on the shortest paths.
	stickyFactor = 1.25
	stickySlack  = 100 * time.Microsecond
)

// pickEarliest is the adaptive rule, shared by Adaptive and Redundant.
func pickEarliest(paths []Path, size int, rot *rotation) int {
	// The best measurements among the live paths stand in for missing ones.
	e := estimator{chunk: float64(max(size, 0))}
	for i := range paths {
		p := &paths[i]
		if !p.Live {
			continue
		}
		e.bestRate = max(e.bestRate, rateOf(p))
		if p.SRTT > 0 && (e.minRTT == 0 || p.SRTT < e.minRTT) {
			e.minRTT = p.SRTT
		}
	}
	e.measured = e.bestRate > 0
	if !e.measured {
		e.bestRate = nominalRate
	}
	e.probeCap = max(probeChunks*e.chunk, probeBytes)

	// The earliest path.
	first, firstWait, firstT := -1, 0.0, 0.0
	for i := range paths {
		wait, t, ok := e.estimate(&paths[i])
		if ok && (first < 0 || t < firstT || (t == firstT && rot.before(paths[i].Index, paths[first].Index))) {
			first, firstWait, firstT = i, wait, t
		}
	}
	if first < 0 {
		return -1
	}
	if k := affinity(paths, rot); k >= 0 && k != first && !paths[k].Full && paths[k].SRTT > 0 {
		// Affinity: light traffic stays on the measured path it used last while that path is
		// idle and about as early as the earliest (stickySlack): a message stream keeps to one
		// connection, whose TCP state stays warm, and whose receiver can read it in the
		// application's own goroutine (internal/session, inline reading), instead of hopping
		// between paths on measurement noise.
		if wait, t, ok := e.estimate(&paths[k]); ok && wait == 0 && t <= firstT*stickyFactor+stickySlack.Seconds() {
			return k
		}
	}
	if !paths[first].Full {
		rot.picked(paths[first].Index)
		return first
	}

	// The earliest path is full: the eligible path that would start on the chunk soonest.
	bound := firstT + firstWait
	best, bestWait, bestT := first, firstWait, firstT
	for i := range paths {
		if i == first || paths[i].Full {
			continue
		}
		wait, t, ok := e.estimate(&paths[i])
		if !ok || t > bound {
			continue
		}
		if best == first {
			best, bestWait, bestT = i, wait, t
			continue
		}
		if wait < bestWait || (wait == bestWait && (t < bestT || (t == bestT && rot.before(paths[i].Index, paths[best].Index)))) {
			best, bestWait, bestT = i, wait, t
		}
	}
	rot.picked(paths[best].Index)
	return best
}

// estimator computes the adaptive rule's wait and linger for the paths of one view.
type estimator struct {
	chunk    float64       // the chunk's size in bytes
	bestRate float64       // highest live rate sample, else nominalRate
	minRTT   time.Duration // lowest live RTT sample, else 0
	measured bool          // some live path has a rate sample
	probeCap float64       // backlog bound of an unmeasured path while measured
}

// estimate returns, in seconds, how long a chunk handed to p now would wait before p starts
// sending it, and how long until the peer has it; ok is false if p must not be given the chunk.
// The times are finite or +Inf, never NaN.
func (e *estimator) estimate(p *Path) (wait, linger float64, ok bool) {
	if !p.Live {
		return 0, 0, false
	}
	queued, inFlight := bytesOf(p.QueuedBytes), bytesOf(p.InFlight)
	rate := rateOf(p)
	unmeasured := rate == 0
	if unmeasured {
		if e.measured && queued+inFlight >= e.probeCap {
			return 0, 0, false // probed enough; wait for its first sample
		}
		rate = e.bestRate
	}
	rtt := p.SRTT
	if rtt <= 0 {
		rtt = e.minRTT
	}
	wait, linger, ok = estimate(queued, inFlight, e.chunk, rate, rtt.Seconds())
	if unmeasured && p.SRTT > 0 {
		srtt := p.SRTT.Seconds()
		wait = max(wait, slowStart(queued+inFlight, srtt))
		linger = max(linger, slowStart(queued+inFlight+e.chunk, srtt)+srtt/2)
	}
	return wait, linger, ok
}

// slowStart returns how long, in seconds, a TCP connection in slow start with round-trip time
// rtt takes to send n bytes: the round trips before the last one needed, the connection sending
// initialWindow in its first and doubling it in each after.
func slowStart(n, rtt float64) float64 {
	rounds := 0.0
	for sent, w := 0.0, float64(initialWindow); sent+w < n; w *= 2 {
		sent += w
		rounds++
	}
	return rounds * rtt
}

// estimate is the adaptive rule's arithmetic for a path with the given backlog (bytes, not
// negative), rate (bytes/s, in (0, maxRate]) and RTT (s, not negative), for a chunk of size bytes.
func estimate(queued, inFlight, size, rate, rtt float64) (wait, linger float64, ok bool) {
	ahead := queued + max(0, inFlight-rate*rtt)
	return ahead / rate, (ahead+size)/rate + rtt/2, true
}

// rateOf is p's delivery rate, 0 if not measured (not positive, or NaN), at most maxRate.
func rateOf(p *Path) float64 {
	r := p.DeliveryRate
	if !(r > 0) {
		return 0
	}
	return min(r, maxRate)
}

// bytesOf converts a byte count, negative ones counting as 0.
func bytesOf(n int64) float64 {
	return float64(max(n, 0))
}

// rotation breaks ties between equally good paths in turn by Index, as RoundRobin does: the
// first Index after the last one picked, wrapping around.
type rotation struct {
	last int // Index of the path picked last
	used bool
}

// before reports whether the path with Index a comes before the one with Index b in the turn.
func (r *rotation) before(a, b int) bool {
	aWrapped, bWrapped := r.used && a <= r.last, r.used && b <= r.last
	if aWrapped != bWrapped {
		return bWrapped
	}
	return a < b
}

// picked records the Index of the path just picked.
func (r *rotation) picked(index int) { r.last, r.used = index, true }

// affinity returns the position in paths of the path light traffic should keep to: the one the
// peer's data last arrived on (Answer), else the one picked last; -1 if neither.
func affinity(paths []Path, rot *rotation) int {
	for i := range paths {
		if paths[i].Answer {
			return i
		}
	}
	return rot.lastAt(paths)
}

// lastAt returns the position in paths of the path picked last, or -1.
func (r *rotation) lastAt(paths []Path) int {
	if !r.used {
		return -1
	}
	for i := range paths {
		if paths[i].Index == r.last {
			return i
		}
	}
	return -1
}

// LossCopy returns the position in paths of the path that should carry a copy of a chunk of
// size bytes that Pick gave to paths[picked], or -1 for none. A copy is made only when the
// picked path is Lossy and another path can take the chunk at no cost to anything else: live,
// not lossy, with an RTT sample, its queue empty and room in it, and little in flight (within
// one bandwidth-delay product, or the backlog Pick lets an unmeasured path take, whichever is
// larger); of those, the one that would deliver it first. A message that would otherwise wait on a lossy path for a retransmission
// (a round trip, or a retransmission timeout for a tail loss) then arrives by the clean path,
// and the receiver discards whichever copy comes second. Under load no path has its queue
// empty and nothing ahead, so bulk transfers make no copies: the cost is bandwidth that light
// traffic leaves unused.
func LossCopy(paths []Path, picked, size int) int {
	if picked < 0 || picked >= len(paths) || !paths[picked].Lossy {
		return -1
	}
	best, bestT := -1, 0.0
	for i := range paths {
		p := &paths[i]
		if i == picked || !p.Live || p.Lossy || p.Full || p.QueuedBytes > 0 || p.SRTT <= 0 {
			continue
		}
		rate, inFlight, size := rateOf(p), bytesOf(p.InFlight), float64(max(size, 0))
		if rate == 0 {
			rate = nominalRate
		}
		// Light traffic measures a rate below what the path can do, so its bandwidth-delay
		// product is not a bound here: what Pick lets an unmeasured path take is.
		if inFlight > max(rate*p.SRTT.Seconds(), probeBytes) {
			continue
		}
		_, t, _ := estimate(0, inFlight, size, rate, p.SRTT.Seconds())
		if best < 0 || t < bestT {
			best, bestT = i, t
		}
	}
	return best
}
