package session

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/bufpool"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// pathQueueBytes bounds the chunk bytes waiting for one path's writer: enough to keep a fast path
// busy between scheduler decisions, little enough that a slow path does not hoard data.
const pathQueueBytes = 2 << 20

// pathQueueLen is how many chunks of the given size fit in pathQueueBytes (at least 2).
func pathQueueLen(chunkSize int) int { return max(2, pathQueueBytes/chunkSize) }

// maxWriteBatch bounds the bytes a path writer gathers into one write.
const maxWriteBatch = 2 << 20

// ackEvery is how many chunks the session receives before it acknowledges at once; fewer wait up
// to ackDelay for a frame going the other way to carry the ACK, as TCP's delayed ACK does. ACKs
// do not pace the sender (CREDIT does), so the delay costs nothing but a little sender memory.
const (
	ackEvery = 8
	ackBytes = 512 << 10 // an in-flight cap of two chunks or 1 MiB never waits out ackDelay
	ackDelay = 5 * time.Millisecond
)

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

	refs atomic.Int32 // holds on a chunk (a piece's are its parent's)
	// inflightOn is the path whose bytes-in-flight count includes this chunk (or piece): the
	// last that wrote it, until it is acknowledged.
	inflightOn atomic.Pointer[path]
	acked      atomic.Bool
	sentAt     atomic.Int64 // session clock when last written; 0 until then
	path       int          // index of the path it was last given to, -1 for none, or pathRouting (under s.mu)
	resent     bool         // given to more than one path (under s.mu)
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

// ctrlFrame is a small control frame for a path's writer.
type ctrlFrame struct {
	t   wire.Type
	n   int
	buf [wire.MaxPingPayload]byte
}

// path is one TCP connection of a session. Its writer goroutine owns the wire.Writer; its reader
// owns the wire.Reader. A slow writer never blocks the reader.
type path struct {
	s     *Session
	index int
	slot  int      // the path's place in the client's list (SESSION_ATTACH); coded modes send piece j only on slot j
	spec  PathSpec // how to dial it again (client side)
	conn  net.Conn
	r     *wire.Reader
	w     *wire.Writer
	log   *slog.Logger

	data    chan *outChunk
	ctrl    chan ctrlFrame
	fin     chan uint64   // Close: flush, send CLOSE(count), half-close
	stop    chan struct{} // closed when the path must end now
	rtxKick chan struct{} // chunks were added to rtx
	capKick chan struct{} // bytes in flight fell: the writer may take new data again
	// rearm wakes the writer when the path is no longer suspect: a writer that found it suspect
	// (disarmed) waits without the session's ackKick and creditKick, and must listen again.
	rearm    chan struct{}
	disarmed atomic.Bool

	rtxMu  sync.Mutex
	rtx    []*outChunk // chunks to send again, ahead of data; unbounded (bounded by the window)
	closed bool        // the writer has stopped: what is queued from now on is let go at once (under rtxMu)

	stopOnce    sync.Once
	killCode    wire.Code // ERROR to send on stop; 0 for none
	killMsg     string
	downMu      sync.Mutex
	downReason  error
	writerDone  chan struct{}
	dead        atomic.Bool
	finishing   atomic.Bool
	stalled     atomic.Bool   // an RTO expired; no new data until the path shows life
	stalledAt   atomic.Int64  // session clock of the stall
	rtoBackoff  atomic.Int32  // RTO doublings since the last RTT sample
	lastRecv    atomic.Int64  // session clock when bytes were last seen arriving (monitor)
	upAt        time.Duration // session clock when the path was made
	lastBytes   int64         // the reader's byte count at that time (monitor, under s.mu)
	sawClose    bool          // reader only: the peer's CLOSE arrived on this path
	ackIn       wire.ChunkAck
	ackOut      wire.ChunkAck // writer only
	ackBuf      []byte        // writer only
	oldest      time.Duration // monitor scratch: oldest unacknowledged send (under s.mu)
	ackProgress time.Duration // session clock when a chunk sent on it was last acknowledged (under s.mu)
	lastProbe   time.Duration // session clock of the last stall probe (monitor, under s.mu)
	wasSuspect  bool          // suspect at the last monitor tick (monitor, under s.mu)
	reserved    bool          // its index was reserved by the server's handshake
	deadline    bool          // reader only: a read deadline is set

	queued     atomic.Int64
	inflight   atomic.Int64  // bytes written and not yet acknowledged (chunk or piece payloads)
	acked      atomic.Int64  // bytes of its writes acknowledged, ever
	rate       atomic.Uint64 // smoothed delivery rate, bytes per second (math.Float64bits); 0 until measured
	rateAcked  int64         // acked at the start of the current rate sample (monitor, under s.mu)
	rateStart  time.Duration // session clock at its start (monitor, under s.mu)
	rateBusy   bool          // the path had data outstanding at its start (monitor, under s.mu)
	badPieces  atomic.Uint64 // pieces it carried that failed the integrity check
	chunksSent atomic.Uint64
	bytesSent  atomic.Uint64
	chunksRecv atomic.Uint64
	bytesRecv  atomic.Uint64
	srtt       atomic.Int64 // nanoseconds
	rttvar     atomic.Int64
	minRTT     atomic.Int64 // the least RTT sample of the last minRTTWindow, nanoseconds; 0 until one
	minRTTAt   atomic.Int64 // session clock of that sample
}

