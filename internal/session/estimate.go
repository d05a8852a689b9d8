package session

import (
	"math"
	"time"
)

// Estimators. Each is a pure function of its inputs and the time it is given: the engine keeps
// their state where its lock map says and calls them with the session clock, and the tests call
// them with made-up times.

// minRTTWindow is how long a minimum RTT sample stands before a larger one may replace it.
const minRTTWindow = 10 * time.Second

// rttEstimate is a path's round-trip estimate: smoothed RTT and variance as RFC 6298 keeps them,
// and the least sample of the last minRTTWindow. The zero value has no sample.
type rttEstimate struct {
	srtt, rttvar time.Duration
	min          time.Duration // 0 until a sample
	minAt        time.Duration // when min was sampled
	at           time.Duration // when the last sample came; 0 before the first
}

// sample returns the estimate updated with a round trip r measured at now. Samples that are not
// positive are ignored.
func (e rttEstimate) sample(r, now time.Duration) rttEstimate {
	if r <= 0 {
		return e
	}
	if e.min == 0 || r <= e.min || now-e.minAt > minRTTWindow {
		e.min, e.minAt = r, now
	}
	e.at = now
	if e.srtt == 0 {
		e.srtt, e.rttvar = r, r/2
		return e
	}
	d := e.srtt - r
	if d < 0 {
		d = -d
	}
	e.rttvar = (3*e.rttvar + d) / 4
	e.srtt = (7*e.srtt + r) / 8
	return e
}

// sampleIdle is sample for a round trip r of a path that had nothing in flight: a probe's. A
// busy path's smoothed RTT carries the queue its own data builds in its socket and the network;
// an idle path has no such queue, so a sample under half the smoothed RTT means that queue has
// drained, and the estimate starts again from it, as from a first sample (RFC 6298 allows
// clearing SRTT once it is known to be bogus, 5.7). Smoothing down instead takes a sample per
// eighth of the way: after a rate collapse had queued seconds of data, a restored path kept an
// SRTT of 1.5 s for many seconds, and the scheduler fed it nothing meanwhile.
// It reports whether the estimate started again.
func (e rttEstimate) sampleIdle(r, now time.Duration) (rttEstimate, bool) {
	restart := r > 0 && r < e.srtt/2
	if restart {
		e.srtt, e.rttvar = 0, 0
	}
	return e.sample(r, now), restart
}

// staleRateFactor: a path whose RTT estimate started again (sampleIdle) while its delivery rate
// is under 1/staleRateFactor of the best live path's has its rate measured afresh. Its rate was
// lowered while it lagged (lagRate) and, fed nothing since, never measured again: a rate
// collapse that had ended left the path at a tenth of its restored rate, too slow for the
// scheduler to feed, for seconds. Unmeasured, it is probed as a new path is (two chunks at
// most until its first sample).
const staleRateFactor = 4

// staleRate reports whether a path's delivery rate is to be measured afresh: its RTT estimate
// started again (restarted) while its rate, measured (above 0), is under 1/staleRateFactor of
// the best live path's.
func staleRate(restarted bool, rate, best float64) bool {
	return restarted && rate > 0 && rate < best/staleRateFactor
}

// rttRefresh is how old the last RTT sample of a usable path carrying nothing may grow while its
// session is busy before the monitor probes it: the scheduler weighs that path by its estimate,
// and a path it does not feed yields no samples of its own (its keepalive waits for a second
// with no write, and its PONGs to the peer's PINGs count as writes).
const rttRefresh = 250 * time.Millisecond

// refreshDue reports whether a path whose last RTT sample came at sampled and which was last
// probed at probed is due a probe at now.
func refreshDue(now, sampled, probed time.Duration) bool {
	return now-sampled > rttRefresh && now-probed > rttRefresh
}

// maxBackoff bounds how many times an RTO doubles.
const maxBackoff = 6

