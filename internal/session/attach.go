package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// Paths joining and leaving. A server reserves an index for each handshake (reserveIndex) and
// adds the path once the handshake is done (addPath); a client adds each path it dials, and
// re-dials one that is lost (pathDown, redial). A session with no path at all waits
// ResumeGrace for one.

// Re-dial backoff bounds.
const (
	redialFirst = 50 * time.Millisecond
	redialMax   = 2 * time.Second
)

// maxAttachesPerPath bounds, per allowed path, how many paths may attach over a session's life.
const maxAttachesPerPath = 16

// reserveIndex claims the next path index for a server handshake in slot. It refuses while an
// earlier handshake holds the slot (its path has not joined yet), while the slot has a healthy
// path (one heard from within replaceAfter: a newcomer never evicts it), and when the session would have
// more than max paths: one per slot that has a live path or a handshake in progress, the live path
// in slot itself being the one the new path will replace. Dead paths do not count (a re-dialed
// path replaces one). Indexes are not reused, so the total ever attached is capped as well,
// bounding what dead paths (kept for their counters) cost.
func (s *Session) reserveIndex(max, slot int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase != phaseOpen {
		return 0, ErrSessionClosed
	}
	if s.attaching[slot] {
		return 0, fmt.Errorf("%w: an attach in slot %d is in progress", ErrTooManyPaths, slot)
	}
	now := s.clock()
	for _, p := range s.paths {
		if p != nil && p.slot == slot && !p.dead.Load() && now-p.heardAt() < s.replaceAfter() {
			return 0, fmt.Errorf("%w: slot %d has a live path, heard from %v ago", ErrTooManyPaths, slot, (now - p.heardAt()).Round(time.Millisecond))
		}
	}
	n := len(s.attaching) // the handshakes in progress, none of them in slot
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() && p.slot != slot && !s.attaching[p.slot] {
			n++
		}
	}
	if n >= max {
		return 0, fmt.Errorf("%w: the session has %d", ErrTooManyPaths, n)
	}
	if len(s.paths) >= min(max*maxAttachesPerPath, 1<<16) {
		return 0, fmt.Errorf("%w: %d paths attached over the session's life, the most allowed", ErrTooManyPaths, len(s.paths))
	}
	s.paths = append(s.paths, nil)
	s.attaching[slot] = true
	return len(s.paths) - 1, nil
}

// replaceAfter is how long a path must have been silent before an attach in its slot may
// replace it. A live peer writes at least every KeepAlive while the session is busy, so a path
// silent for two of them is one the session itself doubts (a path of an idle session may be
// silent for longer, and be replaced by its own client's re-dial); a client re-dials only a path it has given up on, and retries
// until the server agrees (or the path ends, at PathTimeout).
func (s *Session) replaceAfter() time.Duration { return 2 * s.cfg.KeepAlive }

// unreserve gives back the reservation of slot, whose path never joined; its index stays unused.
func (s *Session) unreserve(slot int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.attaching, slot)
}

// addPath attaches a connection at its index and starts its writer. The caller must then run
// s.readPath(p, ...), on a goroutine of its own or (a server) on the connection's.
func (s *Session) addPath(p *path) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A closing client still takes a re-dialed path until Close finishes its paths: what it
	// sent must be delivered.
	if s.phase > phaseClosing || s.phase == phaseClosing && !s.client {
		return ErrSessionClosed
	}
	for len(s.paths) <= p.index {
		s.paths = append(s.paths, nil)
	}
	if s.paths[p.index] != nil {
		return fmt.Errorf("braid: path %d attached twice", p.index)
	}
	if p.reserved {
		delete(s.attaching, p.slot)
		// A live path in the slot is one the client has given up on. It ends now that its
		// replacement has joined, and not before: an attach refused or failed on the way
		// leaves it alone. Ending it under s.mu keeps one live path per slot at all times.
		for _, q := range s.paths {
			if q != nil && q.slot == p.slot && !q.dead.Load() {
				q.setDownReason(fmt.Errorf("replaced by path %d, re-dialed in slot %d", p.index, p.slot))
				q.kill(0, "")
			}
		}
	}
	// Bytes read so far (the handshake) were heard at upAt, not at the monitor's next tick.
	s.paths[p.index] = &pathEntry{path: p, lastBytes: p.bytesRead()}
	s.wg.Add(2)
	p.onWriterEnd = s.wg.Done
	go p.writeLoop()
	p.probe() // an RTT sample at once, for the scheduler
	s.ctr.pathsUp.Add(1)
	s.log.Info("path up", "path", p.index, "local", p.conn.LocalAddr().String(), "remote", p.conn.RemoteAddr().String(), "key_exchange", p.kex)
	s.downSince = 0
	s.requeueFrom(nil) // chunks orphaned while no path was up
	s.broadcast()
	s.shared.kickShared(s.shared.creditKick) // in case the last ones were lost with a dead path
	return nil
}

