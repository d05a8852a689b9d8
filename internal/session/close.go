package session

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// The end of a session. Close moves it open → closing → finishing → ended; abort, a lost grace
// period or a peer's violation move it straight to ended. enter is the only place the phase
// changes.

// enter moves the session to phase to, closing the channel that announces it. It reports false,
// changing nothing, if the session is there or beyond already. Call with s.mu held.
func (s *Session) enter(to phase, err error) bool {
	if s.phase >= to {
		return false
	}
	s.phase = to
	for _, p := range s.paths {
		if p != nil {
			p.wakeParked() // a parked reader takes its path back: the end must be read
		}
	}
	switch to {
	case phaseFinishing:
		close(s.finished)
	case phaseEnded:
		s.err = err
		close(s.done)
		s.runMonitorNow() // its last run closes monitorDone
		s.inlineWatch.drop()
	}
	s.broadcast()
	return true
}

// Close ends the session gracefully: messages already sent are delivered before the peer's
// Receive returns io.EOF. It waits for the peer to acknowledge every chunk and then to close its
// side of every path; if Config.Linger passes with no progress, it aborts instead. Then it
// releases every path. Receive and Send return ErrSessionClosed afterwards.
//
// Close returns nil only if the peer acknowledged every chunk sent; otherwise (the linger
// expired, the session was lost or aborted, or the peer closed first) an error matching
// ErrUndelivered. Every call returns the same.
func (s *Session) Close() error {
	s.mu.Lock()
	if !s.enter(phaseClosing, nil) {
		s.mu.Unlock()
		s.waitGoroutines()
		return s.delivery()
	}
	s.mu.Unlock()

	// Wait for a Send in progress to finish queueing its chunks, and for the peer to
	// acknowledge every chunk, then tell every path to send CLOSE and half-close.
	// Linger bounds the time without progress, not the whole wait: a slow path may need long to
	// deliver a full window, and each acknowledgement shows it is still doing so.
	linger := time.NewTimer(s.cfg.Linger)
	defer linger.Stop()
	s.sendMu.Lock()
	s.mu.Lock()
	for left := s.out.Len(); left > 0 && s.phase != phaseEnded; {
		ch := s.changedChan()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-linger.C:
			s.sendMu.Unlock()
			s.log.Warn("linger expired with chunks unacknowledged; aborting", "linger", s.cfg.Linger)
			s.abort(fmt.Errorf("%w: linger expired", ErrSessionClosed), wire.CodeSessionClosed)
			s.waitGoroutines()
			return s.delivery()
		}
		s.mu.Lock()
		if now := s.out.Len(); now < left {
			left = now
			linger.Reset(s.cfg.Linger)
		}
	}
	count := s.nextItem
	paths := slices.Clone(s.paths)
	s.enter(phaseFinishing, nil) // a path attached from now on would not be finished
	s.mu.Unlock()
	s.sendMu.Unlock()
	for _, p := range paths {
		if p != nil {
			p.finish(count)
		}
	}
	ended := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(ended)
	}()
	linger.Reset(s.cfg.Linger)
	select {
	case <-ended:
	case <-linger.C:
		s.log.Warn("linger expired; closing paths", "linger", s.cfg.Linger)
		s.abort(fmt.Errorf("%w: linger expired", ErrSessionClosed), wire.CodeSessionClosed)
		<-ended
	}
	s.end(ErrSessionClosed)
	s.waitGoroutines()
	return s.delivery()
}

// waitGoroutines waits for every goroutine of the session to stop, then lets go of the chunks
// left unacknowledged.
func (s *Session) waitGoroutines() {
	s.wg.Wait()
	<-s.monitorDone
	s.dropOutstanding()
}

// abort ends the session at once because of err, telling the peer with an ERROR frame of code
// on every path.
func (s *Session) abort(err error, code wire.Code) { s.abortLogged(err, code, slog.LevelWarn) }

// abortLogged is abort, logging at level.
func (s *Session) abortLogged(err error, code wire.Code, level slog.Level) {
	s.mu.Lock()
	if !s.enter(phaseEnded, err) {
		s.mu.Unlock()
		return
	}
	paths := slices.Clone(s.paths)
	s.mu.Unlock()
	s.log.Log(context.Background(), level, "session aborted", "reason", err, "code", code.String())
	for _, p := range paths {
		if p != nil {
			p.kill(code, err.Error())
		}
	}
	s.ended()
}

// end records the normal end of the session.
func (s *Session) end(err error) {
	s.mu.Lock()
	s.enter(phaseEnded, err)
	s.mu.Unlock()
	s.ended()
}

// ended runs the session's onEnd, once.
func (s *Session) ended() {
	if s.onEnd != nil {
		s.endOnce.Do(s.onEnd)
	}
}

// Abort ends the session at once without delivering what is queued; the peer sees
// ErrSessionClosed from Receive and Send rather than io.EOF.
func (s *Session) Abort() {
	// The application's own decision: not a warning.
	s.abortLogged(fmt.Errorf("%w: aborted", ErrSessionClosed), wire.CodeSessionClosed, slog.LevelInfo)
	s.waitGoroutines()
}

// Done returns a channel closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it is open.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
