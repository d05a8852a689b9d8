package session

import (
	"fmt"
	"math"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// Loss recovery. TCP's own acknowledgements say nothing once a connection is gone, so the session
// acknowledges chunks itself (CHUNK_ACK) and keeps every chunk until then. A chunk's fate is
// decided here: settled when acknowledged, or abandoned when the peer closes (settle); sent again
// on another path when its path dies, or when it has waited longer than its path's
// retransmission timeout (RTO) — a stalled or blackholed path (requeueFrom). The receiver drops
// the duplicates.

// monitorTick is how often a session checks its paths' timers.
const monitorTick = 50 * time.Millisecond

// release drops one hold on a chunk (a piece's hold is on its chunk); the last returns its buffer
// to the pool.
func (s *Session) release(oc *outChunk) {
	oc = oc.chunk()
	if oc.refs.Add(-1) == 0 {
		if l := oc.lease; l != nil {
			oc.lease, oc.payload = nil, nil
			l.release()
		}
		s.chunkPool.Put(oc)
	}
}

// dropOutstanding lets go of every chunk still unacknowledged once the session has ended and its
// goroutines have stopped: nothing will send them again. Messages sent with SendNoCopy are
// handed back.
func (s *Session) dropOutstanding() {
	defer s.runCompletions()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abandonAll()
}

// abandonAll settles every chunk still unacknowledged as abandoned: the peer will never
// acknowledge it (it closed), or nothing will send it again (the session ended). Call with s.mu
// held.
func (s *Session) abandonAll() {
	s.out.Apply(&wire.ChunkAck{Cum: s.nextSeqSent}, func(_ uint64, oc *outChunk) {
		s.undelivered++
		s.settle(oc, fateAbandoned, nil, 0)
	})
}

// delivery reports whether the peer acknowledged everything this end sent: nil, or an error
// matching ErrUndelivered that says how much was not and why. Call once the session's goroutines
// have stopped.
func (s *Session) delivery() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.undelivered == 0 {
		return nil
	}
	why := "the peer closed the session first"
	if !s.peerClosed && s.err != nil {
		why = s.err.Error()
	}
	return fmt.Errorf("%w: %d chunks never acknowledged (%s)", ErrUndelivered, s.undelivered, why)
}

// fate is how a chunk leaves the outstanding set.
type fate uint8

const (
	fateAcked     fate = iota // the peer acknowledged it
	fateAbandoned             // the peer closed: it reads nothing more, so nothing more will be
)

// settle ends the life of a chunk just taken out of the outstanding set: it is marked done, so
// that no queue writes it again; what paths carried of it leaves their in-flight counts (and,
// acknowledged, counts as delivered there, restarting that path's retransmission timer, RFC 6298
// 5.3); and the set's hold goes. For an acknowledgement that arrived on path by at now, it
// returns the RTT sample the chunk gives (Karn's rule: only a chunk sent once, on by), or 0. Call
// with s.mu held.
func (s *Session) settle(oc *outChunk, f fate, by *path, now time.Duration) (sample time.Duration) {
	oc.acked.Store(true)
	if f == fateAcked {
		s.ctr.bytesAcked.Add(uint64(len(oc.payload)))
	}
	oc.eachCarried(func(c *outChunk) {
		landed(c, int64(len(c.payload)), f == fateAcked)
		if f != fateAcked {
			return
		}
		if q := s.pathAt(c.path); q != nil {
			q.ackProgress = now
		}
		if sent := c.sentAt.Load(); !c.resent && c.path == by.index && sent > 0 {
			sample = max(sample, now-time.Duration(sent))
		}
	})
	s.release(oc)
	return sample
}

