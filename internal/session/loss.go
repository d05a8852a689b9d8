package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// Loss recovery. TCP's own acknowledgements say nothing once a connection is gone, so the session
// acknowledges chunks itself (CHUNK_ACK) and keeps every chunk until then. A chunk goes out again
// on another path when its path dies, or when it has waited longer than its path's
// retransmission timeout (RTO) — a stalled or blackholed path. The receiver drops the duplicates.
// A client re-dials a dead path; a session with no path at all waits ResumeGrace for one.

// monitorTick is how often a session checks its paths' timers.
const monitorTick = 50 * time.Millisecond

// Re-dial backoff bounds.
const (
	redialFirst = 50 * time.Millisecond
	redialMax   = 2 * time.Second
)

// unref drops one hold on a chunk (a piece's hold is on its chunk); the last returns its buffer
// to the pool.
func (s *Session) unref(oc *outChunk) {
	oc = oc.chunk()
	if oc.refs.Add(-1) == 0 {
		s.putChunk(oc)
	}
}

// applyAck releases the chunks a CHUNK_ACK from path p acknowledges, taking an RTT sample from
// each that was sent once, on p (Karn's rule).
func (s *Session) applyAck(p *path, a *wire.ChunkAck) error {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Cum > s.nextSeqSent || (len(a.Ranges) > 0 && a.Ranges[len(a.Ranges)-1].To > s.nextSeqSent) {
		return violation(wire.CodeProtocol, fmt.Errorf("%w: CHUNK_ACK beyond seq %d, the last sent", ErrProtocol, s.nextSeqSent))
	}
	var sample time.Duration
	if a.Cum > 0 {
		s.highestAcked = max(s.highestAcked, a.Cum-1)
	}
	if len(a.Ranges) > 0 {
		s.highestAcked = max(s.highestAcked, a.Ranges[len(a.Ranges)-1].To-1)
	}
	s.out.Apply(a, func(_ uint64, oc *outChunk) {
		oc.acked.Store(true)
		oc.eachCarried(func(c *outChunk) {
			delivered(c, int64(len(c.payload)))
			if q := s.pathAt(c.path); q != nil {
				q.ackProgress = now // its retransmission timer restarts (RFC 6298, 5.3)
			}
			if sent := c.sentAt.Load(); !c.resent && c.path == p.index && sent > 0 {
				sample = max(sample, now-time.Duration(sent))
			}
		})
		s.unref(oc)
	})
	if sample > 0 {
		p.sampleRTT(sample)
		p.rtoBackoff.Store(0)
	}
	if s.out.Len() == 0 || s.closing {
		s.broadcast() // Close waits for everything to be acknowledged, and watches progress
	}
	return nil
}

// clock returns the session's monotonic time, the origin of chunk send times.
func (s *Session) clock() time.Duration { return time.Since(s.epoch) }

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
		cur := s.pathAt(oc.path)
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
		return cur == from
	}
	return cur == nil || !cur.usable()
}

func (s *Session) pathAt(i int) *path {
	if i < 0 || i >= len(s.paths) {
		return nil
	}
	return s.paths[i]
}

// leastQueued returns the usable path other than not with the fewest bytes waiting. Call with
// s.mu held.
func (s *Session) leastQueued(not *path) *path {
	var best *path
	for _, p := range s.paths {
		if p == nil || p == not || !p.usable() {
			continue
		}
		if best == nil || p.queued.Load() < best.queued.Load() {
			best = p
		}
	}
	return best
}

// livePaths counts paths that are neither dead nor finishing. Call with s.mu held.
func (s *Session) livePaths() int {
	n := 0
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() {
			n++
		}
	}
	return n
}

// pathDown handles the loss of a path: its chunks go to the others, a client re-dials it, and a
// session left without paths starts its grace period.
func (s *Session) pathDown(p *path, reason error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	moved := s.requeueFrom(p)
	left := s.livePaths()
	if left == 0 && s.downSince == 0 {
		s.downSince = s.clock()
	}
	// A closing client re-dials too: what it sent must still be delivered.
	redial := s.client
	if redial {
		s.wg.Add(1)
	}
	s.broadcast()
	s.mu.Unlock()
	// CREDIT and CHUNK_ACK are cumulative, so sending them again is harmless; the last ones may
	// have gone out on this path and been lost with it, and a lost CREDIT would leave the peer
	// waiting for window that is already free.
	kick(s.creditKick)
	kick(s.ackKick)
	s.ackDue.Store(true)
	p.log.Warn("path down", "reason", reason, "resent_chunks", moved, "paths_left", left)
	if redial {
		go s.redial(p.spec, p.slot)
	}
}

