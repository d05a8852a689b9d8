package session

import (
	"context"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// The send side. Send is the sole owner of item ids and sequence numbers (under sendMu, then mu)
// and adds each chunk to the outstanding set before any path may carry it; routing then hands it
// to a path's queue. What happens to it afterwards — acknowledged, abandoned, sent again — is
// loss.go's.

// outChunk is one chunk of the session's send side. It is held by the session's outstanding set
// until acknowledged, and by each path queue it is placed on until written; the last holder to let
// go returns it to the pool.
//
// In a coded mode the session's record is the chunk, and what paths carry are its pieces (kids):
// each piece holds its own bytes and send state but shares the chunk's acknowledgement and hold
// count.
type outChunk struct {
	hdr     wire.ChunkHeader
	payload []byte // the chunk's bytes; for a piece, the piece's
	buf     []byte

	parent *outChunk  // a piece's chunk; nil for a chunk
	piece  int        // a piece's number, which is also the slot of the only path that may carry it
	kids   []outChunk // a coded chunk's pieces

	refs  atomic.Int32 // holds on a chunk (a piece's are its parent's)
	lease *lease       // SendNoCopy: the caller's message payload points into; nil if copied
	// inflightOn is the path whose bytes-in-flight count includes this chunk (or piece): the
	// last that wrote it, until it is acknowledged.
	inflightOn atomic.Pointer[path]
	// movedFrom is the path a chunk was last taken from to be sent again on another (requeueFrom):
	// if that path's queue still holds it, unwritten, its writer lets it go rather than send it
	// too when it comes back (a path cut for a second would otherwise send, on its return, every
	// chunk the others had already taken over). nil if it never moved.
	movedFrom atomic.Pointer[path]
	acked     atomic.Bool
	sentAt    atomic.Int64 // session clock when last written; 0 until then
	path      int          // index of the path it was last given to, -1 for none, or pathRouting (under s.mu)
	resent    bool         // given to more than one path (under s.mu)
}

// pathRouting marks a chunk that Send is still placing on its first path.
const pathRouting = -2

// chunk returns the chunk record oc belongs to: itself, or a piece's parent.
func (oc *outChunk) chunk() *outChunk {
	if oc.parent != nil {
		return oc.parent
	}
	return oc
}

// eachCarried calls fn for what the paths carry of the chunk oc: its pieces, or the chunk itself.
func (oc *outChunk) eachCarried(fn func(c *outChunk)) {
	if oc.kids == nil {
		fn(oc)
		return
	}
	for j := range oc.kids {
		fn(&oc.kids[j])
	}
}

// isAcked reports whether the chunk oc is, or is a piece of, has been acknowledged.
func (oc *outChunk) isAcked() bool { return oc.chunk().acked.Load() }

// reset readies a chunk or piece record for a new send.
func (oc *outChunk) reset() {
	oc.acked.Store(false)
	oc.sentAt.Store(0)
	oc.inflightOn.Store(nil)
	oc.movedFrom.Store(nil)
	oc.resent, oc.path = false, pathRouting
}

// newOutChunk makes a chunk record for the pool: in a coded mode with a buffer for the chunk and
// one for each of its pieces. A plain record gets its buffer when Send first copies into it
// (SendNoCopy's records point into the caller's message and need none).
func (s *Session) newOutChunk() *outChunk {
	var oc *outChunk
	if s.codec == nil {
		oc = &outChunk{}
	} else {
		oc = &outChunk{buf: make([]byte, s.codec.BufferSize(s.chunkSize)), kids: make([]outChunk, s.mode.N)}
		for j := range oc.kids {
			oc.kids[j] = outChunk{parent: oc, piece: j, buf: make([]byte, s.codec.PieceSize(s.chunkSize))}
		}
	}
	if h := s.hooks; h != nil && h.newChunk != nil {
		h.newChunk(s, oc)
	}
	return oc
}

// copyBufSize is the size of the buffer a chunk record gets for Send to copy n (> 0) payload bytes
// into: n rounded up to a power of two, at least minCopyBuf, at most chunkSize. The records are
// pooled with their buffers, so a session that sends large messages soon has chunk-size ones;
// one that sends only small messages (a tunnel's HELLO, a request) does not allocate, and zero,
// a chunk's worth for each record.
func copyBufSize(n, chunkSize int) int {
	return min(max(1<<bits.Len(uint(n-1)), minCopyBuf), chunkSize)
}

// minCopyBuf is the smallest buffer a chunk record gets (copyBufSize).
const minCopyBuf = 512

// lease is a caller's message that chunks point into (SendNoCopy): done runs once the last chunk
// lets go of it.
type lease struct {
	refs atomic.Int32
	done func()
	s    *Session
}

// release drops a hold on the message. The last one does not call done there and then: holds
// are let go of under the session's locks, and done is the caller's code, which may call back
// into the session. It is queued, and run by runCompletions once those locks are released.
func (l *lease) release() {
	if l.refs.Add(-1) == 0 && l.done != nil {
		l.s.compMu.Lock()
		l.s.completions = append(l.s.completions, l.done)
		l.s.compMu.Unlock()
		l.s.compPending.Store(true)
	}
}

// runCompletions runs the queued done functions of SendNoCopy messages let go of. Every place
// that may let go of a chunk calls it once it holds no session lock; the monitor does too, so
// none waits longer than a tick.
func (s *Session) runCompletions() {
	if !s.compPending.Load() {
		return
	}
	s.compMu.Lock()
	done := s.completions
	s.completions, s.compSpare = s.compSpare[:0], nil
	s.compPending.Store(false)
	s.compMu.Unlock()
	for _, f := range done {
		f()
	}
	// Keep the slice for the next queue, so that queueing a done function allocates nothing.
	clear(done)
	s.compMu.Lock()
	if s.compSpare == nil {
		s.compSpare = done[:0]
	}
	s.compMu.Unlock()
}

// Send sends msg as one item. It blocks while the peer's receive window is full, until ctx ends
// or the session does. ctx governs only that wait: once the first chunk is queued the whole
// message is committed to the session. Send does not retain msg after it returns.
func (s *Session) Send(ctx context.Context, msg []byte) error {
	defer s.runCompletions() // earlier SendNoCopy messages it may have let go of
	return s.send(ctx, msg, nil)
}

// SendNoCopy is Send without the copy Send makes of msg: the session reads msg itself until the
// peer has acknowledged every chunk of it (or the session has let go of them: the peer closed,
// or the session ended), then calls done, if not nil, once, on one of its goroutines or before
// SendNoCopy returns, holding none of the session's locks (done may call the session's methods,
// but should not block: it may run on a path's reader or writer). The caller must not modify
// msg until done has run. In a coded mode msg is encoded at once, and done runs before
// SendNoCopy returns.
func (s *Session) SendNoCopy(ctx context.Context, msg []byte, done func()) error {
	l := &lease{done: done, s: s}
	l.refs.Store(1) // SendNoCopy's own, until it returns
	defer s.runCompletions()
	defer l.release()
	return s.send(ctx, msg, l)
}

func (s *Session) send(ctx context.Context, msg []byte, l *lease) error {
	if s.codec != nil {
		l = nil // encoded into the chunk's pieces: msg is not read afterwards
	}
	if len(msg) > s.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, maximum %d", ErrMessageTooLarge, len(msg), s.cfg.MaxMessageSize)
	}
	total := reasm.Chunks(len(msg), s.chunkSize)
	charge := reasm.Charge(total, s.unit)
	s.sendMu.Lock()
	defer s.sendMu.Unlock()

	item, err := s.acquire(ctx, charge)
	if err != nil {
		return err
	}
	for c := range total {
		lo := int(c) * s.chunkSize
		hi := min(lo+s.chunkSize, len(msg))
		oc := s.chunkPool.Get().(*outChunk)
		if l != nil {
			l.refs.Add(1)
			oc.payload, oc.lease = msg[lo:hi], l
		} else {
			if cap(oc.buf) < hi-lo {
				oc.buf = make([]byte, copyBufSize(hi-lo, s.chunkSize))
			}
			oc.payload = oc.buf[:copy(oc.buf, msg[lo:hi])]
		}
		oc.hdr = wire.ChunkHeader{Item: item, Chunk: c, Total: total}
		oc.reset()
		if err := s.encode(oc); err != nil {
			oc.refs.Store(1)
			s.release(oc)
			s.abort(fmt.Errorf("braid: encoding a chunk: %w", err), wire.CodeInternal)
			return err
		}
		// Two holds: the outstanding set's, and Send's own until route has queued the chunk
		// (which passes it on to the queue), so that an ACK or CLOSE racing this Send cannot
		// free the chunk in between.
		oc.refs.Store(2)
		s.mu.Lock()
		if s.phase == phaseEnded { // the outstanding set may have been let go of already
			err := s.err
			s.mu.Unlock()
			oc.refs.Store(1)
			s.release(oc)
			return err
		}
		oc.hdr.Seq = s.nextSeqSent
		for j := range oc.kids {
			oc.kids[j].hdr = oc.hdr
		}
		s.nextSeqSent++
		s.out.Add(oc.hdr.Seq, oc)
		s.mu.Unlock()
		s.wakeMonitor() // its RTO runs from now
		var err error
		if s.mode.Coded() {
			err = s.routeCoded(oc)
		} else {
			err = s.route(oc)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// encode makes a coded chunk's pieces (a no-op in the other modes). Call with sendMu held.
func (s *Session) encode(oc *outChunk) error {
	if s.codec == nil {
		return nil
	}
	n := s.codec.PieceSize(len(oc.payload))
	s.pieceBufs = s.pieceBufs[:0]
	for j := range oc.kids {
		kid := &oc.kids[j]
		kid.payload = kid.buf[:n]
		kid.reset()
		s.pieceBufs = append(s.pieceBufs, kid.payload)
	}
	return s.codec.Encode(oc.hdr, oc.buf, len(oc.payload), s.pieceBufs)
}

// acquire waits until charge fits in the peer's window, then takes it and the next item id.
func (s *Session) acquire(ctx context.Context, charge int64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sendFlow.Check(charge); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMessageTooLarge, err)
	}
	for {
		switch {
		case s.phase == phaseEnded:
			return 0, s.err
		case s.phase >= phaseClosing:
			return 0, ErrSessionClosed
		case s.peerClosed:
			return 0, fmt.Errorf("%w: the peer closed the session", ErrSessionClosed)
		}
		if s.sendFlow.TryTake(charge) {
			item := s.nextItem
			s.nextItem++
			return item, nil
		}
		if err := s.wait(ctx); err != nil {
			return 0, err
		}
	}
}

// awaitRoute waits until ready reports that oc can be placed, and returns with s.mu held. ready
// runs with s.mu held. While no path is ready the sender waits for the session to change or a
// monitor tick to pass (a stalled path may have recovered); once Close has begun it gives up as
// giveUpClosing says. On an error s.mu is released and Send's hold on oc has been let go of.
func (s *Session) awaitRoute(oc *outChunk, since *time.Time, ready func() bool) error {
	for {
		s.mu.Lock()
		if s.phase == phaseEnded {
			err := s.err
			s.mu.Unlock()
			s.release(oc)
			return err
		}
		if ready() {
			return nil
		}
		if s.phase >= phaseClosing {
			if err := s.giveUpClosing(oc, since); err != nil {
				s.mu.Unlock()
				return err
			}
		}
		ch := s.changedChan()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(monitorTick):
		}
	}
}