func newPath(s *Session, index, slot int, spec PathSpec, conn net.Conn, r *wire.Reader, w *wire.Writer) *path {
	p := &path{
		s:          s,
		index:      index,
		slot:       slot,
		spec:       spec,
		conn:       conn,
		r:          r,
		w:          w,
		log:        s.log.With("path", index, "slot", slot),
		data:       make(chan *outChunk, pathQueueLen(s.chunkSize)),
		ctrl:       make(chan ctrlFrame, 16),
		fin:        make(chan uint64, 1),
		stop:       make(chan struct{}),
		rtxKick:    make(chan struct{}, 1),
		capKick:    make(chan struct{}, 1),
		rearm:      make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	p.upAt = s.clock()
	p.lastRecv.Store(int64(p.upAt))
	return p
}

// usable reports whether new data may be given to the path.
func (p *path) usable() bool { return !p.dead.Load() && !p.finishing.Load() && !p.stalled.Load() }

// enqueue queues a chunk for writing, waiting while the queue is full. It returns false if the
// path ended first, or stalled (its retransmission timer expired: a blackholed path drains
// nothing, and waiting for it to be declared dead would hold up the sender for PathTimeout).
func (p *path) enqueue(oc *outChunk) bool {
	if p.tryEnqueue(oc) {
		return true
	}
	if p.dead.Load() {
		return false
	}
	if h := p.s.hooks; h != nil && h.enqueueWaits != nil {
		h.enqueueWaits(p, oc)
	}
	n := int64(len(oc.payload))
	p.queued.Add(n)
	t := time.NewTicker(monitorTick)
	defer t.Stop()
	for {
		select {
		case p.data <- oc:
			p.enqueued(oc)
			return true
		case <-p.stop:
			p.queued.Add(-n)
			return false
		case <-t.C:
			if !p.usable() {
				p.queued.Add(-n)
				return false
			}
		}
	}
}

// tryEnqueue queues a chunk for writing if the queue has room, without waiting.
func (p *path) tryEnqueue(oc *outChunk) bool {
	if p.dead.Load() {
		return false
	}
	if h := p.s.hooks; h != nil && h.enqueueing != nil {
		h.enqueueing(p, oc)
	}
	n := int64(len(oc.payload))
	p.queued.Add(n)
	select {
	case p.data <- oc:
		p.enqueued(oc)
		return true
	default:
		p.queued.Add(-n)
		return false
	}
}

// enqueued follows a chunk's entry into the queue of new data. If the writer has stopped
// meanwhile, its last look at the queue may have come first: the chunk is let go of here, as the
// writer would have (the queue's hold was taken all the same, and is now given back).
func (p *path) enqueued(oc *outChunk) {
	if h := p.s.hooks; h != nil && h.enqueued != nil {
		h.enqueued(p, oc)
	}
	p.rtxMu.Lock()
	closed := p.closed
	p.rtxMu.Unlock()
	if closed {
		p.dropQueued()
	}
}

// retransmit queues a chunk to be sent again, ahead of new data, without blocking. It takes over
// the caller's hold, and lets go of it at once if the writer has stopped: the chunk is sent again
// elsewhere once the path's end is handled (pathDown, or the monitor for a finished path).
func (p *path) retransmit(oc *outChunk) {
	p.rtxMu.Lock()
	if p.closed {
		p.rtxMu.Unlock()
		p.s.unref(oc)
		return
	}
	p.queued.Add(int64(len(oc.payload)))
	p.rtx = append(p.rtx, oc)
	p.rtxMu.Unlock()
	select {
	case p.rtxKick <- struct{}{}:
	default:
	}
}

func (p *path) takeRetransmits() []*outChunk {
	p.rtxMu.Lock()
	defer p.rtxMu.Unlock()
	r := p.rtx
	p.rtx = nil
	return r
}

// closeQueues is the writer's last act: from now on nothing queued on the path will be written,
// so it lets go of what the queues hold, and enqueued and retransmit let go of what comes later.
func (p *path) closeQueues() {
	p.rtxMu.Lock()
	p.closed = true
	p.rtxMu.Unlock()
	p.dropQueued()
}

// dropQueued lets go of every chunk waiting in the path's queues (the session resends what is
// unacknowledged elsewhere). Safe to call from several goroutines: each chunk is taken once.
func (p *path) dropQueued() {
	drop := func(oc *outChunk) {
		p.queued.Add(-int64(len(oc.payload)))
		p.s.unref(oc)
	}
	for _, oc := range p.takeRetransmits() {
		drop(oc)
	}
	for {
		select {
		case oc := <-p.data:
			drop(oc)
		default:
			return
		}
	}
}

// sendCtrl queues a control frame without blocking; a full queue drops it (PONGs and keepalive
// PINGs are worth nothing late).
func (p *path) sendCtrl(t wire.Type, payload []byte) {
	f := ctrlFrame{t: t}
	f.n = copy(f.buf[:], payload)
	select {
	case p.ctrl <- f:
	default:
	}
}

// probe sends a PING now, whatever the path is writing: the PONG shows that the path works both
// ways (it ends a stall).
func (p *path) probe() {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(p.s.clock()))
	p.sendCtrl(wire.TypePing, ts[:])
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// isClosed reports whether c has been closed.
func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// finish asks the writer to write what is queued, then CLOSE(count), then half-close.
func (p *path) finish(count uint64) {
	p.finishing.Store(true)
	select {
	case p.fin <- count:
	default:
	}
}

// kill ends the path now, sending ERROR(code, msg) first if code is not 0.
func (p *path) kill(code wire.Code, msg string) {
	first := false
	p.stopOnce.Do(func() {
		p.killCode, p.killMsg = code, msg
		p.dead.Store(true)
		close(p.stop)
		first = true
	})
	select {
	case <-p.writerDone:
		p.conn.Close() // no writer left to do it
	default:
		if first {
			// The writer may be blocked in a write to a peer that reads nothing; cut that
			// short (it then has a moment to send the ERROR) rather than wait WriteTimeout.
			p.conn.SetWriteDeadline(time.Now().Add(min(time.Second, p.s.cfg.WriteTimeout)))
		}
	}
}

// setDownReason records why the path is being ended, for the log, unless a reason is known.
func (p *path) setDownReason(err error) {
	p.downMu.Lock()
	defer p.downMu.Unlock()
	if p.downReason == nil {
		p.downReason = err
	}
}

func (p *path) schedView() sched.Path {
	srtt := time.Duration(p.srtt.Load())
	if srtt == 0 {
		// No sample yet, but the probe sent when the path came up has been out this long: the
		// round trip is at least that.
		srtt = max(p.s.clock()-p.upAt, time.Microsecond)
	}
	return sched.Path{
		Index:        p.index,
		Live:         p.usable(),
		QueuedBytes:  p.queued.Load(),
		InFlight:     p.inflight.Load(),
		SRTT:         srtt,
		DeliveryRate: math.Float64frombits(p.rate.Load()),
		Full:         len(p.data) == cap(p.data),
	}
}

// wrote counts a written chunk (or piece) of n bytes as in flight on p, and no longer on the path
// that wrote it before, if any.
func (p *path) wrote(oc *outChunk, n int64) {
	p.inflight.Add(n)
	if prev := oc.inflightOn.Swap(p); prev != nil {
		prev.inflight.Add(-n)
		if prev != p {
			kick(prev.capKick) // its writer may be waiting for room under the cap
		}
	}
	// An acknowledgement that came between the writer's check and now found nothing to
	// release (or the previous path): undo the count unless it did see this one.
	if oc.isAcked() && oc.inflightOn.CompareAndSwap(p, nil) {
		p.inflight.Add(-n)
	}
}

// delivered moves an acknowledged chunk (or piece) of n bytes from in flight to acknowledged on
// the path that last wrote it.
func delivered(oc *outChunk, n int64) {
	if q := oc.inflightOn.Swap(nil); q != nil {
		q.inflight.Add(-n)
		q.acked.Add(n)
		kick(q.capKick)
	}
}

// rateInterval is the shortest span a delivery-rate sample covers; with at least two round trips.
const rateInterval = 200 * time.Millisecond

// sampleRate updates the path's delivery rate from the bytes acknowledged since the last sample,
// once the sample spans rateInterval and two round trips. Only a sample over which the path was
// busy (data outstanding at its start and at its end) measures the path; one taken while the
// application had little to send measures the application, and may only raise an estimate that
// exists. Call from the monitor with s.mu held.
func (p *path) sampleRate(now time.Duration) {
	span := max(rateInterval, 2*time.Duration(p.srtt.Load()))
	if now-p.rateStart < span {
		return
	}
	acked := p.acked.Load()
	sample := float64(acked-p.rateAcked) / (now - p.rateStart).Seconds()
	old := math.Float64frombits(p.rate.Load())
	busy := p.inflight.Load() > 0 || p.queued.Load() > 0
	switch {
	case p.rateBusy && busy && old == 0:
		p.rate.Store(math.Float64bits(sample))
	case p.rateBusy && busy || old > 0 && sample > old:
		p.rate.Store(math.Float64bits((old + sample) / 2))
	}
	p.rateAcked, p.rateStart, p.rateBusy = acked, now, busy
}

// inflightCap is the most chunk bytes the path keeps written and unacknowledged before its writer
// holds new data back: twice the bytes its measured rate delivers in its minimum round trip
// (queueing excluded, or the cap would grow with the queue it should prevent) plus the receiver's
// acknowledgement delay and a monitor tick, and at least two chunks. Beyond that, data would only wait in socket
// buffers, where it cannot be moved when the path fails, and would delay every message behind
// it. Until the rate is measured, initialInflight (or two chunks, if more), as TCP starts with an
// initial window.
func (p *path) inflightCap() int64 {
	rate := math.Float64frombits(p.rate.Load())
	if rate <= 0 {
		return max(initialInflight, int64(2*p.s.chunkSize))
	}
	rtt := time.Duration(p.minRTT.Load()) + ackDelay + monitorTick
	return max(int64(2*rate*rtt.Seconds()), int64(2*p.s.chunkSize))
}

// initialInflight is a path's in-flight cap before its delivery rate is measured: enough for
// loopback and LAN paths to reach a rate sample quickly (acknowledgements come every ackBytes),
// little enough that a slow path does not start with seconds of data in its socket buffers.
const initialInflight = 1 << 20

// dataReady returns the path's queue of new data, or nil while its bytes in flight, with pending
// more about to be written, are at the cap (retransmissions are not held back).
func (p *path) dataReady(pending int64) chan *outChunk {
	if c := p.inflightCap(); c > 0 && p.inflight.Load()+pending >= c {
		return nil
	}
	return p.data
}

// rto is the path's retransmission timeout: SRTT plus four deviations (RFC 6298), at least min,
// doubled for each expiry since the last sample. Before any sample it is 1 s (or min, if more),
// as RFC 6298 recommends.
func (p *path) rto(min time.Duration) time.Duration {
	srtt, rttvar := time.Duration(p.srtt.Load()), time.Duration(p.rttvar.Load())
	r := max(min, time.Second)
	if srtt > 0 {
		r = max(min, srtt+4*rttvar)
	}
	return r << min32(p.rtoBackoff.Load(), 6)
}

func min32(a, b int32) int32 {
	if a < b {
		return a
	}
	return b
}

func (p *path) stats() PathStats {
	return PathStats{
		Index:          p.index,
		Slot:           p.slot,
		BadPieces:      p.badPieces.Load(),
		Local:          p.conn.LocalAddr().String(),
		Remote:         p.conn.RemoteAddr().String(),
		Live:           !p.dead.Load(),
		ChunksSent:     p.chunksSent.Load(),
		BytesSent:      p.bytesSent.Load(),
		ChunksReceived: p.chunksRecv.Load(),
		BytesReceived:  p.bytesRecv.Load(),
		SRTT:           time.Duration(p.srtt.Load()),
	}
}

func (p *path) trace(dir string, t wire.Type, n int) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("frame", "dir", dir, "type", t.String(), "bytes", n)
	}
}

