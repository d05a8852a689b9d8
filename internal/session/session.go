package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/ack"
	"github.com/braidnet/braid/internal/bufpool"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/flow"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// Session is one logical connection made of several paths. Messages sent with Send arrive at the
// peer's Receive whole, in order, exactly once, whichever paths carried their chunks. Either end
// may send. All methods are safe for concurrent use.
//
// Flow control is session-wide: Send blocks while the peer's receive window is full, so neither
// end buffers more than its configured budget however slow the reader.
type Session struct {
	id        wire.SessionID
	token     wire.Token
	cfg       *Config
	hooks     *testHooks // nil outside tests
	log       *slog.Logger
	client    bool
	chunkSize int
	mode      disperse.Mode
	codec     *disperse.Codec // coded modes; Encode under sendMu
	unit      int             // what a chunk costs against the peer's window (mode.ChunkCharge)
	onEnd     func()          // called once when the session ends; set before any path is added
	endOnce   sync.Once

	sendMu    sync.Mutex // serialises Send: item ids and the order of an item's chunks
	scheduler sched.Scheduler
	replicate bool         // the scheduler asks for a copy of each chunk on every live path with room
	view      []sched.Path // reused scheduler input, under sendMu
	chunkPool sync.Pool    // *outChunk with ChunkSize-capacity buffers (and pieces, coded)
	pieceBufs [][]byte     // Encode's destinations, under sendMu
	// chunksOut counts the chunk records taken from chunkPool and not yet put back: once the
	// session's goroutines have stopped, only the outstanding set may still hold any.
	chunksOut atomic.Int64

	integrityFailures atomic.Uint64
	lastHeard         atomic.Int64 // session clock when any path last received bytes (monitor)
	seqScratch        []uint64     // requeueFrom's sort buffer, under mu
	unackedBytes      atomic.Int64 // chunk bytes received since the last immediate ACK

	epoch       time.Time     // origin of the session clock
	monitorDone chan struct{} // closed when the monitor goroutine has ended

	mu           sync.Mutex
	paths        []*path                     // by index; nil where no path is attached
	attaching    map[int]bool                // slots of server handshakes whose paths have not joined yet
	out          *ack.Outstanding[*outChunk] // sent, not yet acknowledged
	nextSeqSent  uint64                      // seq of the next chunk sent
	highestAcked uint64                      // the highest seq acknowledged so far
	recvd        *ack.Received               // seqs of the chunks received
	downSince    time.Duration               // session clock when the last path went; 0 while any is live
	reasm        *reasm.Reassembler
	pieces       map[uint64]*pieceSet // coded: pieces of chunks not yet rebuilt, by seq
	pieceBytes   int64                // their memory, at most SessionWindow
	changed      chan struct{}        // closed and replaced whenever a waiter may proceed
	nextItem     uint64               // id of the next item Send assigns
	sendFlow     *flow.Sender         // what the peer's window still allows
	recvFlow     *flow.Receiver       // the credit this end owes
	peerWindow   int64                // the peer's receive budget
	peerClosed   bool                 // a CLOSE arrived
	peerItems    uint64               // the CLOSE's item count
	closing      bool                 // Close was called
	err          error                // terminal error; nil while open
	done         chan struct{}        // closed when the session ends (err set)
	finished     chan struct{}        // closed when Close has told every path to finish
	creditKick   chan struct{}        // a path writer should send CREDIT(consumed)
	ackKick      chan struct{}        // a path writer should send CHUNK_ACK
	ackDue       atomic.Bool          // received chunks await a CHUNK_ACK, which any path may carry
	ackTimer     *time.Timer          // kicks a writer when an ACK has waited ackDelay
	unacked      atomic.Int32         // chunks received since the last immediate ACK
	wg           sync.WaitGroup
}

// sessionTerms are the negotiated parameters a session starts with.
type sessionTerms struct {
	id         wire.SessionID
	token      wire.Token
	chunkSize  int
	peerWindow int64
	client     bool
	mode       disperse.Mode
}

