package session

import (
	"encoding/binary"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/wire"
)

// A path is one TCP connection of a session: its queues (this file), its writer (path_write.go)
// and its reader (path_read.go). Each runs on a goroutine of its own; a slow writer never blocks
// the reader. A path reaches its session only through the engine interface and the sharedWork
// kicks, and takes none of the session's locks.

// engine is what a path needs of its session. The session implements it; its methods take the
// session's locks themselves.
type engine interface {
	// clock is the session clock, which every time on a path is measured by.
	clock() time.Duration
	// onChunk takes a CHUNK whose header p has read, having p read its n payload bytes.
	onChunk(p *path, ch wire.ChunkHeader, n int) error
	// onPiece takes a PIECE whose header p has read, having p read its n payload bytes.
	onPiece(p *path, ph wire.PieceHeader, n int) error
	// onAck takes a CHUNK_ACK that arrived on p.
	onAck(p *path, a *wire.ChunkAck) error
	// onCredit takes a CREDIT.
	onCredit(v uint64) error
	// onClose takes the peer's CLOSE, with the number of items it sent.
	onClose(items uint64) error
	// onPathEnded is told, once, that p's reader has stopped, and why.
	onPathEnded(p *path, err error)
	// fillAck writes the session's record of chunks received into a, for a CHUNK_ACK.
	fillAck(a *wire.ChunkAck)
	// creditValue is the cumulative charge to report in CREDIT.
	creditValue() uint64
	// release lets go of a hold on a chunk the path was given.
	release(oc *outChunk)
	// runCompletions runs what letting go of chunks has made due (SendNoCopy's done); the path
	// calls it holding none of its locks.
	runCompletions()
	// isClosing reports whether this end has begun to close (end of stream is then expected).
	isClosing() bool
	// onFrame is told that a frame arrived, the first time a path reads one.
	onFrame()
	// yieldRead asks whether p's reader goroutine should leave the path to Receive now
	// (inline.go); on true p's read role is free.
	yieldRead(p *path) bool
	// reclaimed is told that p's reader goroutine holds its read role again.
	reclaimed(p *path)
}

// pathQueueBytes bounds the chunk bytes waiting for one path's writer: enough to keep a fast path
// busy between scheduler decisions, little enough that a slow path does not hoard data.
const pathQueueBytes = 2 << 20

// pathQueueLen is how many chunks of the given size fit in pathQueueBytes (at least 2).
func pathQueueLen(chunkSize int) int { return max(2, pathQueueBytes/chunkSize) }

// ctrlQueueLen is how many control frames (PINGs and PONGs) wait for a path's writer at most: a
// few, since each is 80 bytes held by every path, idle or not, and one dropped costs an RTT sample.
const ctrlQueueLen = 4

// ctrlFrame is a small control frame for a path's writer.
type ctrlFrame struct {
	t   wire.Type
	n   int
	buf [wire.MaxPingPayload]byte
}