// suspect reports whether the path has been silent for longer than MinRTO while another path of
// the session was heard from: it may be blackholed, so it should not volunteer to carry the
// session-wide CREDIT and CHUNK_ACK, which would be lost with it (a lost CREDIT leaves the peer
// waiting for window until the path is declared dead).
func (p *path) suspect() bool {
	return time.Duration(p.s.lastHeard.Load()-p.lastRecv.Load()) > p.s.cfg.MinRTO
}

// writeLoop writes the path's frames: retransmissions first, then new chunks, control frames,
// CHUNK_ACK and CREDIT when asked, and a PING when the path has written nothing for KeepAlive.
// Frames that are ready together leave in one write.
func (p *path) writeLoop() {
	defer p.s.wg.Done()
	// kill closes the connection itself once the writer is done; if it came while the writer
	// was returning (after writing CLOSE, say), neither would, and the reader would wait for a
	// peer that may never hang up. kill closes stop before it looks at writerDone, and the
	// writer closes writerDone before it looks at stop, so one of them sees the other.
	defer func() {
		if isClosed(p.stop) {
			p.conn.Close()
		}
	}()
	defer close(p.writerDone)
	defer func() { p.w = nil }() // a dead path keeps no write buffer
	keepalive := time.NewTimer(p.s.cfg.KeepAlive)
	defer keepalive.Stop()
	var batch []*outChunk
	for {
		// The deadline is armed before waiting, which can last up to KeepAlive (then a PING is
		// written), so it covers that wait plus WriteTimeout for the write itself.
		p.conn.SetWriteDeadline(time.Now().Add(p.s.cfg.KeepAlive + p.s.cfg.WriteTimeout))
		select {
		case <-p.stop: // kill may have set a short deadline just before the line above
			p.writeKill()
			return
		default:
		}
		var err error
		ackKick, creditKick := p.s.ackKick, p.s.creditKick
		sus := p.suspect()
		if sus {
			ackKick, creditKick = nil, nil
		}
		p.disarmed.Store(sus)
		select {
		case <-p.stop:
			p.writeKill()
			return
		case count := <-p.fin:
			select {
			case <-p.stop: // both were ready; ending now wins
				p.writeKill()
				return
			default:
			}
			err = p.writeFinish(count, batch)
			if cw, ok := p.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			if err != nil {
				p.log.Debug("finishing path failed", "err", err)
			}
			p.closeQueues()
			if h := p.s.hooks; h != nil && h.finishWritten != nil {
				h.finishWritten(p)
			}
			return
		case <-p.rtxKick:
			batch, err = p.queueRetransmits(batch)
		case oc := <-p.dataReady(0):
			batch, err = p.queueChunk(oc, batch)
		case <-p.capKick: // acknowledgements freed room under the cap; look again
		case <-p.rearm: // no longer suspect: wait for ackKick and creditKick again
		case f := <-p.ctrl:
			err = p.queueCtrl(f)
		case <-ackKick: // an ACK is due and no write was going to carry it
			if p.suspect() {
				kick(p.s.ackKick) // turned suspect while waiting: leave it to another path
			}
		case <-creditKick:
			if p.suspect() {
				kick(p.s.creditKick)
			} else {
				err = p.queueCredit()
			}
		case <-keepalive.C:
			var ts [8]byte
			binary.BigEndian.PutUint64(ts[:], uint64(p.s.clock()))
			p.trace("send", wire.TypePing, 8)
			err = p.w.Queue(wire.TypePing, ts[:], nil)
		}
	gather:
		for err == nil && p.w.Pending() < maxWriteBatch && len(batch) < 64 {
			select {
			case oc := <-p.dataReady(int64(p.w.Pending())):
				batch, err = p.queueChunk(oc, batch)
			case f := <-p.ctrl:
				err = p.queueCtrl(f)
			default:
				break gather
			}
		}
		if err == nil && !p.suspect() && p.s.ackDue.Swap(false) {
			err = p.queueAck() // any path may carry it; it rides with this write
		}
		if err == nil {
			err = p.w.Flush()
		}
		batch = p.release(batch, err == nil)
		if err != nil {
			p.setDownReason(fmt.Errorf("write: %w", err))
			p.kill(0, "")
			p.writeKill()
			return
		}
		keepalive.Reset(p.s.cfg.KeepAlive)
	}
}