// rto is the retransmission timeout for an estimate: SRTT plus four deviations (RFC 6298), at
// least floor, doubled for each of backoff expiries since the last sample (at most maxBackoff).
// Before any sample it is 1 s (or floor, if more), as RFC 6298 recommends.
func (e rttEstimate) rto(floor time.Duration, backoff int) time.Duration {
	r := max(floor, time.Second)
	if e.srtt > 0 {
		r = max(floor, e.srtt+4*e.rttvar)
	}
	return r << min(max(backoff, 0), maxBackoff)
}

// rateInterval is the shortest span a delivery-rate sample covers, with at least two round trips.
// Shorter samples were tried (20 ms for a path's first): on a shaped link they measure its bursts,
// an estimate too high lets the path queue more than it should, and the longer RTO that follows
// misses a short cut.
const rateInterval = 200 * time.Millisecond

// rateSampler estimates a path's delivery rate from its count of bytes acknowledged. The zero
// value has measured nothing, and starts its first sample when the path is first busy.
type rateSampler struct {
	acked int64         // the count at the start of the current sample
	start time.Duration // when it started
	busy  bool          // the path had data outstanding then
	rate  float64       // smoothed bytes per second; 0 until measured
}

// sample looks at the path at now, with acked its count of bytes acknowledged and busy whether it
// has data outstanding, srtt its smoothed RTT. A sample that began idle restarts as soon as the
// path is busy (its idle part would only dilute it). Otherwise, once it spans rateInterval and two
// round trips it closes, and the next begins. Only a sample over which the path was busy (at its
// start and at its end) measures the path; one taken while the application had little to send
// measures the application, and may only raise an estimate that exists. It reports whether the
// estimate changed.
func (r *rateSampler) sample(now, srtt time.Duration, acked int64, busy bool) bool {
	if !r.busy && busy {
		r.acked, r.start, r.busy = acked, now, true
		return false
	}
	span := max(rateInterval, 2*srtt)
	if now-r.start < span {
		return false
	}
	got := float64(acked-r.acked) / (now - r.start).Seconds()
	old := r.rate
	switch {
	case r.busy && busy && r.rate == 0:
		r.rate = got
	case r.busy && busy || r.rate > 0 && got > r.rate:
		r.rate = (r.rate + got) / 2
	}
	r.acked, r.start, r.busy = acked, now, busy
	return r.rate != old
}

// initialInflight is a path's in-flight cap before its delivery rate is measured: enough for
// loopback and LAN paths to reach a rate sample quickly (acknowledgements come every ackBytes),
// little enough that a slow path does not start with seconds of data in its socket buffers.
const initialInflight = 1 << 20

// inflightCap is the most chunk bytes a path keeps written and unacknowledged before its writer
// holds new data back: twice the bytes its delivery rate carries in its minimum round trip
// (queueing excluded, or the cap would grow with the queue it should prevent) plus the receiver's
// acknowledgement delay, and at least two chunks (one being received while the acknowledgement of
// the one before comes back); a path whose connection has been retransmitting (lossy) is allowed
// lossSlack more. Beyond that, data would only wait in socket buffers, where it
// cannot be moved when the path fails: a chunk sent again there after another path failed, or
// after this one did, waits behind all of it, and it is sent twice (the kernel retransmits what
// it holds when the path comes back). Until the rate is measured (rate 0), initialInflight or two
// chunks, if more, as TCP starts with an initial window. (A monitor tick was once added to the
// round trip; taking it out took the longest gap after a cut of one of two 50 Mbit/s paths from
// 236–301 ms to 168–201 ms, EVALUATION.md.)
func inflightCap(rate float64, minRTT time.Duration, chunkSize int, lossy bool) int64 {
	floor := int64(2 * chunkSize)
	if rate <= 0 {
		return max(initialInflight, floor)
	}
	rtt := minRTT + ackDelay
	if lossy {
		rtt += lossSlack
	}
	return max(int64(2*rate*rtt.Seconds()), floor)
}