// onAck releases the chunks a CHUNK_ACK from path p acknowledges, taking an RTT sample for p.
func (s *Session) onAck(p *path, a *wire.ChunkAck) error {
	now := s.clock()
	defer s.runCompletions()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Cum > s.nextSeqSent || (len(a.Ranges) > 0 && a.Ranges[len(a.Ranges)-1].To > s.nextSeqSent) {
		return violation(wire.CodeProtocol, fmt.Errorf("%w: CHUNK_ACK beyond seq %d, the last sent", ErrProtocol, s.nextSeqSent))
	}
	if a.Cum > 0 {
		s.highestAcked = max(s.highestAcked, a.Cum-1)
	}
	if len(a.Ranges) > 0 {
		s.highestAcked = max(s.highestAcked, a.Ranges[len(a.Ranges)-1].To-1)
	}
	var sample time.Duration
	s.out.Apply(a, func(_ uint64, oc *outChunk) {
		sample = max(sample, s.settle(oc, fateAcked, p, now))
	})
	if sample > 0 {
		p.sampleRTT(sample, true)
	}
	// Delivery rates move with acknowledgements: sampling here, not only on the monitor's
	// ticks, gives a new path its rate (and its in-flight cap) within rateInterval.
	for _, e := range s.paths {
		if e != nil && !e.dead.Load() {
			s.sampleRate(e, now)
		}
	}
	if s.out.Len() == 0 || s.phase >= phaseClosing {
		s.broadcast() // Close waits for everything to be acknowledged, and watches progress
	}
	return nil
}

// onClose takes the peer's CLOSE: it has sent its last item, and reads nothing more.
func (s *Session) onClose(items uint64) error {
	defer s.runCompletions()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peerClosed {
		if s.peerItems != items {
			return violation(wire.CodeProtocol, fmt.Errorf("%w: CLOSE counts %d items, earlier %d", ErrProtocol, items, s.peerItems))
		}
		return nil
	}
	s.peerClosed, s.peerItems = true, items
	s.abandonAll() // what the peer has not acknowledged it never will
	s.broadcast()
	return nil
}

// bestRate returns the highest delivery rate of the session's live paths. Call with s.mu held.
func (s *Session) bestRate() float64 {
	best := 0.0
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() {
			best = max(best, p.rateEst.rate)
		}
	}
	return best
}

// sampleRate updates the delivery rate of path e at now, publishing it to the path's writer, or
// forgets it if it is stale (staleRate). Call with s.mu held.
func (s *Session) sampleRate(e *pathEntry, now time.Duration) {
	// The best rate is looked up only when the path's RTT estimate restarted, which is rare:
	// this runs for every path at every acknowledgement.
	if restarted := e.rttRestarted.Swap(false); restarted && staleRate(restarted, e.rateEst.rate, s.bestRate()) {
		e.debug("path idle at its base RTT with a stale low rate: measuring it afresh", "rate_was", int64(e.rateEst.rate))
		e.rateEst = rateSampler{}
		e.path.rate.Store(0)
		return
	}
	busy := e.inflight.Load() > 0 || e.queued.Load() > 0
	if e.rateEst.sample(now, e.rtt().srtt, e.acked.Load(), busy) {
		e.path.rate.Store(math.Float64bits(e.rateEst.rate))
	}
}

// requeueFrom sends again, on other paths, every unacknowledged chunk last sent on from (nil: on
// paths that are no longer live). Call with s.mu held.
func (s *Session) requeueFrom(from *path) int {
	n := 0
	// Only the chunks leaving are sorted (this runs on every monitor tick, mostly finding none).
	leaving := func(_ uint64, oc *outChunk) bool {
		if oc.kids == nil {
			return s.leaving(oc.path, from)
		}
		for j := range oc.kids {
			if s.leaving(oc.kids[j].path, from) {
				return true
			}
		}
		return false
	}
	// Lowest seq first: the receiver delivers in order, so the oldest chunk is the one it waits for.
	s.seqScratch = s.out.InOrder(s.seqScratch, leaving, func(_ uint64, oc *outChunk) {
		if oc.kids != nil {
			for j := range oc.kids {
				n += s.requeuePiece(&oc.kids[j], from)
			}
			return
		}
		var cur *path
		if e := s.pathAt(oc.path); e != nil {
			cur = e.path
		}
		// Whatever cur's queue still holds of it is no longer cur's to send (nil: an orphan
		// placed now, on whichever path, writes any copy it finds).
		oc.movedFrom.Store(cur)
		to := s.leastQueued(cur)
		if to == nil {
			oc.path = -1 // an orphan until a path comes up
			return
		}
		oc.path, oc.resent = to.index, true
		oc.refs.Add(1)
		to.retransmit(oc)
		n++
	})
	return n
}