// writeFinish drains the queues, then writes CLOSE(count).
func (p *path) writeFinish(count uint64, batch []*outChunk) error {
	batch, err := p.queueRetransmits(batch)
	for err == nil {
		select {
		case oc := <-p.data:
			batch, err = p.queueChunk(oc, batch)
			continue
		default:
		}
		break
	}
	if err == nil {
		// Acknowledge what arrived before our CLOSE: the peer's own Close waits for it.
		err = p.queueAck()
	}
	if err == nil {
		var b [wire.CloseSize]byte
		p.trace("send", wire.TypeClose, len(b))
		if err = p.w.Queue(wire.TypeClose, wire.AppendUint64(b[:0], count), nil); err == nil {
			err = p.w.Flush()
		}
	}
	p.release(batch, err == nil)
	return err
}

// writeKill sends the ERROR frame kill asked for, briefly, closes the connection, and lets go of
// every chunk still queued (the session resends them elsewhere).
func (p *path) writeKill() {
	if p.killCode != 0 {
		var b [2 + wire.MaxErrorMessage]byte
		p.conn.SetWriteDeadline(time.Now().Add(min(time.Second, p.s.cfg.WriteTimeout)))
		p.trace("send", wire.TypeError, 0)
		p.w.Queue(wire.TypeError, wire.AppendError(b[:0], wire.ErrorFrame{Code: p.killCode, Message: p.killMsg}), nil)
		if p.w.Flush() == nil {
			lingerClose(p.conn)
		}
	}
	p.conn.Close()
	p.closeQueues()
}

