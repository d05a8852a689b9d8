package session

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// Inline reading: Receive reads a path itself.
//
// A path's reader goroutine hands each completed message to the goroutine waiting in Receive.
// For request/response traffic that hand-off is most of what a session adds to a round trip:
// readying the waiting goroutine makes the runtime wake a second thread (a futex call and a
// thread that spins for nothing), on each side, for every message. So when a path's reader has
// just completed a one-chunk message that a Receive is waiting for, and has nothing more
// buffered, it yields its role: it parks, and the next Receive that finds no message ready reads
// that path itself. The kernel then wakes the receiving goroutine directly, as it does a plain
// TCP reader. Bulk transfers (messages of several chunks) never take this path.
//
// The read role of a path is held by one goroutine at a time, which alone uses the path's reader
// state (wire.Reader, the reader-owned fields):
//
//	roleReader  the path's reader goroutine (the usual state)
//	roleFree    nobody: the reader goroutine is parked, and takes the role back once it has been
//	            free for reclaimAfter (or the session leaves phaseOpen), so that a path is never
//	            left unread for long
//	roleApp     a Receive call, which gives the role back (roleFree) when it returns, or hands
//	            it to the reader goroutine (roleReader, with resume) when it meets a frame it
//	            will not finish: one whose payload has not all arrived, or a read error
//
// The role moves only by compare-and-swap, and by a send on resume; either orders the holders'
// use of the reader state. A session has one inline path (Session.inlinePath, under
// Session.mu), the one whose reader last yielded: Receive can wait on one connection only, and
// the other paths' readers keep reading theirs. When the messages move to another path, so does
// the inline path, and the one left behind goes back to its reader.
//
// A Receive reading inline must leave when its message is ready elsewhere, its context ends or
// the session changes. Every broadcast (a message completed on another path, the session
// ending) interrupts it, as does ctx: an interrupt is recorded in interrupted and, while the
// holder waits for a frame header, makes that read time out with a read deadline in the past.
// A read that has begun a frame is never interrupted (ReadHeader consumes nothing until the
// whole header is in), so no frame is ever cut.

// Read roles.
const (
	roleReader int32 = iota
	roleFree
	roleApp
)

// aLongTimeAgo is a read deadline that has passed: it interrupts a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// errInterrupted reports that a header read was interrupted (see interrupt); nothing was read.
var errInterrupted = errors.New("read interrupted")

// handback is what a Receive that read inline leaves to the reader goroutine with the role.
type handback struct {
	h   wire.Header // a frame whose header it read and whose rest the reader must read
	has bool        // h is set
	err error       // the read failed: the path ends with this
}

// nextHeader reads the next frame header as the holder of p's read role, clearing the read
// deadline a control frame set. It returns errInterrupted if an interrupt came first, or came
// while it waited; the deadline is cleared again before it returns.
func (p *path) nextHeader() (wire.Header, error) {
	p.intMu.Lock()
	if p.deadline {
		// Liveness is the session monitor's job (PathTimeout); a read deadline only bounds
		// the payload of a control frame once its header has arrived.
		p.conn.SetReadDeadline(noDeadline)
		p.deadline = false
	}
	if p.interrupted {
		p.interrupted = false
		p.intMu.Unlock()
		return wire.Header{}, errInterrupted
	}
	p.idle = true
	p.intMu.Unlock()

	if p.shared.idle.Load() {
		// An idle session's path may wait for its next frame for a long time (IdleKeepAlive):
		// it holds no read buffer meanwhile (Release keeps one holding bytes).
		p.r.Release()
	}
	h, err := p.r.ReadHeader()

	p.intMu.Lock()
	p.idle = false
	if p.interrupted {
		p.conn.SetReadDeadline(noDeadline)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			p.interrupted = false
			err = errInterrupted
		}
		// A header that made it in anyway is read; the interrupt stays pending, for the next
		// call to return at once.
	}
	p.intMu.Unlock()
	return h, err
}