// path is one TCP connection of a session. Its writer goroutine owns w and the fields marked
// "writer"; its reader goroutine owns r and those marked "reader". The rest are set at creation,
// atomic, or under one of the path's own locks.
type path struct {
	eng       engine
	shared    *sharedWork
	cfg       *Config
	hooks     *testHooks
	slog      *slog.Logger // the session's: logger adds the path
	chunkSize int
	mode      disperse.Mode // the session's: coded modes carry PIECE frames, the others CHUNK
	index     int           // its place in the session's table; never reused
	slot      int           // its place in the client's list (SESSION_ATTACH); coded modes send piece j only on slot j
	spec      PathSpec      // how to dial it again (client side)
	kex       string        // its TLS key exchange, for stats and logs ("none" without TLS)
	reserved  bool          // its index was reserved by the server's handshake
	conn      net.Conn
	tcp       syscall.RawConn // the TCP socket under conn, for its TCP_INFO (nil if none)
	upAt      time.Duration   // session clock when the path was made

	// "reader" fields belong to whoever holds the path's read role (inline.go): its reader
	// goroutine, or a Receive reading the path itself.
	r        *wire.Reader                // reader
	rd       atomic.Pointer[wire.Reader] // r, for its byte count; nil once the reader has stopped
	sawClose bool                        // reader: the peer's CLOSE arrived on this path
	gotFrame bool                        // reader: a frame has arrived
	ackIn    wire.ChunkAck               // reader
	dataHdr  [wire.PieceHeaderSize]byte  // reader: a data frame's chunk or piece header

	role     atomic.Int32  // who holds the read role: roleReader, roleFree or roleApp
	resume   chan struct{} // wakes the reader goroutine parked while the role is not its own
	handBack handback      // what a Receive handing the role back leaves (written before role)
	freedAt  atomic.Int64  // session clock when the role was last left free
	// displaced: the session's inline path moved elsewhere while a Receive held this one's
	// role; when that Receive lets go, the reader goroutine takes the role back at once
	displaced atomic.Bool
	// timerReclaims counts the roles the reader took back only when the reclaim timer fired
	timerReclaims atomic.Uint64
	// reclaimTimer wakes the parked reader once the role has been free for reclaimAfter
	reclaimTimer atomic.Pointer[time.Timer] // made when first armed (armTimer)
	reclaimArmed atomic.Bool                // reclaimTimer is running
	// Dozing (doze.go): dozing is set while the reader goroutine has ended with the path alive,
	// waiting for the poller; pollToken is its key there (under the poller's lock).
	dozing      atomic.Bool
	pollToken   uint64     // 0 until the path first dozes
	woken       bool       // reader: set by wakeReader before it runs the reader again
	onReaderEnd func()     // called when the reader has ended for good (not when it dozes)
	intMu       sync.Mutex // guards idle, interrupted, inBody, bodyCut and the read deadline's changes
	deadline    bool       // reader: a control frame's read deadline is set
	idle        bool       // under intMu: the role holder waits for a frame header
	// interrupted: under intMu: the role holder must return from its header wait (interrupt)
	interrupted bool
	inBody      bool // under intMu: the role holder reads a chunk's payload (readBodyUnless)
	bodyCut     bool // under intMu: cutBody set a past read deadline to end that read

	// wmu is held by whoever writes on the connection: the writer goroutine, or a sender
	// writing a small chunk itself (writeNow, which only tries it).
	wmu    sync.Mutex
	w      *wire.Writer  // under wmu
	wdone  bool          // under wmu: the writer has finished or been killed; nothing more is written
	ackOut wire.ChunkAck // under wmu
	ackBuf []byte        // under wmu
	inline []*outChunk   // under wmu: writeNow's batch
	// lastWrite: session clock of the last successful write, by whoever made it (flush)
	lastWrite atomic.Int64
	// writing: session clock when the write in progress took its first chunk (0: none). Its
	// chunks count as sent from then (the monitor's oldest): a write blocked on a path that
	// stopped (its socket buffer full) must be found stopped like one that went through.
	writing atomic.Int64
	// slowCtl: the monitor found another live path more than twice as fast (slowForControl);
	// the session's CHUNK_ACK and CREDIT go by the others while the session is busy.
	slowCtl atomic.Bool

	data    chan *outChunk
	ctrl    chan ctrlFrame
	fin     chan uint64   // Close: flush, send CLOSE(count), half-close
	stop    chan struct{} // closed when the path must end now
	rtxKick chan struct{} // chunks were added to rtx
	capKick chan struct{} // bytes in flight fell: the writer may take new data again
	capped  atomic.Bool   // the writer holds new data back at the in-flight cap: kick capKick
	// rearm wakes the writer when the path is no longer suspect: a writer that found it suspect
	// (disarmed) waits without the session's ackKick and creditKick, and must listen again.
	rearm    chan struct{}
	disarmed atomic.Bool
	// stallKick wakes a sender waiting for room in the queue (enqueue) when the path stalls or
	// finishes (one sender at a time: Send holds sendMu)
	stallKick chan struct{}

	rtxMu  sync.Mutex
	rtx    []*outChunk // chunks to send again, ahead of data; unbounded (bounded by the window)
	closed bool        // the writer has stopped: what is queued from now on is let go at once

	estMu   sync.Mutex
	est     rttEstimate
	backoff int // RTO doublings since the last RTT sample

	// Parking (park.go). mayPark is set while the writer is parked or about to look whether
	// to; parked, parkTimer, parkInterval and parkDue are under the session's park lock, and
	// resumed is the writer's (set under that lock before a new writer starts).
	mayPark      atomic.Bool
	parked       bool
	parkTimer    *time.Timer   // the parked writer's keepalive
	parkInterval time.Duration // its keepalive interval
	parkDue      time.Duration // session clock when its keepalive falls due
	resumed      bool          // the writer starts again after parking
	onWriterEnd  func()        // called when the writer has ended for good (not when it parks)

	stopOnce   sync.Once
	killCode   wire.Code // ERROR to send on stop; 0 for none
	killMsg    string
	downMu     sync.Mutex
	downReason error
	writerDone chan struct{}
	dead       atomic.Bool
	finishing  atomic.Bool
	stalled    atomic.Bool   // an RTO expired, or it lagged; no new data until the path shows life
	lags       atomic.Uint64 // times it was found lagging (estimate.go's lagging)
	// overtaken is set when a complete copy of the chunk this path's reader is filling arrived
	// on another path (offerCopy), cleared when its next chunk is reserved.
	overtaken       atomic.Bool
	overtakenChunks atomic.Uint64 // chunks whose copy overtook it mid-read
	stalledAt       atomic.Int64  // session clock of the stall
	lastRecv        atomic.Int64  // session clock when bytes were last seen arriving (monitor)

	queued   atomic.Int64  // bytes in its queues, and being offered to them
	inflight atomic.Int64  // bytes written and not yet acknowledged (chunk or piece payloads)
	acked    atomic.Int64  // bytes of its writes acknowledged, ever
	rate     atomic.Uint64 // delivery rate, bytes per second (math.Float64bits), as the monitor last measured it
	// rttRestarted: an idle sample started the RTT estimate again (sampleIdle); the monitor
	// decides whether the delivery rate is stale too (sampleRate)
	rttRestarted atomic.Bool
	// lossy: its TCP connection retransmitted within lossMemory, as the monitor last looked
	lossy      atomic.Bool
	lossCopies atomic.Uint64 // chunks it was given as copies of ones sent on a lossy path
	badPieces  atomic.Uint64 // pieces it carried that failed the integrity check
	chunksSent atomic.Uint64
	bytesSent  atomic.Uint64
	chunksRecv atomic.Uint64
	bytesRecv  atomic.Uint64
	// lastDataIn: the session's latest chunk (or piece) arrived on this path (the scheduler's
	// Answer; set and cleared under Session.mu)
	lastDataIn atomic.Bool
	// framesInline counts the frames a Receive read itself (inline.go)
	framesInline atomic.Uint64
	// Chunks (or pieces) queued on it to be sent again, and their bytes (retransmit).
	chunksResent atomic.Uint64
	bytesResent  atomic.Uint64
}