// giveUpClosing decides, for a chunk that no path can take while Close has begun, whether Send
// fails now: at once for a message's first chunk (taken back, so nothing of the message was
// sent, and messages already sent are still delivered); for a later chunk only once it has
// waited Linger (a path may come back; Close aborts after its own Linger if none does), leaving
// the chunk for the path that comes next. Call with s.mu held.
func (s *Session) giveUpClosing(oc *outChunk, since *time.Time) error {
	if oc.hdr.Chunk == 0 {
		s.unsend(oc)
		return fmt.Errorf("%w: no usable path while closing", ErrSessionClosed)
	}
	if since.IsZero() {
		*since = time.Now()
	}
	if time.Since(*since) < s.cfg.Linger {
		return nil
	}
	oc.path = -1
	for j := range oc.kids {
		oc.kids[j].path = -1
	}
	s.release(oc) // Send's hold; the outstanding set keeps it
	return fmt.Errorf("%w: no usable path while closing", ErrSessionClosed)
}

// unsend takes back the first chunk of a message that Send could not place (the session is
// closing with no usable path): its seq, its item id and its charge, so that nothing of the
// message was sent. Call with s.mu and sendMu held, right after the chunk was added.
func (s *Session) unsend(oc *outChunk) {
	if s.out.Remove(oc.hdr.Seq) {
		s.release(oc) // the outstanding set's hold
	}
	s.nextSeqSent--
	s.nextItem--
	s.sendFlow.Return(reasm.Charge(oc.hdr.Total, s.unit))
	s.broadcast()
	s.release(oc) // Send's
}