// interrupt makes the holder of p's read role return from nextHeader: at once if it waits for a
// header there, or at its next call.
func (p *path) interrupt() {
	p.intMu.Lock()
	defer p.intMu.Unlock()
	if p.interrupted {
		return
	}
	p.interrupted = true
	if p.idle {
		p.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// park is the reader goroutine's wait after yielding its role (roleFree). It returns when the
// reader holds the role again: handed back by a Receive (with what it left), or taken back when
// it has been free for reclaimAfter (reclaimDue), the session leaves phaseOpen, or the path is
// ending.
func (p *path) park() handback {
	stop := p.stop
	for {
		select {
		case <-p.resume:
		case <-stop:
			stop = nil // from now on the role goes back as soon as it is free
		}
		switch p.role.Load() {
		case roleReader: // a Receive handed it back
			hb := p.handBack
			p.handBack = handback{}
			p.eng.reclaimed(p)
			return hb
		case roleFree:
			if p.reclaim() {
				return handback{}
			}
		}
		// roleApp: a Receive holds it, and hands it back or leaves it free (and kicks resume
		// if the path ends: its read fails).
	}
}

// reclaimAfter is how long a path's read role may stay free before its reader goroutine takes it
// back: the longest a path goes unread while its application is not in Receive (up to twice
// this, as the timer is not pushed back by every release).
const reclaimAfter = 2 * time.Millisecond

// armReclaim starts p's reclaim timer unless it runs. It is armed when the role is left free, and
// not again until it has fired: a message stream re-arms it at most once per reclaimAfter, never per
// message (restarting a runtime timer can wake a thread sleeping in the network poller).
func (p *path) armReclaim() {
	if p.reclaimArmed.CompareAndSwap(false, true) {
		armTimer(&p.reclaimTimer, reclaimAfter, p.reclaimDue)
	}
}

// reclaimDue runs when p's reclaim timer fires: a role free for reclaimAfter goes back to the
// reader goroutine; one freed more recently is looked at again reclaimAfter later; one a Receive holds is
// left alone (its release arms the timer again).
func (p *path) reclaimDue() {
	p.reclaimArmed.Store(false)
	if p.role.Load() != roleFree {
		return
	}
	if p.eng.clock()-time.Duration(p.freedAt.Load()) >= reclaimAfter {
		p.timerReclaims.Add(1)
		kick(p.resume)
		return
	}
	p.armReclaim()
}

// wakeParked wakes p's reader goroutine if its read role is free, so that it takes it back.
func (p *path) wakeParked() {
	if p.role.Load() == roleFree {
		kick(p.resume)
	}
}

// reclaim takes a free read role back for the reader goroutine.
func (p *path) reclaim() bool {
	if !p.role.CompareAndSwap(roleFree, roleReader) {
		return false
	}
	p.eng.reclaimed(p)
	return true
}

// giveBack ends a Receive's hold on p's read role. With nothing to hand over the role is left
// free (the reader goroutine takes it back after reclaimAfter, or at the session's end);
// otherwise the reader goroutine gets it now, with hb.
func (p *path) giveBack(hb handback) {
	p.intMu.Lock()
	// An interrupt meant for this Receive that it did not wait to see must not reach the next
	// holder's read.
	p.interrupted = false
	p.intMu.Unlock()
	if hb.has || hb.err != nil {
		p.handBack = hb
		p.role.Store(roleReader)
		kick(p.resume)
		return
	}
	p.freedAt.Store(int64(p.eng.clock()))
	p.role.Store(roleFree)
	if p.dead.Load() {
		kick(p.resume) // the path is ending: its reader must take the role back to finish
		return
	}
	if p.displaced.Swap(false) {
		// The messages come on another path now (yieldRead): no Receive will read this one, and
		// its next data (a coded message's next piece, say) must not wait for the reclaim timer.
		kick(p.resume)
		return
	}
	p.armReclaim()
}

// readInline reads frames from p as a Receive holding its read role, until a message is ready or
// the session changes (an interrupt), then gives the role up. It reads only frames that are
// wholly buffered once their header is in; anything else goes to the reader goroutine.
func (s *Session) readInline(ctx context.Context, p *path) {
	if ctx.Done() != nil {
		if stop := s.inlineWatch.watch(ctx, p); stop != nil {
			defer stop()
		} else {
			defer s.inlineWatch.unwatch()
		}
	}
	for {
		h, err := p.nextHeader()
		if err == errInterrupted {
			p.giveBack(handback{})
			return
		}
		if err == nil && int(h.Length) > p.r.Buffered() && ctx.Done() != nil {
			// Its payload is on the way, and a wait for it could not be cut short when ctx
			// ends: not ours to wait for. (A Receive whose context cannot end reads whole
			// frames itself, as a bulk reader of a socket does; the path's end, closing the
			// connection, ends such a read.)
			p.giveBack(handback{h: h, has: true})
			return
		}
		if err == nil {
			p.framesInline.Add(1)
			err = p.frame(h)
		}
		if err != nil {
			p.giveBack(handback{err: err})
			return
		}
	}
}

// ctxWatch interrupts a Receive reading inline when its context ends. Registering a
// context.AfterFunc per call would cost two allocations a message, so one registration is kept
// for the context Receive was last called with (a message loop passes the same one each time)
// and reused while that Receive reads; a second Receive reading inline meanwhile (on another
// path) registers its own.
type ctxWatch struct {
	mu   sync.Mutex
	busy bool                 // a Receive is using the registration
	ctx  context.Context      // the context registered
	stop func() bool          // ends the registration
	on   atomic.Pointer[path] // the path the Receive using it reads
}

// watch arranges for p to be interrupted when ctx ends. It returns nil when it used the kept
// registration, which the caller then leaves with unwatch, or else a registration of the
// caller's own to stop.
func (w *ctxWatch) watch(ctx context.Context, p *path) (stop func() bool) {
	w.mu.Lock()
	if w.busy {
		w.mu.Unlock()
		return context.AfterFunc(ctx, p.interrupt)
	}
	w.busy = true
	if w.ctx != ctx {
		if w.stop != nil {
			w.stop()
		}
		w.ctx, w.stop = ctx, context.AfterFunc(ctx, w.fire)
	}
	w.on.Store(p)
	w.mu.Unlock()
	if ctx.Err() != nil { // ended before p was stored, and fire found no path: interrupt here
		p.interrupt()
	}
	return nil
}

// unwatch leaves the kept registration after watch returned nil.
func (w *ctxWatch) unwatch() {
	w.on.Store(nil)
	w.mu.Lock()
	w.busy = false
	w.mu.Unlock()
}

// fire is the kept registration's function: the context ended.
func (w *ctxWatch) fire() {
	if p := w.on.Load(); p != nil {
		p.interrupt()
	}
}

// drop ends the kept registration, so that a context that outlives the session does not keep it
// reachable. A Receive using it meanwhile is interrupted by the session's end anyway.
func (w *ctxWatch) drop() {
	w.mu.Lock()
	if w.stop != nil {
		w.stop()
		w.ctx, w.stop = nil, nil
	}
	w.mu.Unlock()
}

// yieldRead reports whether p's reader goroutine should yield its read role to Receive now: it has
// just completed a one-chunk message that a Receive is waiting for, or that a Receive reading
// another path inline was interrupted for (inlineHint), and it has nothing buffered. On true the
// role is free and p is the session's inline path; the path that was, if any, goes back to its
// reader (at once if free, else when the Receive holding it lets go): the messages now come on p.
func (s *Session) yieldRead(p *path) bool {
	if s.inlineHint.Load() != p {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inlineHint.CompareAndSwap(p, nil) || s.phase != phaseOpen {
		return false
	}
	if !p.role.CompareAndSwap(roleReader, roleFree) {
		return false
	}
	p.freedAt.Store(int64(s.clock()))
	p.armReclaim()
	p.displaced.Store(false)
	if q := s.inlinePath; q != nil && q != p {
		// Set before looking at q's role: a Receive giving q back sets the role first and
		// then looks at displaced, so one of the two wakes q's reader.
		q.displaced.Store(true)
		q.wakeParked()
	}
	s.inlinePath = p
	return true
}

// reclaimed is told that p's reader goroutine has taken its read role back.
func (s *Session) reclaimed(p *path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inlinePath == p {
		s.inlinePath = nil
	}
}

// takeInline returns the path whose free read role the caller, a Receive with nothing to return,
// now holds, or nil. Call with s.mu held.
func (s *Session) takeInline() *path {
	p := s.inlinePath
	// Not in an idle session: its paths' readers doze (doze.go), and a Receive that read a
	// path meanwhile would keep that path's reader goroutine parked for as long as it waits.
	if p == nil || s.idleMode || p.dead.Load() || !p.role.CompareAndSwap(roleFree, roleApp) {
		return nil
	}
	s.inlineOn = p
	return p
}