func newPath(s *Session, index, slot int, spec PathSpec, conn net.Conn, r *wire.Reader, w *wire.Writer) *path {
	p := &path{
		eng:        s,
		shared:     &s.shared,
		cfg:        s.cfg,
		hooks:      s.hooks,
		slog:       s.log,
		chunkSize:  s.chunkSize,
		mode:       s.mode,
		index:      index,
		slot:       slot,
		spec:       spec,
		conn:       conn,
		tcp:        rawTCP(conn),
		upAt:       s.clock(),
		r:          r,
		w:          w,
		data:       make(chan *outChunk, pathQueueLen(s.chunkSize)),
		ctrl:       make(chan ctrlFrame, ctrlQueueLen),
		fin:        make(chan uint64, 1),
		stop:       make(chan struct{}),
		rtxKick:    make(chan struct{}, 1),
		capKick:    make(chan struct{}, 1),
		rearm:      make(chan struct{}, 1),
		stallKick:  make(chan struct{}, 1),
		resume:     make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	p.rd.Store(r)
	p.lastRecv.Store(int64(p.upAt))
	return p
}

// usable reports whether new data may be given to the path.
func (p *path) usable() bool { return !p.dead.Load() && !p.finishing.Load() && !p.stalled.Load() }

// bytesRead returns how many bytes the path has read, or -1 once its reader has stopped.
func (p *path) bytesRead() int64 {
	if r := p.rd.Load(); r != nil {
		return r.BytesRead()
	}
	return -1
}

// heardAt returns the session clock when bytes were last seen arriving on the path.
func (p *path) heardAt() time.Duration { return time.Duration(p.lastRecv.Load()) }

// suspect reports whether the path has been silent for longer than MinRTO while another path of
// the session was heard from (see the estimator).
func (p *path) suspect() bool {
	return suspect(p.heardAt(), time.Duration(p.shared.lastHeard.Load()), p.cfg.MinRTO)
}

// enqueue queues a chunk for writing, waiting while the queue is full. It returns false if the
// path ended first, or stalled (its retransmission timer expired: a blackholed path drains
// nothing, and waiting for it to be declared dead would hold up the sender for PathTimeout).
func (p *path) enqueue(oc *outChunk) bool {
	if p.writeNow(oc) || p.tryEnqueue(oc) {
		return true
	}
	if p.dead.Load() {
		return false
	}
	if h := p.hooks; h != nil && h.enqueueWaits != nil {
		h.enqueueWaits(p, oc)
	}
	n := int64(len(oc.payload))
	p.queued.Add(n)
	for {
		// stallKick is kicked after the flag is set, so a stall or finish that came before
		// this look is seen here, and one after it wakes the wait below.
		if !p.usable() {
			p.queued.Add(-n)
			return false
		}
		select {
		case p.data <- oc:
			p.enqueued(oc)
			return true
		case <-p.stop:
			p.queued.Add(-n)
			return false
		case <-p.stallKick:
		}
	}
}

// tryEnqueue queues a chunk for writing if the queue has room, without waiting.
func (p *path) tryEnqueue(oc *outChunk) bool {
	if p.dead.Load() {
		return false
	}
	if h := p.hooks; h != nil && h.enqueueing != nil {
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
	if h := p.hooks; h != nil && h.enqueued != nil {
		h.enqueued(p, oc)
	}
	p.wakeWriter()
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
		p.eng.release(oc)
		return
	}
	p.queued.Add(int64(len(oc.payload)))
	p.chunksResent.Add(1)
	p.bytesResent.Add(uint64(len(oc.payload)))
	p.rtx = append(p.rtx, oc)
	p.rtxMu.Unlock()
	p.kickWriter(p.rtxKick)
}

// rtxWaiting reports whether chunks wait to be sent again.
func (p *path) rtxWaiting() bool {
	p.rtxMu.Lock()
	defer p.rtxMu.Unlock()
	return len(p.rtx) > 0
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
		p.eng.release(oc)
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
		p.wakeWriter()
	default:
	}
}

// probe sends a PING now, whatever the path is writing: the PONG shows that the path works both
// ways (it ends a stall).
func (p *path) probe() {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(p.eng.clock()))
	p.sendCtrl(wire.TypePing, ts[:])
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
	kick(p.stallKick)
	select {
	case p.fin <- count:
	default:
	}
	p.wakeWriter()
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
			p.conn.SetWriteDeadline(time.Now().Add(min(time.Second, p.cfg.WriteTimeout)))
		}
	}
	p.wakeWriter() // a parked writer ends the path
	p.wakeReader() // and a dozing reader reports its end
}

// setDownReason records why the path is being ended, for the log, unless a reason is known.
func (p *path) setDownReason(err error) {
	p.downMu.Lock()
	defer p.downMu.Unlock()
	if p.downReason == nil {
		p.downReason = err
	}
}