// leaving reports whether a chunk or piece last sent on path index i must be sent again
// elsewhere: it was on from or, with from nil, on a path no longer usable. One that Send is
// placing right now (pathRouting) is not. Call with s.mu held.
func (s *Session) leaving(i int, from *path) bool {
	if i == pathRouting {
		return false
	}
	cur := s.pathAt(i)
	if from != nil {
		return cur != nil && cur.path == from
	}
	return cur == nil || !cur.usable()
}

// leastQueued returns the usable path other than not with the fewest bytes waiting. Call with
// s.mu held.
func (s *Session) leastQueued(not *path) *path {
	var best *path
	for _, p := range s.paths {
		if p == nil || p.path == not || !p.usable() {
			continue
		}
		if best == nil || p.queued.Load() < best.queued.Load() {
			best = p.path
		}
	}
	return best
}

// monitor runs the session's timers: retransmission timeouts, path liveness and the grace
// period, until the session ends. It is a timer, not a goroutine (a server may hold tens of
// thousands of sessions): each firing runs monitorRun, which sets it again, every monitorTick
// while the session is busy (chunks outstanding or arriving, a path stalled, closing), and
// otherwise only for the next deadline an idle session has (a path's PathTimeout, the grace
// period, a server's handshake timeout), so that an idle session costs a wake-up every few
// seconds, not twenty a second. Whatever makes the session busy again runs it at once
// (wakeMonitor), and so does the session's end, after which it closes monitorDone.
//
// A run sets the timer again only once it has fired; a run that comes early (woken) stops the
// pending timer and makes a new one. Reset on a timer still pending makes the Go runtime scan
// its whole timer heap when the new deadline comes (every timer of every session: a few
// thousand per thousand sessions), where a stopped one is swept away with others in bulk.
func (s *Session) startMonitor() {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	s.monTimer = time.AfterFunc(monitorTick, s.monitorRun)
	s.shared.wake = s.runMonitorNow
}

// runMonitorNow runs the monitor on a goroutine of its own, now (or once a run in progress ends).
func (s *Session) runMonitorNow() { go s.monitorRun() }

// monitorRun is one firing of the monitor. Runs never overlap: a firing during a run waits for it.
func (s *Session) monitorRun() {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	if isClosed(s.monitorDone) {
		return
	}
	if !isClosed(s.done) {
		next, idle := s.checkTimers(s.clock())
		s.runCompletions()
		if !isClosed(s.done) {
			s.setMonitor(next, idle)
			return
		}
	}
	// The session has ended (enter runs the monitor once more when it does).
	s.monTimer.Stop()
	close(s.monitorDone)
}

// setMonitor sets the monitor's timer for its next run, next from now, after a run that found
// the session idle or busy. Call with monMu held.
func (s *Session) setMonitor(next time.Duration, idle bool) {
	if s.monTimer.Stop() {
		s.monTimer = time.AfterFunc(next, s.monitorRun) // woken early: see startMonitor
	} else {
		s.monTimer.Reset(next)
	}
	// Found idle, and woken since (wakeMonitor clears idle and runs the monitor, which may have
	// come before this run set the timer): look again at once.
	if idle && !s.shared.idle.Load() {
		s.runMonitorNow()
	}
}

// wakeMonitor has an idle monitor look again at once: the session may have become busy.
func (s *Session) wakeMonitor() { s.shared.wakeMonitor() }

// idleSlack is how long after an idle session's deadline its monitor looks: the reader notes each
// frame's arrival (lastRecv), so a deadline that has moved meanwhile is simply set again.
const idleSlack = 10 * time.Millisecond

// busy reports whether the session needs its monitor every monitorTick: chunks it sent are
// unacknowledged, chunks arrived since the last look (stuck holders, suspect paths and the
// ACK and CREDIT they may have taken with them), a path is stalled or has data queued or in
// flight, or the session is closing. (A writer disarmed while the session was busy is rearmed
// when it turns idle: an idle session's writers ignore suspicion.) Call with s.mu held, after the per-path look.
func (s *Session) busy(arrived bool) bool {
	if arrived || s.out.Len() > 0 || len(s.spares) > 0 || len(s.pieces) > 0 || s.phase != phaseOpen || s.shared.ackDue.Load() {
		return true
	}
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() && (p.stalled.Load() || p.queued.Load() > 0 || p.inflight.Load() > 0) {
			return true
		}
	}
	return false
}