// queueRetransmits adds every chunk waiting to be sent again to the write in progress. If a write
// fails part way (the wire writer writes out what it holds beyond its limit), the chunks not yet
// reached join the batch unwritten, so that release lets go of them with the others.
func (p *path) queueRetransmits(batch []*outChunk) ([]*outChunk, error) {
	rtx := p.takeRetransmits()
	for i, oc := range rtx {
		var err error
		if batch, err = p.queueChunk(oc, batch); err != nil {
			return append(batch, rtx[i+1:]...), err
		}
	}
	return batch, nil
}

// queueChunk adds a chunk or piece to the write in progress, unless its chunk has been
// acknowledged meanwhile (a copy sent on another path arrived first, or enough other pieces did).
func (p *path) queueChunk(oc *outChunk, batch []*outChunk) ([]*outChunk, error) {
	if oc.isAcked() {
		p.queued.Add(-int64(len(oc.payload)))
		p.s.unref(oc)
		return batch, nil
	}
	// The chunk's buffer stays ours until release, after the flush: no copy, and all the
	// batch's chunks leave in one vectored write.
	var h [wire.PieceHeaderSize]byte
	if oc.parent != nil {
		if oc.piece != p.slot {
			panic(fmt.Sprintf("braid: piece %d given to the path in slot %d", oc.piece, p.slot))
		}
		p.trace("send", wire.TypePiece, wire.PieceHeaderSize+len(oc.payload))
		ph := wire.PieceHeader{ChunkHeader: oc.hdr, Index: uint8(oc.piece), Length: uint32(len(oc.parent.payload))}
		err := p.w.QueueRetained(wire.TypePiece, wire.AppendPieceHeader(h[:0], ph), oc.payload)
		return append(batch, oc), err
	}
	p.trace("send", wire.TypeChunk, wire.ChunkHeaderSize+len(oc.payload))
	err := p.w.QueueRetained(wire.TypeChunk, wire.AppendChunkHeader(h[:0], oc.hdr), oc.payload)
	return append(batch, oc), err
}

