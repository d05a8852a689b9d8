package session

import (
	"slices"
	"sync/atomic"
)

// AfterReady arranges for f to run, on a goroutine of its own, once a Receive would return at
// once: a message is complete, the peer has closed, or the session is closing or has ended. If
// that is so already, f starts now. It runs once; a caller that wants to hear of the next message
// calls AfterReady again after its Receive.
//
// It lets a server wait for many mostly idle sessions without a goroutine parked in Receive for
// each (a goroutine's stack is most of what an idle session would cost it otherwise). Calling
// the returned stop before f has started keeps f from running and reports true; afterwards, or a
// second time, it reports false, as the stop of context.AfterFunc does.
func (s *Session) AfterReady(f func()) (stop func() bool) {
	r := &readyFunc{f: f}
	s.mu.Lock()
	if s.receivable() {
		s.mu.Unlock()
		r.run()
		return r.stop
	}
	s.readyFuncs = append(s.readyFuncs, r)
	if p := s.inlinePath; p != nil && s.recvWaiting == 0 {
		// A path's reader yielded its read role to a Receive that has returned, and nobody
		// waits in Receive to take it: the reader reads on now, rather than at its reclaim
		// timer, so that the message this caller waits for is not held up.
		p.wakeParked()
	}
	s.mu.Unlock()
	return func() bool {
		if !r.stop() {
			return false
		}
		s.mu.Lock()
		if i := slices.Index(s.readyFuncs, r); i >= 0 {
			s.readyFuncs = slices.Delete(s.readyFuncs, i, i+1)
		}
		s.mu.Unlock()
		return true
	}
}

// readyFunc is one AfterReady: its function, and whether it has started or been stopped.
type readyFunc struct {
	f    func()
	done atomic.Bool
}

// run starts r's function unless it has started or been stopped.
func (r *readyFunc) run() {
	if r.done.CompareAndSwap(false, true) {
		go r.f()
	}
}

// stop keeps r's function from starting; it reports whether it did.
func (r *readyFunc) stop() bool { return r.done.CompareAndSwap(false, true) }

// receivable reports whether a Receive would return without waiting. Call with s.mu held.
func (s *Session) receivable() bool {
	return s.reasm.Ready() || s.peerClosed && s.reasm.Next() >= s.peerItems || s.phase >= phaseClosing
}

// runReady starts the functions AfterReady left waiting, if a Receive would now return. Call
// with s.mu held (broadcast does).
func (s *Session) runReady() {
	if len(s.readyFuncs) == 0 || !s.receivable() {
		return
	}
	for _, r := range s.readyFuncs {
		r.run()
	}
	clear(s.readyFuncs)
	s.readyFuncs = s.readyFuncs[:0]
}