// idleDeadline is how long an idle monitor may sleep: until the first path would reach
// idlePathTimeout unheard, the grace period ends, or (a server's session not yet established) the
// handshake timeout. Call with s.mu held.
func (s *Session) idleDeadline(now time.Duration) time.Duration {
	timeout := idlePathTimeout(s.cfg)
	next := timeout
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() {
			next = min(next, p.heardAt()+timeout-now)
		}
	}
	if s.downSince > 0 {
		next = min(next, s.downSince+s.cfg.ResumeGrace-now)
	}
	if !s.client && !s.established.Load() {
		next = min(next, s.cfg.HandshakeTimeout-now)
	}
	return max(next, 0) + idleSlack
}

// checkTimers is one monitor tick at now. It returns when the next is due, and whether it found
// the session idle (the next is then on the idle grid).
func (s *Session) checkTimers(now time.Duration) (next time.Duration, idle bool) {
	var silent []*path
	resendCtl := false
	arrived := false
	var soon time.Duration // a path may be found stopped by its kernel sooner than next (lookAtTCP)
	s.mu.Lock()
	if s.phase == phaseEnded {
		s.mu.Unlock()
		return monitorTick, false
	}
	s.resendUnrebuilt(now)
	// The fastest path that may carry the session's ACK and CREDIT (slowForControl). Slowness
	// is a busy session's concern, as suspicion is: an idle session's monitor skips it.
	var bestCtl time.Duration
	if !s.idleMode {
		for _, p := range s.paths {
			if p != nil && p.usable() && !p.suspect() {
				if r := p.rtt().srtt; r > 0 && (bestCtl == 0 || r < bestCtl) {
					bestCtl = r
				}
			}
		}
	}
	for _, p := range s.paths {
		if p == nil || p.dead.Load() {
			continue
		}
		// Any bytes arriving, even mid-frame, show the path alive (but only a completed round
		// trip ends a stall: see the PONG handling).
		if n := p.bytesRead(); n >= 0 && n != p.lastBytes {
			p.lastBytes = n
			p.lastRecv.Store(int64(now))
			s.shared.lastHeard.Store(int64(now))
		}
		if c := p.chunksRecv.Load(); c != p.lastChunks {
			p.lastChunks, arrived = c, true
		}
		s.sampleRate(p, now)
		heard, timeout := p.heardAt(), s.cfg.PathTimeout
		if s.idleMode {
			timeout = idlePathTimeout(s.cfg)
		} else {
			heard = max(heard, s.busySince)
		}
		if now-heard > timeout {
			silent = append(silent, p.path)
			continue
		}
		// A path far slower than another leaves the session's ACK and CREDIT to it (bestCtl is
		// 0 in an idle session, so slow is false there). Its control frames arrive late, not
		// never, so they are not sent again when it turns slow. (An idle session once judged a
		// path slow after a late PONG, resent its ACK and CREDIT, turned busy, idle again, and
		// so on: 20% of a core for 1,000 of them.)
		slow := slowForControl(p.rtt().srtt, bestCtl)
		p.slowCtl.Store(slow)
		// A path that falls silent may have taken the last CREDIT or CHUNK_ACK with it: send
		// them again, on the others (a suspect path's writer does not take them).
		sus := p.suspect()
		if sus != p.wasSuspect {
			p.wasSuspect = sus
			if sus {
				resendCtl = true
			}
		}
		if !sus && !slow && p.disarmed.Load() {
			// Its writer is waiting without listening for the session's ACK and CREDIT kicks,
			// which the other paths may have stopped taking meanwhile.
			p.kickWriter(p.rearm)
		}
		// Slowed far below its measured rate, or stopped: while another path can take its
		// chunks they go there now, and it is rested without backing off its RTO (rest). The
		// limit follows the rate; an RTO that would expire first counts the same. With no
		// other usable path the RTO stall below applies, backing off, as it must for a path
		// that is all there is. Coded pieces cannot move: their slot is their path.
		// An idle session has nothing outstanding to find stopped, and its lossy marks are
		// looked at again when it is busy: its paths' kernels are not asked meanwhile.
		lag, silent, silenceLimit := false, false, time.Duration(0)
		if !s.idleMode {
			var due time.Duration
			silent, silenceLimit, due = s.lookAtTCP(p, now)
			if due > 0 && (soon == 0 || due < soon) {
				soon = due
			}
		}
		if s.codec == nil && !p.stalled.Load() {
			limit := lagLimit(math.Float64frombits(p.rate.Load()), p.rtt().min, s.chunkSize)
			if rto := p.rto(s.cfg.MinRTO); limit == 0 || rto < limit {
				limit = rto
			}
			if silent {
				limit = min(limit, silenceLimit)
			}
			others := s.othersUsable(p.path)
			if lag = reinject(now, p.oldest, p.ackProgress, limit, others) || silent && others > 0; lag {
				s.rest(p, now, limit)
			}
		}
		if !lag && stalled(now, p.oldest, p.ackProgress, p.rto(s.cfg.MinRTO)) {
			p.stall(now)
			p.backOff()
			if moved := s.requeueFrom(p.path); moved > 0 {
				p.debug("retransmission timeout", "rto", p.rto(s.cfg.MinRTO), "resent_chunks", moved)
			}
		}
	}
	// Chunks orphaned while no path was usable (all stalled, say) go to one that is now.
	if s.leastQueued(nil) != nil {
		s.requeueFrom(nil)
	}
	// A stalled path is probed at once and then every RTO until a round trip completes: a
	// keepalive would wait for an idle path, which one busy carrying the peer's ACKs never is.
	// While the session is busy, a usable path carrying nothing is probed when its last RTT
	// sample is older than rttRefresh, so that the scheduler sees it as it is now.
	for _, p := range s.paths {
		if p == nil || p.dead.Load() {
			continue
		}
		switch {
		case p.stalled.Load():
			if now-p.lastProbe > p.rto(s.cfg.MinRTO) {
				p.lastProbe = now
				p.probe()
			}
		case !s.idleMode && p.usable() && p.inflight.Load() <= 0 && p.queued.Load() <= 0:
			if refreshDue(now, p.rtt().at, p.lastProbe) {
				p.lastProbe = now
				p.probe()
			}
		}
	}
	expired := s.downSince > 0 && now-s.downSince > s.cfg.ResumeGrace
	squatted := !s.client && !s.established.Load() && now > s.cfg.HandshakeTimeout
	stuck := s.stuckHolders(now)
	next = monitorTick
	var wake []*path
	switch busy := s.busy(arrived) || len(silent) > 0 || expired; {
	case !busy:
		// Idle: suspicion is a busy session's concern; a path's silence is judged afresh when
		// it next is busy.
		next, idle = onIdleGrid(s.idleDeadline(now)), true
		s.idleMode = true
		s.shared.idle.Store(true)
		if s.inlineOn != nil {
			// A Receive reading a path inline gives it back (and waits for messages as
			// others do): the path's reader then takes its role back and dozes.
			s.inlineOn.interrupt()
		}
		for _, p := range s.paths {
			if p != nil {
				p.wasSuspect = false
				if p.disarmed.Load() {
					p.kickWriter(p.rearm) // its writer, disarmed while busy, looks again: idle, it is not
				}
			}
		}
	case s.idleMode:
		// Turned busy: the paths may have been silent for up to IdleKeepAlive. Each is probed
		// now (its writer then keeps KeepAlive), and judged by PathTimeout from now on.
		s.idleMode, s.busySince = false, now
		s.shared.idle.Store(false)
		for _, p := range s.paths {
			if p != nil && !p.dead.Load() {
				wake = append(wake, p.path)
			}
		}
	}
	if !idle && soon > 0 {
		next = min(next, soon)
	}
	s.mu.Unlock()
	for _, p := range wake {
		p.probe()
	}

	if squatted {
		s.abort(fmt.Errorf("%w: no frame within %v of the session's start", ErrTimeout, s.cfg.HandshakeTimeout), wire.CodeTimeout)
		return next, idle
	}

	for _, end := range stuck {
		end()
	}

	if resendCtl {
		s.shared.ackDue.Store(true)
		s.shared.kickShared(s.shared.creditKick)
		s.shared.kickShared(s.shared.ackKick)
	}
	for _, p := range silent {
		p.setDownReason(fmt.Errorf("nothing received for %v", s.cfg.PathTimeout))
		p.kill(0, "")
	}
	if expired {
		s.abort(fmt.Errorf("%w: no path for longer than the %v grace period", ErrPathLost, s.cfg.ResumeGrace), 0)
	}
	return next, idle
}