// redial attaches a new path to the session in place of a lost one, in its slot, with
// exponential backoff, until it succeeds, the session ends, or Close has finished its paths (a
// new one would not be).
func (s *Session) redial(spec PathSpec, slot int) {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-s.finished:
			cancel()
		case <-ctx.Done():
		}
	}()
	attach := wire.AppendSessionAttach(nil, wire.SessionAttach{ID: s.id, Token: s.token, Slot: uint16(slot)})
	wait := redialFirst
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		hctx, hcancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		hs, err := dialHandshake(hctx, spec, s.cfg, wire.TypeSessionAttach, attach)
		hcancel()
		if err == nil {
			var idx uint16
			if idx, err = wire.ParseAttachOK(hs.reply.Payload); err == nil {
				if err = s.startPath(hs, int(idx), slot, spec); err == nil {
					s.log.Info("path re-dialed", "path", idx, "remote", spec.Remote, "attempt", attempt)
					return
				}
			} else {
				hs.conn.Close()
			}
		}
		if errors.Is(err, ErrUnknownSession) || errors.Is(err, ErrBadToken) {
			// The server has forgotten the session (its grace period ran out).
			s.abort(fmt.Errorf("%w: re-dial refused: %w", ErrPathLost, err), 0)
			return
		}
		if errors.Is(err, ErrSessionClosed) {
			return
		}
		s.log.Debug("re-dial failed", "remote", spec.Remote, "attempt", attempt, "err", err)
		wait = min(2*wait, redialMax)
	}
}

// monitor runs the session's timers: retransmission timeouts, path liveness and the grace
// period. It ends with the session.
func (s *Session) monitor() {
	defer close(s.monitorDone)
	t := time.NewTicker(monitorTick)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.checkTimers()
		}
	}
}

func (s *Session) checkTimers() {
	now := s.clock()
	var silent []*path
	resendCtl := false
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	// The oldest unacknowledged send on each path.
	for _, p := range s.paths {
		if p != nil {
			p.oldest = 0
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
				n += s.requeuePiece(kid, from)
			}
		}
		if n > 0 {
			s.log.Debug("pieces sent again: chunk not rebuilt", "item", oc.hdr.Item, "chunk", oc.hdr.Chunk, "pieces", n)
		}
	}
	for _, p := range s.paths {
		if p == nil || p.dead.Load() {
			continue
		}
		// Any bytes arriving, even mid-frame, show the path alive (but only a completed round
		// trip ends a stall: see the PONG handling).
		if n := p.r.BytesRead(); n != p.lastBytes {
			p.lastBytes = n
			p.lastRecv.Store(int64(now))
			s.lastHeard.Store(int64(now))
		}
		p.sampleRate(now)
		if now-time.Duration(p.lastRecv.Load()) > s.cfg.PathTimeout {
			silent = append(silent, p)
			continue
		}
		// A path that falls silent may have taken the last CREDIT or CHUNK_ACK with it: send
		// them again, on the others (a suspect path's writer does not take them).
		sus := p.suspect()
		if sus != p.wasSuspect {
			p.wasSuspect = sus
			if sus {
				resendCtl = true
			}
		}
		if !sus && p.disarmed.Load() {
			// Its writer is waiting without listening for the session's ACK and CREDIT kicks,
			// which the other paths may have stopped taking meanwhile.
			kick(p.rearm)
		}
		// A path stalls when none of its chunks has been acknowledged for an RTO: queueing
		// delay makes old chunks, but a path still delivering keeps making acknowledgements.
		if p.oldest > 0 && now-max(p.oldest, p.ackProgress) > p.rto(s.cfg.MinRTO) {
			if !p.stalled.Swap(true) {
				p.stalledAt.Store(int64(now))
			}
			p.rtoBackoff.Add(1)
			if moved := s.requeueFrom(p); moved > 0 {
				p.log.Debug("retransmission timeout", "rto", p.rto(s.cfg.MinRTO), "resent_chunks", moved)
			}
		}
	}
	// Chunks orphaned while no path was usable (all stalled, say) go to one that is now.
	if s.leastQueued(nil) != nil {
		s.requeueFrom(nil)
	}
	// A stalled path is probed at once and then every RTO until a round trip completes: a
	// keepalive would wait for an idle path, which one busy carrying the peer's ACKs never is.
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() && p.stalled.Load() && now-p.lastProbe > p.rto(s.cfg.MinRTO) {
			p.lastProbe = now
			p.probe()
		}
	}
	expired := s.downSince > 0 && now-s.downSince > s.cfg.ResumeGrace
	s.mu.Unlock()

	if resendCtl {
		s.ackDue.Store(true)
		kick(s.creditKick)
		kick(s.ackKick)
	}
	for _, p := range silent {
		p.setDownReason(fmt.Errorf("nothing received for %v", s.cfg.PathTimeout))
		p.kill(0, "")
	}
	if expired {
		s.abort(fmt.Errorf("%w: no path for longer than the %v grace period", ErrPathLost, s.cfg.ResumeGrace), 0)
	}
}
