package session

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A path's writer goroutine runs only while the path may have something to write soon. The
// writer of an idle session's path (keepAliveInterval is IdleKeepAlive: the session idle,
// nothing queued or in flight, not stalled) parks: its goroutine returns, leaving a timer for
// the path's next keepalive, and whatever gives it work starts a new one (wakeWriter, or
// kickShared for the session's shared ACK and CREDIT kicks). An idle server then holds, per
// path, its reader's goroutine and none for the writer: at thousands of idle sessions the
// writers' stacks were about a sixth of the server's memory. A parked path still answers PINGs
// (pongNow, on the reader's goroutine) and takes small chunks written by the sender itself
// (writeNow).
//
// No wake-up is lost: the writer says it may park (mayPark, and the session's count) before it
// looks, under parkSet.mu, at every queue and kick it listens to; a waker puts its work in a
// queue or kick first and looks at mayPark (or the count) after, and takes the lock when it is
// set. Either the writer's look sees the work, or the waker sees the writer parking and, under
// the lock, finds it parked and starts it again.

// parkSet is the session's parked writers.
type parkSet struct {
	mu     sync.Mutex
	paths  []*path      // under mu: the parked writers' paths
	intent atomic.Int32 // writers parked or about to look whether to: kickShared's fast test
}

// parkWriter parks the writer unless something waits for it, and reports whether it did: the
// caller (the writer goroutine) must then return at once. interval is the keepalive interval the
// writer runs with and due the session clock time its keepalive falls due, restored when it
// runs again. recheck reports that it did not park only because one of the session's shared
// kicks was pending, which another path's writer, woken with it, may take first: the caller
// should then look again soon (parkRecheck) rather than wait for its keepalive.
func (p *path) parkWriter(interval, due time.Duration) (parked, recheck bool) {
	if due <= p.eng.clock() {
		return false, false // its keepalive is due
	}
	ps := &p.shared.park
	p.mayPark.Store(true)
	ps.intent.Add(1)
	ps.mu.Lock()
	if own, shared := p.writerWanted(); own || shared {
		p.mayPark.Store(false)
		ps.intent.Add(-1)
		ps.mu.Unlock()
		return false, !own
	}
	p.parked = true
	p.parkInterval, p.parkDue = interval, due
	ps.paths = append(ps.paths, p)
	p.parkTimer = time.AfterFunc(max(0, due-p.eng.clock()), p.wakeWriterNow)
	ps.mu.Unlock()
	if h := p.hooks; h != nil && h.writerParked != nil {
		h.writerParked(p)
	}
	return true, false
}

// parkRecheck is how soon a writer that did not park because of a shared kick looks again.
const parkRecheck = 10 * time.Millisecond

// writerWanted reports whether anything the writer listens to is ready: its own work, or the
// session's shared kicks. Call with the session's park lock held.
func (p *path) writerWanted() (own, shared bool) {
	own = len(p.data) > 0 || len(p.ctrl) > 0 || len(p.fin) > 0 || len(p.rtxKick) > 0 ||
		len(p.capKick) > 0 || len(p.rearm) > 0 || isClosed(p.stop) || p.rtxWaiting()
	return own, len(p.shared.ackKick) > 0 || len(p.shared.creditKick) > 0
}

// wakeWriter starts the path's writer again if it is parked. Whoever gives the writer work calls
// it after queueing the work.
func (p *path) wakeWriter() {
	if p.mayPark.Load() {
		p.wakeWriterNow()
	}
}

// wakeWriterNow starts the writer again if it is parked (its keepalive timer calls it).
func (p *path) wakeWriterNow() {
	ps := &p.shared.park
	ps.mu.Lock()
	woken := p.unparkLocked()
	ps.mu.Unlock()
	if woken {
		go p.writeLoop()
	}
}

// unparkLocked takes the path's writer out of the parked set, reporting whether it was parked:
// the caller then starts it (writeLoop). Call with the session's park lock held.
func (p *path) unparkLocked() bool {
	ps := &p.shared.park
	if !p.parked {
		return false
	}
	p.parked = false
	p.mayPark.Store(false)
	ps.intent.Add(-1)
	if i := slices.Index(ps.paths, p); i >= 0 {
		ps.paths = slices.Delete(ps.paths, i, i+1)
	}
	p.parkTimer.Stop()
	p.parkTimer = nil
	p.resumed = true
	return true
}

// kickShared kicks one of the session's shared kicks (ackKick, creditKick), which any path's
// writer may take, and starts every parked writer again: the kick needs one of them.
func (w *sharedWork) kickShared(c chan struct{}) {
	kick(c)
	if w.park.intent.Load() == 0 {
		return
	}
	w.park.mu.Lock()
	woken := w.park.paths
	w.park.paths = nil
	for _, p := range woken {
		p.unparkLocked()
	}
	w.park.mu.Unlock()
	for _, p := range woken {
		go p.writeLoop()
	}
}

// kickWriter kicks one of the path's own kicks and starts its writer again if it is parked.
func (p *path) kickWriter(c chan struct{}) {
	kick(c)
	p.wakeWriter()
}