// othersUsable counts the usable paths other than not. Call with s.mu held.
func (s *Session) othersUsable(not *path) int {
	n := 0
	for _, e := range s.paths {
		if e != nil && e.path != not && e.usable() {
			n++
		}
	}
	return n
}

// rest takes path e, found lagging at now (for longer than limit), out of use until a round trip
// begun after now completes (as a stalled path: it is probed at once and every RTO, and
// recovered by the probe's answer, which queues behind what it still carries), sends its
// unacknowledged chunks again on the others, lowest seq first, and lowers its delivery-rate
// estimate to what it delivered lately (lagRate), so that once back it is given as much as it
// now carries. Its RTO is not backed off: a path that lags again is found as quickly. Call with
// s.mu held.
func (s *Session) rest(e *pathEntry, now, limit time.Duration) {
	e.stall(now)
	e.lags.Add(1)
	old := e.rateEst.rate
	e.rateEst.rate = lagRate(old, e.acked.Load()-e.rateEst.acked, now-e.rateEst.start)
	e.rateEst.busy = false // the next sample starts when it carries data again
	e.path.rate.Store(math.Float64bits(e.rateEst.rate))
	moved := s.requeueFrom(e.path)
	e.logger().Info("path lagging: resting it, its chunks sent again on the others",
		"silent_for", now-max(e.oldest, e.ackProgress), "limit", limit, "resent_chunks", moved,
		"rate_was", int64(old), "rate_now", int64(e.rateEst.rate))
}