func (p *path) queueCtrl(f ctrlFrame) error {
	p.trace("send", f.t, f.n)
	return p.w.Queue(f.t, f.buf[:f.n], nil)
}

func (p *path) queueCredit() error {
	var b [wire.CreditSize]byte
	p.trace("send", wire.TypeCredit, len(b))
	return p.w.Queue(wire.TypeCredit, wire.AppendUint64(b[:0], p.s.creditValue()), nil)
}

// queueAck writes the session's current record of received chunks.
func (p *path) queueAck() error {
	p.s.mu.Lock()
	p.s.recvd.Fill(&p.ackOut)
	p.s.mu.Unlock()
	p.ackBuf = wire.AppendChunkAck(p.ackBuf[:0], p.ackOut)
	p.trace("send", wire.TypeChunkAck, len(p.ackBuf))
	return p.w.Queue(wire.TypeChunkAck, p.ackBuf, nil)
}

// release lets go of written chunks, noting when they were sent.
func (p *path) release(batch []*outChunk, written bool) []*outChunk {
	now := int64(p.s.clock())
	for i, oc := range batch {
		n := len(oc.payload)
		p.queued.Add(-int64(n))
		if written {
			oc.sentAt.Store(now)
			p.wrote(oc, int64(n))
			p.chunksSent.Add(1)
			p.bytesSent.Add(uint64(n))
		}
		p.s.unref(oc)
		batch[i] = nil
	}
	return batch[:0]
}

// sessionError is a protocol violation on a path; it ends the whole session with its code.
type sessionError struct {
	code wire.Code
	err  error
}

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

func violation(code wire.Code, err error) error { return &sessionError{code: code, err: err} }

// readLoop reads the path's frames until it ends, then reports why to the session.
func (p *path) readLoop() {
	defer p.s.wg.Done()
	err := p.read()
	p.dead.Store(true)
	p.downMu.Lock()
	if p.downReason != nil {
		err = p.downReason
	}
	p.downMu.Unlock()
	// The session decides what the peer is told (an ERROR frame, written by the writer, which
	// then closes the connection); kill with no code is a no-op if it already did.
	p.s.pathEnded(p, err)
	p.kill(0, "")
	// A dead path stays listed for its counters; its read buffer goes (the writer drops its own).
	p.s.mu.Lock()
	p.r = nil
	p.s.mu.Unlock()
}

