package session

import (
	"context"
	"encoding/hex"
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

// The engine is split by concern, one file each:
//
//	session.go  the Session, its locks and lifecycle state, construction, Stats
//	send.go     Send: item ids, sequence numbers, the outstanding set, routing chunks to paths
//	recv.go     Receive: reassembly of the chunks paths read, what ACK and CREDIT are owed
//	loss.go     a chunk's fate (acknowledged, abandoned, lost and sent again), the monitor's timers
//	attach.go   paths joining, ending and being re-dialed
//	close.go    Close, Abort and the end of a session
//	coded.go    the coded modes: pieces out, pieces in and the rebuild
//	estimate.go pure estimators: RTT and RTO, delivery rate, in-flight cap, stall
//	path*.go    one connection: its queues, writer and reader, which reach the session only
//	            through the engine interface (path.go)
//	            (path_measure.go: its RTT, RTO, stall, in-flight bytes and what Stats sees)
//	park.go     an idle path's writer parked: no goroutine until it has work
//	doze*.go    an idle path's reader dozing: no goroutine until bytes arrive (Linux)
//	tcpinfo*.go what the kernel knows of a path's TCP connection: loss, and ACKs that stopped
//
// Locks, outermost first. A goroutine holding one may take only those after it:
//
//	Session.sendMu  serialises Send: item ids in order, an item's chunks in order, the codec and
//	                pieceBufs. Held across a whole Send, including waits for window and paths.
//	path.wmu        one path's wire.Writer: held by its writer goroutine while it writes, or by a
//	                sender writing a small chunk itself (writeNow, which only ever tries it).
//	Session.mu      the lifecycle (phase, err, peerClosed), the path table and each pathEntry's
//	                bookkeeping, the outstanding set and nextSeqSent, outChunk.path and .resent,
//	                reassembly, pieces, both flow-control ledgers, the changed channel and watched.
//	parkSet.mu      the session's parked writers, each path's parked flag and park timer
//	                (park.go).
//	path.rtxMu      one path's retransmission queue and closed flag.
//	path.estMu      one path's RTT estimate and RTO backoff.
//	path.downMu     why one path ended.
//	poller.mu       the dozing readers by poller token (doze*.go); taken under Session.mu by
//	                kill.
//	path.intMu      one path's read deadline and interrupt state (inline.go), and whether its
//	                reader is in a payload read cutBody may end; taken under Session.mu by
//	                broadcast and offerCopy.
//	ctxWatch.mu     the context registration kept for inline Receives (inline.go); taken under
//	                Session.mu by enter (drop), never the other way round.
//	Session.compMu  the queue of SendNoCopy done functions and its spare slice (lease.release,
//	                runCompletions).
//	batchConn.wmu   a TLS path's gathered writes (batch.go), under path.wmu.
//
// The server's own locks are taken with none of the above held, and none is held while another
// is taken: Listener.mu (its connections and their states, and the connection and handshake
// counts of admission.go), sessionTable.mu (sessions by id, pending sessions per address, the
// memory granted) and logLimiter.mu.
//
// Paths take none of the session's locks: they call the engine interface, whose methods take mu
// themselves and never call back into a path while holding it except to queue (retransmit,
// kill, probe), which takes only the path's own leaf locks. What crosses goroutines without a
// lock is atomic: a path's counters, in-flight bytes and stall flag, an outChunk's holds,
// acknowledged flag and send time, the session's shared kicks (sharedWork).

// phase is where a session is in its life. It only moves forward, under Session.mu.
type phase uint8

const (
	// phaseOpen: Send and Receive work.
	phaseOpen phase = iota
	// phaseClosing: Close was called. Send refuses new messages; the chunks already sent are
	// being acknowledged; a client still re-dials lost paths to deliver them.
	phaseClosing
	// phaseFinishing: every chunk sent is acknowledged and every path has been told to write
	// CLOSE and half-close (finished is closed). No path joins any more.
	phaseFinishing
	// phaseEnded: err says why; done is closed. Only Receive's buffered messages remain.
	phaseEnded
)

func (p phase) String() string {
	return [...]string{"open", "closing", "finishing", "ended"}[p]
}

// Session is one logical connection made of several paths. Messages sent with Send arrive at the
// peer's Receive whole, in order, exactly once, whichever paths carried their chunks. Either end
// may send. All methods are safe for concurrent use.
//
// Flow control is session-wide: Send blocks while the peer's receive window is full, so neither
// end buffers more than its configured budget however slow the reader.
type Session struct {
	// Set at construction, read-only after.
	id        wire.SessionID
	token     wire.Token
	key       []byte // keys attach proofs: the first path's exported session key, or (no TLS) the token
	window    int64  // this end's receive window: SessionWindow, or less as a server's memory budget grants
	cfg       *Config
	hooks     *testHooks // nil outside tests
	log       *slog.Logger
	client    bool
	chunkSize int
	mode      disperse.Mode
	codec     *disperse.Codec // coded modes
	unit      int             // what a chunk costs against the peer's window (mode.ChunkCharge)
	copies    bool            // every chunk also goes to every other usable path with room
	onEnd     func()          // called once when the session ends; set before any path is added
	// onEstablished is called once, when the first frame after the handshake arrives (server).
	onEstablished func()
	endOnce       sync.Once
	epoch         time.Time // origin of the session clock

	shared sharedWork // what every path's writer may act on

	// Under sendMu.
	sendMu    sync.Mutex
	scheduler sched.Scheduler
	view      []sched.Path // reused scheduler input (built under mu as well)
	pieceBufs [][]byte     // Encode's destinations
	chunkPool sync.Pool    // *outChunk with their buffers (copyBufSize; coded: ChunkSize-capacity, and pieces)

	// inlineHint is the path whose reader just completed a one-chunk message that a Receive waits
	// for (set under mu, read without it by every reader after every frame).
	inlineHint atomic.Pointer[path]
	// SendNoCopy messages let go of, whose done functions wait to run outside the session's
	// locks (runCompletions). compMu is a leaf lock.
	compMu            sync.Mutex
	completions       []func()
	compSpare         []func() // an emptied completions slice, for the next queue
	compPending       atomic.Bool
	integrityFailures atomic.Uint64
	ctr               sessionCounters // lifetime events, for Stats (counters.go)
	onViolation       func(wire.Code) // server: counts a violation the session is ended for
	// established: the peer has sent a frame since the handshake. Until then a server's session
	// may be a squatter's (SESSION_NEW and silence): it ends at HandshakeTimeout, or as soon as
	// its paths are gone, rather than holding a session slot for ResumeGrace.
	established  atomic.Bool
	ackTimer     atomic.Pointer[time.Timer] // kicks a writer when an ACK has waited ackDelay; made when first armed (armTimer)
	ackArmed     atomic.Bool                // ackTimer is running
	unacked      atomic.Int32
	unackedBytes atomic.Int64   // chunk bytes received since the last immediate ACK
	monitorDone  chan struct{}  // closed by the monitor's last run, once the session has ended
	monTimer     *time.Timer    // the monitor (startMonitor); under monMu
	monMu        sync.Mutex     // one monitor run at a time
	wg           sync.WaitGroup // every path goroutine and re-dial

	// Under mu.
	mu           sync.Mutex
	phase        phase
	err          error         // why the session ended; set on entering phaseEnded
	done         chan struct{} // closed on entering phaseEnded
	finished     chan struct{} // closed on entering phaseFinishing
	peerClosed   bool          // a CLOSE arrived
	peerItems    uint64        // the CLOSE's item count
	changed      chan struct{} // closed and replaced whenever a waiter may proceed (broadcast)
	watched      bool          // changed was handed to a waiter (changedChan) since it was made
	readyFuncs   []*readyFunc  // AfterReady's functions waiting for a message (ready.go)
	paths        []*pathEntry  // by index; nil where no path is attached (yet)
	attaching    map[int]bool  // slots of server handshakes whose paths have not joined yet
	downSince    time.Duration // session clock when the last path went; 0 while any is live
	out          *ack.Outstanding[*outChunk]
	nextSeqSent  uint64 // seq of the next chunk sent
	highestAcked uint64 // the highest seq acknowledged so far
	undelivered  int    // chunks let go of unacknowledged (the peer closed, or the session ended)
	nextItem     uint64 // id of the next item Send assigns
	seqScratch   []uint64
	recvd        *ack.Received // seqs of the chunks received
	reasm        *reasm.Reassembler
	spares       map[wire.ChunkHeader]spareCopy // chunks whose copy waits while a path fills the original
	pieces       map[uint64]*pieceSet           // coded: pieces of chunks not yet rebuilt, by seq
	pieceBytes   int64                          // their memory, at most the receive window
	sendFlow     *flow.Sender                   // what the peer's window still allows
	recvFlow     *flow.Receiver                 // the credit this end owes
	peerWindow   int64                          // the peer's receive budget
	// Inline reading (inline.go).
	recvWaiting int // Receive calls waiting in wait
	// recvWaitingBulk: those of them whose context cannot end, which may read whole chunks inline
	recvWaitingBulk int
	inlinePath      *path    // the path whose reader has yielded its read role, if any
	inlineOn        *path    // the path a Receive is reading inline, if any: broadcast interrupts it
	inlineWatch     ctxWatch // interrupts a Receive reading inline when its context ends
	lastDataIn      *path    // the path the latest chunk arrived on (its lastDataIn is set)
	// The monitor's verdict (loss.go): idleMode, the session was idle at its last look (paths
	// are judged by idlePathTimeout); busySince, when it last turned busy (paths are judged by
	// PathTimeout from then, not from their last ping of the idle time).
	idleMode  bool
	busySince time.Duration
}

// sharedWork is the session-wide work any path's writer may pick up: an ACK or CREDIT to send
// (whichever path writes next carries it), and when any path last heard from the peer (a path
// silent for long while others are not is suspect, and leaves that work to them).
type sharedWork struct {
	ackKick    chan struct{} // a writer should send CHUNK_ACK
	creditKick chan struct{} // a writer should send CREDIT
	ackDue     atomic.Bool   // received chunks await a CHUNK_ACK, which any write may carry
	lastHeard  atomic.Int64  // session clock when any path last received bytes
	// idle: the monitor found the session idle and sleeps until its next deadline; paths ping
	// every IdleKeepAlive (cleared by wakeMonitor, which wakes the monitor)
	idle atomic.Bool
	wake func()  // runs the session's monitor now (wakeMonitor); set at the start
	park parkSet // the paths whose writers are parked (park.go)
}

// wakeMonitor has an idle monitor look again at once: the session may have become busy.
func (w *sharedWork) wakeMonitor() {
	if w.idle.Load() && w.idle.CompareAndSwap(true, false) {
		w.wake()
	}
}

// pathEntry is a path as the session tracks it: the connection, and the session's own
// bookkeeping about it, which the monitor and the loss code keep under Session.mu.
type pathEntry struct {
	*path
	lastBytes   int64         // the path's byte count at the last monitor tick
	lastChunks  uint64        // the chunks (or pieces) it had received at the last monitor tick
	oldest      time.Duration // monitor scratch: its oldest unacknowledged send
	ackProgress time.Duration // when a chunk sent on it was last acknowledged
	lastProbe   time.Duration // when it was last probed while stalled, or for a fresh RTT
	wasSuspect  bool          // suspect at the last monitor tick
	rateEst     rateSampler
	retrans     uint32        // its TCP connection's retransmissions at the monitor's last look
	lossAt      time.Duration // when the monitor last saw that count grow (0: never)
}

// sessionTerms are the negotiated parameters a session starts with.
type sessionTerms struct {
	id         wire.SessionID
	token      wire.Token
	key        []byte // the attach proof key; nil means the token
	window     int64  // this end's receive window; 0 means Config.SessionWindow
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
	window := t.window
	if window == 0 {
		window = cfg.SessionWindow
	}
	s := &Session{
		window:      window,
		id:          t.id,
		token:       t.token,
		key:         t.key,
		cfg:         cfg,
		client:      t.client,
		chunkSize:   t.chunkSize,
		mode:        t.mode,
		codec:       codec,
		unit:        unit,
		copies:      t.mode.Kind == disperse.Redundant || isReplicator(sc),
		epoch:       time.Now(),
		shared:      sharedWork{ackKick: make(chan struct{}, 1), creditKick: make(chan struct{}, 1)},
		scheduler:   sc,
		monitorDone: make(chan struct{}),
		done:        make(chan struct{}),
		finished:    make(chan struct{}),
		changed:     make(chan struct{}),
		attaching:   make(map[int]bool),
		out:         ack.NewOutstanding[*outChunk](),
		// A sender within the window has at most window ÷ chunk size chunks unconsumed, and
		// every chunk not yet received is unconsumed.
		recvd: ack.NewReceived(uint64(window/int64(t.chunkSize)) + 1),
		reasm: reasm.New(reasm.Config{
			ChunkSize:   t.chunkSize,
			ChunkCharge: unit,
			MaxTotal:    uint32(min(window/int64(t.chunkSize), 1<<31)),
			Budget:      window,
			Alloc:       bufpool.Get,
			Free:        bufpool.Put,
		}),
		pieces:     make(map[uint64]*pieceSet),
		spares:     make(map[wire.ChunkHeader]spareCopy),
		sendFlow:   flow.NewSender(t.peerWindow),
		recvFlow:   flow.NewReceiver(window),
		peerWindow: t.peerWindow,
	}
	side := "server"
	if t.client {
		side = "client"
	}
	if s.key == nil {
		s.key = s.token[:]
	}
	s.log = cfg.Logger.With("session", s.ID(), "side", side)
	s.chunkPool.New = func() any { return s.newOutChunk() }
	s.startMonitor()
	return s, nil
}

// isReplicator reports whether a scheduler asks for copies of every chunk (sched.Replicator).
func isReplicator(sc sched.Scheduler) bool {
	r, ok := sc.(sched.Replicator)
	return ok && r.Replicate()
}

// ID returns the session's id in hex, as logged: its first 8 bytes, more with a long server id
// (wire.LoggedIDSize).
func (s *Session) ID() string { return hex.EncodeToString(s.id[:wire.LoggedIDSize(&s.id)]) }

// String describes the session for logs.
func (s *Session) String() string { return "braid session " + s.ID() }

// clock returns the session's monotonic time, the origin of chunk send times.
func (s *Session) clock() time.Duration { return time.Since(s.epoch) }

// wait releases s.mu until the session's state changes or ctx ends, and takes it again. Call with
// s.mu held.
func (s *Session) wait(ctx context.Context) error {
	ch := s.changedChan()
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// broadcast wakes every waiter, including a Receive reading a path inline. Call with s.mu held.
func (s *Session) broadcast() {
	s.wakeMonitor()
	if s.watched { // else nobody holds the channel: no need to replace it (a message each)
		close(s.changed)
		s.changed = make(chan struct{})
		s.watched = false
	}
	s.runReady()
	if s.inlineOn != nil {
		s.inlineOn.interrupt()
	}
}

// changedChan returns the channel the next broadcast closes, for a waiter to wait on after it
// unlocks s.mu. Call with s.mu held.
func (s *Session) changedChan() <-chan struct{} {
	s.watched = true
	return s.changed
}

// armTimer starts the timer in t to run f after d, making it the first time. The caller
// ensures the timer is not running (it has fired, or never started). Timers that may never be
// needed are not made ahead, stopped: a stopped timer stays in the runtime's timer heap until a
// sweep, and Reset on a timer still in the heap makes the runtime scan the whole heap (every
// timer of every session) when the new deadline comes, a cost that grows with the sessions held.
func armTimer(t *atomic.Pointer[time.Timer], d time.Duration, f func()) {
	if tm := t.Load(); tm != nil {
		tm.Reset(d)
		return
	}
	t.Store(time.AfterFunc(d, f))
}

// kick wakes whoever waits on c, unless a wake-up is already pending.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pathAt returns the path with index i, or nil. Call with s.mu held.
func (s *Session) pathAt(i int) *pathEntry {
	if i < 0 || i >= len(s.paths) {
		return nil
	}
	return s.paths[i]
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
	BadPieces      uint64  // pieces received on it that failed the integrity check (coded modes)
	KeyExchange    string  // the TLS key exchange, such as X25519MLKEM768; "none" without TLS
	BytesAcked     uint64  // payload bytes written on it that the peer acknowledged
	DeliveryRate   float64 // bytes per second acknowledged while busy, as last measured; 0 before a sample
	Stalled        bool    // its retransmission timer expired and no round trip has completed since
	ChunksResent   uint64  // chunks (or pieces) given to it to send again after another path, or itself, lost them
	BytesResent    uint64  // their payload bytes
	Lags           uint64  // times it went far longer than its measured rate allows without an acknowledgement, so that its chunks were sent again elsewhere and it was rested
	Overtaken      uint64  // received: chunks it was still reading when a complete copy came by another path, which was delivered instead
	Lossy          bool    // its TCP connection retransmitted in the last lossMemory (Linux; the monitor's last look)
	LossCopies     uint64  // chunks it was given as copies of ones sent on a lossy path (sched.LossCopy)
}

// Stats is a snapshot of a session's settings and counters.
type Stats struct {
	ID                string
	Mode              string // as Config.Mode spells it
	ChunkSize         int    // the negotiated chunk size
	IntegrityFailures uint64 // sets of K pieces that failed the integrity check (coded modes)
	BytesAcked        uint64 // message bytes the peer has acknowledged
	PathsUp           uint64 // paths that joined, re-dialed ones included
	PathsDown         uint64 // paths lost while the session ran
	Redials           uint64 // paths re-dialed and attached again (client)
	RedialFailures    uint64 // re-dial attempts that failed (client)
	Paths             []PathStats
}

// Stats returns a snapshot of the session's settings and per-path counters, by path index.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	paths := slices.Clone(s.paths)
	s.mu.Unlock()
	st := Stats{ID: s.ID(), Mode: s.mode.String(), ChunkSize: s.chunkSize, IntegrityFailures: s.integrityFailures.Load(),
		BytesAcked: s.ctr.bytesAcked.Load(), PathsUp: s.ctr.pathsUp.Load(), PathsDown: s.ctr.pathsDown.Load(),
		Redials: s.ctr.redials.Load(), RedialFailures: s.ctr.redialFail.Load()}
	for _, p := range paths {
		if p != nil {
			st.Paths = append(st.Paths, p.stats())
		}
	}
	return st
}