// readPath runs the reader of a path addPath has added until the path ends, then calls done (if
// not nil); or until the reader dozes (doze.go), when it returns at once, and done is called by
// the goroutine that later runs the reader to the path's end.
func (s *Session) readPath(p *path, done func()) {
	p.onReaderEnd = func() {
		s.wg.Done()
		if done != nil {
			done()
		}
	}
	p.runReader()
}

// onFrame records that the peer has sent a frame since the handshake.
func (s *Session) onFrame() {
	if s.established.CompareAndSwap(false, true) && s.onEstablished != nil {
		s.onEstablished()
	}
}

// isClosing reports whether this end has begun to close.
func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase >= phaseClosing
}

// livePaths counts paths that are not dead. Call with s.mu held.
func (s *Session) livePaths() int {
	n := 0
	for _, p := range s.paths {
		if p != nil && !p.dead.Load() {
			n++
		}
	}
	return n
}

// onPathEnded is called once a path's reader has stopped, with the reason. A clean end is logged;
// a protocol violation ends the session with its code; a peer's ERROR ends it with the peer's
// error; a transport failure or silence is a lost path, which the session survives.
func (s *Session) onPathEnded(p *path, err error) {
	var se *sessionError
	var re *RemoteError
	s.mu.Lock()
	peerClosed := s.peerClosed
	s.mu.Unlock()
	switch {
	case s.Err() != nil:
		// Already over; this path is just going down with it.
	case errors.Is(err, errPeerClosedPath):
		p.logger().Info("path closed")
	case peerClosed && !errors.As(err, &se) && !errors.As(err, &re):
		// The peer has closed the session: it reads nothing more and will drop its end of
		// every path, perhaps with a reset. Not a path lost, nor one to re-dial.
		p.logger().Info("path closed after the peer's CLOSE", "reason", err)
	case errors.As(err, &se):
		if s.onViolation != nil {
			s.onViolation(se.code)
		}
		s.abort(se.err, se.code)
	case errors.As(err, &re):
		s.abort(re, 0)
	default:
		s.pathDown(p, err)
		return
	}
	// With every path gone after the peer's CLOSE, the session is over: Receive still returns
	// what arrived, then io.EOF.
	s.mu.Lock()
	over := s.phase == phaseOpen && s.peerClosed && s.livePaths() == 0
	s.mu.Unlock()
	if over {
		s.end(fmt.Errorf("%w: the peer closed the session", ErrSessionClosed))
	}
}

// pathDown handles the loss of a path: its chunks go to the others, a client re-dials it, and a
// session left without paths starts its grace period.
func (s *Session) pathDown(p *path, reason error) {
	s.mu.Lock()
	if s.phase == phaseEnded {
		s.mu.Unlock()
		return
	}
	moved := s.requeueFrom(p)
	left := s.livePaths()
	s.ctr.pathsDown.Add(1)
	if left == 0 && !s.client && !s.established.Load() {
		s.mu.Unlock()
		s.abort(fmt.Errorf("%w: its only paths ended before any frame arrived", ErrSessionClosed), 0)
		return
	}
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
	s.shared.kickShared(s.shared.creditKick)
	s.shared.kickShared(s.shared.ackKick)
	s.shared.ackDue.Store(true)
	p.logger().Warn("path down", "reason", reason, "resent_chunks", moved, "paths_left", left)
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
	wait := redialFirst
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		hctx, hcancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		hs, err := s.dialAttach(hctx, spec, slot)
		hcancel()
		if err == nil {
			var idx uint16
			if idx, err = wire.ParseAttachOK(hs.reply.Payload); err != nil {
				err = fmt.Errorf("%w: ATTACH_OK: %w", ErrProtocol, err)
			}
			if err == nil {
				if err = s.startPath(hs, int(idx), slot, spec); err == nil {
					s.ctr.redials.Add(1)
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
		s.ctr.redialFail.Add(1)
		s.log.Debug("re-dial failed", "remote", spec.Remote, "attempt", attempt, "err", err)
		wait = min(2*wait, redialMax)
	}
}