func newSession(cfg *Config, t sessionTerms) (*Session, error) {
	sc, err := sched.New(cfg.Scheduler)
	if err != nil {
		return nil, err
	}
	var codec *disperse.Codec
	if t.mode.Coded() {
		if codec, err = disperse.New(t.mode); err != nil {
			return nil, err
		}
	}
	unit := t.mode.ChunkCharge(t.chunkSize)
	s := &Session{
		id:          t.id,
		token:       t.token,
		cfg:         cfg,
		client:      t.client,
		chunkSize:   t.chunkSize,
		mode:        t.mode,
		codec:       codec,
		unit:        unit,
		pieces:      make(map[uint64]*pieceSet),
		attaching:   make(map[int]bool),
		scheduler:   sc,
		replicate:   isReplicator(sc),
		peerWindow:  t.peerWindow,
		changed:     make(chan struct{}),
		done:        make(chan struct{}),
		finished:    make(chan struct{}),
		creditKick:  make(chan struct{}, 1),
		ackKick:     make(chan struct{}, 1),
		epoch:       time.Now(),
		monitorDone: make(chan struct{}),
		out:         ack.NewOutstanding[*outChunk](),
		// A sender within the window has at most window ÷ chunk size chunks unconsumed, and
		// every chunk not yet received is unconsumed.
		recvd:    ack.NewReceived(uint64(cfg.SessionWindow/int64(t.chunkSize)) + 1),
		sendFlow: flow.NewSender(t.peerWindow),
		recvFlow: flow.NewReceiver(cfg.SessionWindow),
		reasm: reasm.New(reasm.Config{
			ChunkSize:   t.chunkSize,
			ChunkCharge: unit,
			MaxTotal:    uint32(min(cfg.SessionWindow/int64(t.chunkSize), 1<<31)),
			Budget:      cfg.SessionWindow,
			Alloc:       bufpool.Get,
		}),
	}
	side := "server"
	if t.client {
		side = "client"
	}
	s.log = cfg.Logger.With("session", s.ID(), "side", side)
	s.chunkPool.New = func() any { return s.newOutChunk() }
	s.ackTimer = time.AfterFunc(time.Hour, func() { kick(s.ackKick) })
	s.ackTimer.Stop()
	go s.monitor()
	return s, nil
}

// isReplicator reports whether a scheduler asks for copies of every chunk (sched.Replicator).
func isReplicator(sc sched.Scheduler) bool {
	r, ok := sc.(sched.Replicator)
	return ok && r.Replicate()
}

// newOutChunk makes a chunk record for the pool: a buffer for a chunk, and in a coded mode one for
// each of its pieces.
func (s *Session) newOutChunk() *outChunk {
	if s.codec == nil {
		return &outChunk{buf: make([]byte, s.chunkSize)}
	}
	oc := &outChunk{buf: make([]byte, s.codec.BufferSize(s.chunkSize)), kids: make([]outChunk, s.mode.N)}
	for j := range oc.kids {
		oc.kids[j] = outChunk{parent: oc, piece: j, buf: make([]byte, s.codec.PieceSize(s.chunkSize))}
	}
	return oc
}

// ID returns the session's id in hex, as logged.
func (s *Session) ID() string { return hex.EncodeToString(s.id[:8]) }

// ChunkSize returns the negotiated chunk size.
func (s *Session) ChunkSize() int { return s.chunkSize }