// route hands a chunk to the path the scheduler picks, waiting while that path's queue is full,
// or while the session has no usable path (a client is re-dialing; the grace period bounds it).
// With copies (redundant mode, or a scheduler that asks for them), every other usable path whose
// queue has room gets a copy too: the first to arrive is used.
//
// If the chosen path ends or stalls while route waits for room on it, the chunk may already be on
// its way: a copy went to another path, or the path's loss moved the chunk to another path's
// retransmission queue (requeueFrom). Route stops there; picking again would queue the chunk a
// second time, on a path that may already carry it.
func (s *Session) route(oc *outChunk) error {
	var waitingSince time.Time
	var copied []*path // the paths that took a copy
	pick := -1
	ready := func() bool {
		s.view = s.view[:0]
		for _, p := range s.paths {
			if p != nil {
				s.view = append(s.view, p.schedView())
			}
		}
		pick = s.scheduler.Pick(s.view, len(oc.payload))
		return pick >= 0
	}
	for {
		if err := s.awaitRoute(oc, &waitingSince, ready); err != nil {
			return err
		}
		p := s.paths[s.view[pick].Index].path
		oc.path = p.index
		oc.movedFrom.Store(nil) // placed afresh (after requeueFrom orphaned it, perhaps from p)
		var others []*path
		lossCopy := false
		if s.copies {
			for _, q := range s.paths {
				if q != nil && q.path != p && q.usable() {
					others = append(others, q.path)
				}
			}
		} else if j := sched.LossCopy(s.view, pick, len(oc.payload)); j >= 0 && len(copied) == 0 {
			others, lossCopy = append(others, s.paths[s.view[j].Index].path), true
		}
		s.mu.Unlock()
		for _, q := range others {
			oc.refs.Add(1)
			if q.tryEnqueue(oc) {
				copied = append(copied, q)
				if lossCopy {
					q.lossCopies.Add(1)
				}
			} else {
				s.release(oc)
			}
		}
		if p.enqueue(oc) { // Send's hold is now the path queue's
			return nil
		}
		// The path ended or stalled under us. requeueFrom may have moved the chunk meanwhile,
		// to another path or, finding none, to none (-1).
		s.mu.Lock()
		unplaced := oc.path == p.index || oc.path == -1
		if unplaced && len(copied) > 0 {
			oc.path, unplaced = copied[0].index, false // the copy carries it (and is resent if that path fails)
		}
		if !unplaced {
			s.mu.Unlock()
			s.release(oc) // Send's hold; the queues that have the chunk hold it
			return nil
		}
		oc.path = pathRouting // no queue has it: pick again
		s.mu.Unlock()
	}
}