// lossSlack is what a lossy path's in-flight cap allows beyond its round trip: a chunk that meets
// a loss is acknowledged a retransmission later, and the chunks behind it wait for room meanwhile.
// (Without it, 5% loss on one of two 50 Mbit/s paths took that path from 46–47 to 40–43 Mbit/s.)
const lossSlack = 50 * time.Millisecond

// stalled reports whether a path whose oldest unacknowledged send is at oldest (0: none) has gone
// longer than rto, at now, without any of its chunks being acknowledged (last at ackProgress).
// Queueing delay makes old chunks, but a path still delivering keeps making acknowledgements.
func stalled(now, oldest, ackProgress, rto time.Duration) bool {
	return oldest > 0 && now-max(oldest, ackProgress) > rto
}

// suspect reports whether a path last heard from at heard is suspect at a moment when the session
// last heard from any path at anyHeard: silent for longer than minRTO while another path was not.
// It may be blackholed, so it should not volunteer to carry the session-wide CREDIT and
// CHUNK_ACK, which would be lost with it.
func suspect(heard, anyHeard, minRTO time.Duration) bool {
	return anyHeard-heard > minRTO
}

// lagLimit is how long a path that delivers at its measured rate (bytes per second) goes, at
// most, without an acknowledgement while it has data outstanding: a chunk's transmission three
// times over (the one being acknowledged may have begun just before the last acknowledgement,
// and a rate sampled over bursts may be up to twice too high), a minimum round trip for its
// acknowledgement, the receiver's acknowledgement delay, and two monitor ticks: one for the
// check's own lateness, one for a loaded machine's pauses (and for acknowledgements that come
// back by another, slower path). It is 0 (no limit) until the rate is measured. Unlike the RTO
// it follows the path's rate (a path that carries a chunk a second is not lagging at 300 ms)
// and does not back off.
func lagLimit(rate float64, minRTT time.Duration, chunkSize int) time.Duration {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return 0
	}
	tx := time.Duration(float64(chunkSize) / rate * float64(time.Second))
	return 3*tx + minRTT + ackDelay + 2*monitorTick
}

// lagging reports whether a path whose oldest unacknowledged send is at oldest (0: none) has
// gone longer than limit (0: no limit), at now, without any of its chunks being acknowledged
// (last at ackProgress): its delivery has slowed far below its measured rate, or stopped. The
// stall test (stalled) asks the same with the RTO, which backs off; this one does not, so that
// a path that slows again is found as quickly.
func lagging(now, oldest, ackProgress, limit time.Duration) bool {
	return limit > 0 && oldest > 0 && now-max(oldest, ackProgress) > limit
}

// reinject decides, at now, whether a path is rested and its unacknowledged chunks sent again on
// the others (opportunistic reinjection, as MPTCP takes data stuck on a slow subflow for one with
// room): when it lags (see lagging) and another path can take them (othersUsable: usable and
// not lagging itself). With no such path it keeps its data and its place: moving them could
// only add duplicates, and a path that stops altogether is the stall timer's.
func reinject(now, oldest, ackProgress, limit time.Duration, othersUsable int) bool {
	return othersUsable > 0 && lagging(now, oldest, ackProgress, limit)
}

// lagRate is a path's delivery-rate estimate after it was found lagging at now: what it
// delivered over its current sample, acked bytes since start, if that is less than the old
// estimate, but no less than half of it; unchanged if it delivered nothing (it stopped, cut or
// blackholed, rather than slowed: its rate when it comes back is unknown, and most likely the
// old one, which the sampler will correct). A path that collapsed further is found lagging again
// (halved each time) and re-measured as it carries data; a path found lagging by mistake (a
// pause of the machine, acknowledgements delayed on another path) loses no more than half its
// share. Never 0, which would mean "not yet measured", whose in-flight allowance is the largest.
func lagRate(old float64, ackedSince int64, since time.Duration) float64 {
	if old <= 0 || ackedSince <= 0 {
		return old
	}
	got := 0.0
	if since > 0 {
		got = float64(ackedSince) / since.Seconds()
	}
	return max(min(old, got), old/2)
}