func (p *path) read() error {
	s := p.s
	for {
		// Liveness is the session monitor's job (PathTimeout); a read deadline only bounds the
		// payload of a control frame once its header has arrived.
		if p.deadline {
			p.conn.SetReadDeadline(noDeadline)
			p.deadline = false
		}
		h, err := p.r.ReadHeader()
		if err != nil {
			if err == io.EOF && (p.sawClose || s.isClosing()) {
				return errPeerClosedPath
			}
			if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrUnknownType) {
				return violation(codeFor(err), err)
			}
			return err
		}
		if h.Type == wire.TypeChunk || h.Type == wire.TypePiece {
			if (h.Type == wire.TypePiece) != s.mode.Coded() {
				return violation(wire.CodeProtocol, fmt.Errorf("%w: %s in a %s session", ErrProtocol, h.Type, s.mode))
			}
			read := p.readChunk
			if h.Type == wire.TypePiece {
				read = p.readPiece
			}
			if err := read(h); err != nil {
				return err
			}
			continue
		}
		if h.Length > 0 {
			p.conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
			p.deadline = true
		}
		payload, err := p.r.ReadPayload(h)
		if err != nil {
			return err
		}
		p.trace("recv", h.Type, len(payload))
		if err := p.handleControl(h.Type, payload); err != nil {
			return err
		}
	}
}

// readChunk places a CHUNK's payload straight into its message's buffer, then records its seq
// for acknowledgement.
func (p *path) readChunk(h wire.Header) error {
	s := p.s
	if h.Length < wire.ChunkHeaderSize {
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: CHUNK of %d bytes has no room for its header", ErrInvalidChunk, h.Length))
	}
	var hb [wire.ChunkHeaderSize]byte
	if err := p.r.ReadFull(hb[:]); err != nil {
		return err
	}
	ch, _ := wire.ParseChunkHeader(hb[:])
	n := int(h.Length) - wire.ChunkHeaderSize
	p.trace("recv", wire.TypeChunk, int(h.Length))
	s.mu.Lock()
	dst, dup, err := s.reasm.ReserveBy(ch, n, p.index)
	owner, busy := -1, false
	if dup {
		owner, busy = s.reasm.BusyOwner(ch)
	}
	s.mu.Unlock()
	if err != nil {
		return violation(codeFor(mapReasmError(err)), mapReasmError(err))
	}
	if dup && busy {
		return p.offerCopy(ch, n, owner)
	}
	if dup {
		// Already here: acknowledge again, since the sender evidently did not hear of it (in
		// redundant mode copies are expected, and the usual ACK will do).
		if err := p.r.Discard(n); err != nil {
			return err
		}
		p.chunksRecv.Add(1)
		p.bytesRecv.Add(uint64(n))
		s.requestAck(s.mode.Kind != disperse.Redundant, n)
		return nil
	}
	if err := p.r.ReadFull(dst); err != nil {
		s.mu.Lock()
		committed, spare := s.reasm.Cancel(ch)
		if committed {
			s.chunkArrived(ch, n)
		}
		s.mu.Unlock()
		bufpool.Put(spare)
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(n))
	s.mu.Lock()
	spare := s.reasm.Commit(ch)
	err = s.chunkArrived(ch, n)
	s.mu.Unlock()
	bufpool.Put(spare)
	if err != nil {
		return violation(wire.CodeProtocol, fmt.Errorf("%w: %w", ErrProtocol, err))
	}
	return nil
}

// offerCopy reads a copy of a chunk that another path is still filling — a retransmission that
// overtook its stalled original — into a buffer of its own and offers it to the reassembler, which
// uses it if the original fails. If the path holding the original has received nothing for an
// RTO, it is stuck mid-chunk (blackholed), so it is ended now rather than at PathTimeout, and the
// copy takes its place.
func (p *path) offerCopy(ch wire.ChunkHeader, n, owner int) error {
	s := p.s
	buf := bufpool.Get(n)
	if err := p.r.ReadFull(buf); err != nil {
		bufpool.Put(buf)
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(n))
	s.mu.Lock()
	stored := s.reasm.Offer(ch, buf)
	holder := s.pathAt(owner)
	if !stored {
		// The original completed or failed meanwhile. If it failed, this copy is the chunk.
		if dst, dup, err := s.reasm.ReserveBy(ch, n, p.index); err == nil && !dup {
			copy(dst, buf)
			s.reasm.Commit(ch)
			s.chunkArrived(ch, n)
		}
		s.mu.Unlock()
		bufpool.Put(buf)
		s.requestAck(true, n)
		return nil
	}
	s.mu.Unlock()
	if holder != nil && holder != p && s.clock()-time.Duration(holder.lastRecv.Load()) > s.cfg.MinRTO {
		holder.setDownReason(fmt.Errorf("stalled in the middle of chunk %d of item %d, which arrived on path %d", ch.Chunk, ch.Item, p.index))
		holder.kill(0, "")
	}
	return nil
}