// wait releases s.mu until the session's state changes or ctx ends, and takes it again. Call with
// s.mu held.
func (s *Session) wait(ctx context.Context) error {
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// broadcast wakes every waiter. Call with s.mu held.
func (s *Session) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Send sends msg as one item. It blocks while the peer's receive window is full, until ctx ends
// or the session does. ctx governs only that wait: once the first chunk is queued the whole
// message is committed to the session. Send does not retain msg after it returns.
func (s *Session) Send(ctx context.Context, msg []byte) error {
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
		oc := s.getChunk()
		oc.payload = oc.buf[:copy(oc.buf, msg[lo:hi])]
		oc.hdr = wire.ChunkHeader{Item: item, Chunk: c, Total: total}
		oc.acked.Store(false)
		oc.sentAt.Store(0)
		oc.inflightOn.Store(nil)
		oc.resent, oc.path = false, pathRouting
		if err := s.encode(oc); err != nil {
			s.putChunk(oc)
			s.abort(fmt.Errorf("braid: encoding a chunk: %w", err), wire.CodeInternal)
			return err
		}
		// Two holds: the outstanding set's, and Send's own until route has queued the chunk
		// (which passes it on to the queue), so that an ACK or CLOSE racing this Send cannot
		// free the chunk in between.
		oc.refs.Store(2)
		s.mu.Lock()
		oc.hdr.Seq = s.nextSeqSent
		for j := range oc.kids {
			oc.kids[j].hdr = oc.hdr
		}
		s.nextSeqSent++
		s.out.Add(oc.hdr.Seq, oc)
		s.mu.Unlock()
		var err error
		if s.mode.Coded() {
			err = s.routeCoded(oc)
		} else {
			err = s.route(oc, s.mode.Kind == disperse.Redundant || s.replicate)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// getChunk takes a chunk record from the pool.
func (s *Session) getChunk() *outChunk {
	s.chunksOut.Add(1)
	return s.chunkPool.Get().(*outChunk)
}

// putChunk gives a chunk record nothing holds any more back to the pool.
func (s *Session) putChunk(oc *outChunk) {
	s.chunksOut.Add(-1)
	s.chunkPool.Put(oc)
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
		kid.sentAt.Store(0)
		kid.inflightOn.Store(nil)
		kid.resent, kid.path = false, pathRouting
		s.pieceBufs = append(s.pieceBufs, kid.payload)
	}
	return s.codec.Encode(oc.hdr, oc.buf, len(oc.payload), s.pieceBufs)
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
	s.unref(oc) // Send's hold; the outstanding set keeps it
	return fmt.Errorf("%w: no usable path while closing", ErrSessionClosed)
}

// unsend takes back the first chunk of a message that Send could not place (the session is
// closing with no usable path): its seq, its item id and its charge, so that nothing of the
// message was sent. Call with s.mu and sendMu held, right after the chunk was added.
func (s *Session) unsend(oc *outChunk) {
	if s.out.Remove(oc.hdr.Seq) {
		s.unref(oc) // the outstanding set's hold
	}
	s.nextSeqSent--
	s.nextItem--
	s.sendFlow.Return(reasm.Charge(oc.hdr.Total, s.unit))
	s.broadcast()
	s.unref(oc) // Send's
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
		case s.err != nil:
			return 0, s.err
		case s.closing:
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

// route hands a chunk to the path the scheduler picks, waiting while that path's queue is full,
// or while the session has no usable path (a client is re-dialing; the grace period bounds it).
// With copies (redundant mode, or a scheduler that asks for them), every other usable path whose
// queue has room gets a copy too: the first to arrive is used.
//
// If the chosen path ends or stalls while route waits for room on it, the chunk may already be on
// its way: a copy went to another path, or the path's loss moved the chunk to another path's
// retransmission queue (requeueFrom). Route stops there; picking again would queue the chunk a
// second time, on a path that may already carry it.
func (s *Session) route(oc *outChunk, copies bool) error {
	var waitingSince time.Time
	var copied []*path // the paths that took a copy
	for {
		s.mu.Lock()
		if s.err != nil {
			s.mu.Unlock()
			s.unref(oc)
			return s.err
		}
		s.view = s.view[:0]
		for _, p := range s.paths {
			if p != nil {
				s.view = append(s.view, p.schedView())
			}
		}
		i := s.scheduler.Pick(s.view, len(oc.payload))
		if i < 0 && s.closing {
			if err := s.giveUpClosing(oc, &waitingSince); err != nil {
				s.mu.Unlock()
				return err
			}
		}
		if i < 0 {
			s.waitForPaths()
			continue
		}
		p := s.paths[s.view[i].Index]
		oc.path = p.index
		var others []*path
		if copies {
			for _, q := range s.paths {
				if q != nil && q != p && q.usable() {
					others = append(others, q)
				}
			}
		}
		s.mu.Unlock()
		for _, q := range others {
			oc.refs.Add(1)
			if q.tryEnqueue(oc) {
				copied = append(copied, q)
			} else {
				s.unref(oc)
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
			s.unref(oc) // Send's hold; the queues that have the chunk hold it
			return nil
		}
		oc.path = pathRouting // no queue has it: pick again
		s.mu.Unlock()
	}
}

// Receive returns the next message, waiting until one is complete, ctx ends, or the session
// does. After the peer's Close it returns io.EOF once every message sent before it has been
// received. The returned slice is the caller's; a caller done with it may hand it back with
// Release, so that later messages reuse its memory.
func (s *Session) Receive(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if msg, charge, ok := s.reasm.Pop(); ok {
			if _, due := s.recvFlow.Take(charge); due {
				kick(s.creditKick) // a pending kick's writer sends the latest value
			}
			return msg, nil
		}
		switch {
		case s.peerClosed && s.reasm.Next() >= s.peerItems:
			return nil, io.EOF
		case s.err != nil:
			return nil, s.err
		case s.closing:
			return nil, ErrSessionClosed
		}
		if err := s.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// chunkArrived records a chunk just committed: its seq for acknowledgement, and a wake-up for
// Receive if its message is next. Call with s.mu held.
func (s *Session) chunkArrived(ch wire.ChunkHeader, n int) error {
	_, err := s.recvd.Add(ch.Seq)
	if s.reasm.Ready() {
		s.broadcast()
	}
	if err == nil {
		s.requestAck(false, n)
	}
	return err
}

// requestAck notes that a CHUNK_ACK is due, for a chunk of n bytes: at once after ackEvery chunks
// or ackBytes bytes (or a duplicate, which means the sender did not hear of an earlier one), else within ackDelay, or sooner with whatever
// a path writes next. Any path may carry it: it is the whole session's record.
func (s *Session) requestAck(now bool, n int) {
	s.ackDue.Store(true)
	if now || s.unacked.Add(1) >= ackEvery || s.unackedBytes.Add(int64(n)) >= ackBytes {
		s.unacked.Store(0)
		s.unackedBytes.Store(0)
		kick(s.ackKick)
		return
	}
	s.ackTimer.Reset(ackDelay)
}

// Release hands back a message returned by Receive for reuse by later messages. It is optional
// (a message never released is simply garbage collected), but it spares a large-message receiver
// an allocation per message. msg must not be used afterwards.
func (s *Session) Release(msg []byte) { bufpool.Put(msg) }

// creditValue returns the cumulative charge to report in CREDIT.
func (s *Session) creditValue() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvFlow.Advertised()
}

// Close ends the session gracefully: messages already sent are delivered before the peer's
// Receive returns io.EOF. It waits for the peer to acknowledge every chunk and then to close its
// side of every path; if Config.Linger passes with no progress, it aborts instead. Then it
// releases every path. Receive and Send return ErrSessionClosed afterwards.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closing || s.err != nil {
		s.mu.Unlock()
		s.wg.Wait()
		<-s.monitorDone
		return nil
	}
	s.closing = true
	s.broadcast()
	s.mu.Unlock()

	// Wait for a Send in progress to finish queueing its chunks, and for the peer to
	// acknowledge every chunk, then tell every path to send CLOSE and half-close.
	// Linger bounds the time without progress, not the whole wait: a slow path may need long to
	// deliver a full window, and each acknowledgement shows it is still doing so.
	linger := time.NewTimer(s.cfg.Linger)
	defer linger.Stop()
	s.sendMu.Lock()
	s.mu.Lock()
	for left := s.out.Len(); left > 0 && s.err == nil; {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-linger.C:
			s.sendMu.Unlock()
			s.log.Warn("linger expired with chunks unacknowledged; aborting", "linger", s.cfg.Linger)
			s.abort(fmt.Errorf("%w: linger expired", ErrSessionClosed), wire.CodeSessionClosed)
			s.wg.Wait()
			<-s.monitorDone
			return nil
		}
		s.mu.Lock()
		if now := s.out.Len(); now < left {
			left = now
			linger.Reset(s.cfg.Linger)
		}
	}
	count := s.nextItem
	paths := slices.Clone(s.paths)
	close(s.finished) // a path attached from now on would not be finished
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
	<-s.monitorDone
	return nil
}

// abort ends the session at once because of err, telling the peer with an ERROR frame of code
// on every path.
func (s *Session) abort(err error, code wire.Code) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.done)
	s.broadcast()
	paths := slices.Clone(s.paths)
	s.mu.Unlock()
	s.log.Warn("session aborted", "reason", err, "code", code.String())
	for _, p := range paths {
		if p != nil {
			p.kill(code, err.Error())
		}
	}
	s.ended()
}