// resendUnrebuilt notes each path's oldest unacknowledged send, for its stall timer, and sends
// again the pieces of coded chunks that were not rebuilt. Call with s.mu held.
func (s *Session) resendUnrebuilt(now time.Duration) {
	for _, p := range s.paths {
		if p != nil {
			p.oldest = time.Duration(p.writing.Load()) // a write in progress, blocked perhaps
		}
	}
	var late []*outChunk
	s.out.Each(func(seq uint64, oc *outChunk) {
		if oc.acked.Load() {
			return
		}
		// A coded chunk still unacknowledged an RTO after its last piece went, while a later
		// chunk has been acknowledged, was not rebuilt: a piece failed the integrity check (a
		// path that lost data would have failed itself). Its pieces go again, each on its slot.
		stale := oc.kids != nil && seq < s.highestAcked
		var last time.Duration
		rto := s.cfg.MinRTO
		oc.eachCarried(func(c *outChunk) {
			if sent := time.Duration(c.sentAt.Load()); sent > 0 {
				last = max(last, sent)
				if p := s.pathAt(c.path); p != nil {
					if stale {
						rto = max(rto, p.rto(s.cfg.MinRTO))
					}
					if p.oldest == 0 || sent < p.oldest {
						p.oldest = sent
					}
				}
			}
		})
		if stale && last > 0 && now-last > rto {
			late = append(late, oc)
		}
	})
	for _, oc := range late {
		n := 0
		for j := range oc.kids {
			kid := &oc.kids[j]
			if from := s.pathAt(kid.path); from != nil && !from.dead.Load() {
				n += s.requeuePiece(kid, from.path)
			}
		}
		if n > 0 {
			s.log.Debug("pieces sent again: chunk not rebuilt", "item", oc.hdr.Item, "chunk", oc.hdr.Chunk, "pieces", n)
		}
	}
}