func (p *path) handleControl(t wire.Type, payload []byte) error {
	s := p.s
	switch t {
	case wire.TypePing:
		if len(payload) > wire.MaxPingPayload {
			return violation(wire.CodeProtocol, fmt.Errorf("%w: PING payload of %d bytes", ErrProtocol, len(payload)))
		}
		p.sendCtrl(wire.TypePong, payload)
	case wire.TypePong:
		if len(payload) > wire.MaxPingPayload {
			return violation(wire.CodeProtocol, fmt.Errorf("%w: PONG payload of %d bytes", ErrProtocol, len(payload)))
		}
		if len(payload) == 8 {
			sent := time.Duration(binary.BigEndian.Uint64(payload))
			p.sampleRTT(s.clock() - sent)
			// A round trip begun after a stall shows the path works both ways again.
			if p.stalled.Load() && int64(sent) > p.stalledAt.Load() {
				p.stalled.Store(false)
				p.rtoBackoff.Store(0)
				p.log.Debug("path recovered from a stall")
			}
		}
	case wire.TypeChunkAck:
		if err := wire.ParseChunkAck(payload, &p.ackIn); err != nil {
			return violation(wire.CodeProtocol, err)
		}
		return s.applyAck(p, &p.ackIn)
	case wire.TypeCredit:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		s.mu.Lock()
		changed, err := s.sendFlow.Credit(v)
		if changed {
			s.broadcast()
		}
		s.mu.Unlock()
		if err != nil {
			return violation(wire.CodeProtocol, fmt.Errorf("%w: %w", ErrProtocol, err))
		}
	case wire.TypeClose:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		p.sawClose = true
		s.mu.Lock()
		if s.peerClosed && s.peerItems != v {
			s.mu.Unlock()
			return violation(wire.CodeProtocol, fmt.Errorf("%w: CLOSE counts %d items, earlier %d", ErrProtocol, v, s.peerItems))
		}
		if !s.peerClosed {
			s.peerClosed, s.peerItems = true, v
			// The peer reads nothing more: what it has not acknowledged never will be.
			s.out.Apply(&wire.ChunkAck{Cum: s.nextSeqSent}, func(_ uint64, oc *outChunk) {
				oc.acked.Store(true)
				oc.eachCarried(func(c *outChunk) {
					if q := c.inflightOn.Swap(nil); q != nil {
						q.inflight.Add(-int64(len(c.payload)))
						kick(q.capKick)
					}
				})
				s.unref(oc)
			})
			s.broadcast()
		}
		s.mu.Unlock()
	case wire.TypeError:
		e, err := wire.ParseError(payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		return remoteError(e)
	default:
		return violation(wire.CodeProtocol, fmt.Errorf("%w: unexpected %s on a session path", ErrProtocol, t))
	}
	return nil
}

// minRTTWindow is how long a minimum RTT sample stands before a larger one may replace it.
const minRTTWindow = 10 * time.Second

// sampleRTT updates the smoothed RTT and variance as RFC 6298 does, and the windowed minimum.
func (p *path) sampleRTT(r time.Duration) {
	if r <= 0 {
		return
	}
	now := int64(p.s.clock())
	if m := p.minRTT.Load(); m == 0 || int64(r) <= m || now-p.minRTTAt.Load() > int64(minRTTWindow) {
		p.minRTT.Store(int64(r))
		p.minRTTAt.Store(now)
	}
	srtt, rttvar := p.srtt.Load(), p.rttvar.Load()
	if srtt == 0 {
		p.srtt.Store(int64(r))
		p.rttvar.Store(int64(r / 2))
		return
	}
	d := srtt - int64(r)
	if d < 0 {
		d = -d
	}
	p.rttvar.Store((3*rttvar + d) / 4)
	p.srtt.Store((7*srtt + int64(r)) / 8)
}

// mapReasmError turns a reassembly error into the session's matching sentinel.
func mapReasmError(err error) error {
	switch {
	case errors.Is(err, reasm.ErrInvalidChunk):
		return fmt.Errorf("%w: %w", ErrInvalidChunk, err)
	case errors.Is(err, reasm.ErrOverBudget):
		return fmt.Errorf("%w: %w", ErrOverBudget, err)
	}
	return err
}

// lingerClose half-closes conn and discards what the peer still sends, for up to a second, so
// that closing with unread input does not make the kernel reset the connection and destroy the
// ERROR frame just written before the peer reads it.
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	// Closed after the second rather than given a read deadline: the path's reader may clear a
	// deadline at the same moment, and a peer that then sends nothing (blackholed) would hold
	// io.Copy, and Abort with it, forever.
	t := time.AfterFunc(time.Second, func() { conn.Close() })
	defer t.Stop()
	io.Copy(io.Discard, conn)
}