func (s *Session) ended() {
	if s.onEnd != nil {
		s.endOnce.Do(s.onEnd)
	}
}

// end records the normal end of the session.
func (s *Session) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		close(s.done)
		s.broadcast()
	}
	s.mu.Unlock()
	s.ended()
}

// Abort ends the session at once without delivering what is queued; the peer sees
// ErrSessionClosed from Receive and Send rather than io.EOF.
func (s *Session) Abort() {
	s.abort(fmt.Errorf("%w: aborted", ErrSessionClosed), wire.CodeSessionClosed)
	s.wg.Wait()
	<-s.monitorDone
}

// Done returns a channel closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it is open.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// reserveIndex claims the next path index for a server handshake in slot. It refuses while an
// earlier handshake holds the slot (its path has not joined yet), and when the session would have
// more than max paths: one per slot that has a live path or a handshake in progress, the live path
// in slot itself being the one the new path will replace. Dead paths do not count (a re-dialed
// path replaces one). Indexes are not reused, so the total ever attached is capped as well,
// bounding what dead paths (kept for their counters) cost.
func (s *Session) reserveIndex(max, slot int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closing {
		return 0, ErrSessionClosed
	}
	if s.attaching[slot] {
		return 0, fmt.Errorf("%w: an attach in slot %d is in progress", ErrTooManyPaths, slot)
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

// maxAttachesPerPath bounds, per allowed path, how many paths may attach over a session's life.
const maxAttachesPerPath = 16

// unreserve gives back the reservation of slot, whose path never joined; its index stays unused.
func (s *Session) unreserve(slot int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.attaching, slot)
}

// addPath attaches a connection at its index and starts its writer. The caller must then run
// p.readLoop, on a goroutine of its own or (a server) on the connection's.
func (s *Session) addPath(p *path) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A closing session still takes a re-dialed path until Close finishes its paths: what it
	// sent must be delivered.
	if s.err != nil || s.closing && (!s.client || isClosed(s.finished)) {
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
	s.paths[p.index] = p
	s.wg.Add(2)
	go p.writeLoop()
	p.probe() // an RTT sample at once, for the scheduler
	s.log.Info("path up", "path", p.index, "local", p.conn.LocalAddr().String(), "remote", p.conn.RemoteAddr().String())
	s.downSince = 0
	s.requeueFrom(nil) // chunks orphaned while no path was up
	s.broadcast()
	kick(s.creditKick) // in case the last ones were lost with a dead path
	return nil
}

// PathStats describes one path of a session.
type PathStats struct {
	Index          int
	Slot           int // its place in the client's list of paths; coded modes send piece j on slot j
	Local, Remote  string
	Live           bool
	ChunksSent     uint64 // chunks, or pieces in a coded mode
	BytesSent      uint64 // chunk (or piece) payload bytes
	ChunksReceived uint64
	BytesReceived  uint64 // chunk payload bytes
	SRTT           time.Duration
	BadPieces      uint64 // pieces received on it that failed the integrity check (coded modes)
}

// Paths returns per-path counters, by index.
func (s *Session) Paths() []PathStats {
	s.mu.Lock()
	paths := slices.Clone(s.paths)
	s.mu.Unlock()
	var out []PathStats
	for _, p := range paths {
		if p != nil {
			out = append(out, p.stats())
		}
	}
	return out
}

// Stats is a snapshot of a session's settings and counters.
type Stats struct {
	ID                string
	Mode              string
	ChunkSize         int
	IntegrityFailures uint64
	Paths             []PathStats
}

// Stats returns a snapshot of the session's settings and per-path counters.
func (s *Session) Stats() Stats {
	return Stats{ID: s.ID(), Mode: s.Mode(), ChunkSize: s.chunkSize, IntegrityFailures: s.IntegrityFailures(), Paths: s.Paths()}
}

// String describes the session for logs.
func (s *Session) String() string { return "braid session " + s.ID() }

// errPeerClosedPath is how a path ends normally: end of stream after the peer's CLOSE, or after
// our own.
var errPeerClosedPath = errors.New("peer closed the path")

func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// pathEnded is called once a path's reader has stopped, with the reason. A clean end is logged;
// a protocol violation ends the session with its code; a peer's ERROR ends it with the peer's
// error; a transport failure or silence is a lost path, which the session survives.
func (s *Session) pathEnded(p *path, err error) {
	var se *sessionError
	var re *RemoteError
	switch {
	case s.Err() != nil:
		// Already over; this path is just going down with it.
	case errors.Is(err, errPeerClosedPath):
		p.log.Info("path closed")
	case errors.As(err, &se):
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
	over := s.err == nil && s.peerClosed && !s.closing
	for _, q := range s.paths {
		if q != nil && !q.dead.Load() {
			over = false
		}
	}
	s.mu.Unlock()
	if over {
		s.end(fmt.Errorf("%w: the peer closed the session", ErrSessionClosed))
	}
}