// lossMemory is how long a path counts as lossy (sched.Path.Lossy) after its TCP connection was
// last seen retransmitting. It is long: once the copies take the messages' latency off a lossy
// path, the scheduler gives it less, so it retransmits less often, and a shorter memory let it
// turn clean between losses and take messages uncopied again (2 s: the 1%-loss message
// scenario's p99 went back to the lossy path's each time). Keeping a path marked costs little:
// copies go only to a clean path with nothing queued and nothing of its own ahead.
const lossMemory = 10 * time.Second

// lossy reports whether a path whose TCP connection was last seen retransmitting at lossAt (0:
// never) counts as lossy at now.
func lossy(now, lossAt time.Duration) bool { return lossAt > 0 && now-lossAt < lossMemory }

// tcpSilenceLimit is how long a path's TCP connection may go without receiving any ACK while
// it has data outstanding before the path counts as stopped: two smoothed round trips (srtt:
// silenceRTT), and at least one round trip plus delayedAckSlack for a receiver's delayed ACK. A
// connection with two or more segments unacknowledged is ACKed within a round trip while packets
// arrive (every second full segment is), and the kernel stamps ACKs as they come, whatever the
// process is doing; the limit needs neither the delivery rate nor Braid's own acknowledgements,
// which ride on any path and wait for the receiver's ACK delay and monitor ticks (lagLimit allows
// for those). The smoothed RTT includes the queue the path builds, so a path whose queue grows is
// not taken for a stopped one; a delay that jumps past the limit is, and its chunks then go by
// the others.
func tcpSilenceLimit(srtt time.Duration) time.Duration {
	return max(2*srtt, srtt+delayedAckSlack)
}

// silenceRTT is the round trip a path's silence is judged by: the kernel's smoothed RTT (kernel),
// or the path's own minimum RTT (minRTT) if the kernel gave none.
func silenceRTT(kernel, minRTT time.Duration) time.Duration {
	if kernel > 0 {
		return kernel
	}
	return minRTT
}

// delayedAckSlack allows for a receiver that holds its ACK back (Linux: 40 ms at least), and for
// the millisecond the kernel reports the ACK's age in.
const delayedAckSlack = 45 * time.Millisecond

// tcpSilent reports whether a path has stopped, as its kernel sees it: Braid data outstanding
// since oldest (0: none), at least two segments unacknowledged, and no ACK received since
// lastACK, for longer than limit (tcpSilenceLimit). If it has not, due is how long from now it
// would be, when the path is suspicious already (no ACK for longer than srtt), so that the
// monitor looks then rather than a tick later; 0 otherwise.
func tcpSilent(now, oldest, lastACK time.Duration, unacked uint32, srtt, limit time.Duration) (silent bool, due time.Duration) {
	if oldest <= 0 || unacked < 2 {
		return false, 0
	}
	quiet := now - max(oldest, lastACK)
	switch {
	case quiet > limit:
		return true, 0
	case quiet > srtt:
		return false, limit - quiet + time.Millisecond
	}
	return false, 0
}

// slowForControl reports whether a path whose smoothed RTT is srtt should leave the session's
// CHUNK_ACK and CREDIT to a live path whose SRTT is best (0: none measured): when it is more than
// twice as slow, and by more than controlSlack. Acknowledgements free room under every path's
// in-flight cap, whichever path they come by, so one that rides a slow path (a delay that jumped
// to 50 ms one way, beside 10 ms) holds the fast path's writer back for the difference.
func slowForControl(srtt, best time.Duration) bool {
	return best > 0 && srtt > 2*best+controlSlack
}

// controlSlack keeps paths whose round trips differ by little (loopback, a LAN) all taking
// control frames.
const controlSlack = 5 * time.Millisecond
