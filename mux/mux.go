// Package mux carries many concurrent byte streams over one Braid session, each with open,
// data, half-close each way and reset, and its own flow control, so that one stalled consumer
// cannot hold the session's window from the others. It is what `braid tunnel` runs on.
//
// # Usage
//
// A Mux runs over any Transport (an ordered, reliable message channel; *braid.Session is one).
// One end calls Open with a target ("host:port", or empty for the peer's default); the other
// Accepts the stream, reads its Target, and either Confirms it (typically after dialing the
// target) or Refuses it with a Code that reaches the opener as an *OpenError. A confirmed Stream
// is a net.Conn with CloseWrite, like a *net.TCPConn. Either end may open streams.
//
// # Flow control
//
// Each stream has a receive window: the peer sends on it only what the window allows, and the
// receiving end grants more as its application reads. The mux reads every session message as
// soon as it arrives and files its data under its stream, so the session's own window never
// fills with one stream's unread data; what a slow reader holds is bounded by its stream's
// window, and all windows together by Config.MaxBuffered.
//
// # Limitations
//
// Streams share the session's in-order delivery: a chunk that must be sent again (its path
// died) delays every stream's later data until it arrives, and a large DATA message queued
// ahead of a small one delays it by its transmission time (head-of-line blocking between
// streams). docs/PROTOCOL.md section 7 (the normative wire format) says why this is accepted.
package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Transport is the ordered, reliable message channel a Mux runs over; *braid.Session satisfies
// it. The Mux is its only user once started. A Send or SendNoCopy that fails because its ctx
// ended must not have sent any part of the message (the session's Send behaves so: its context
// governs only the wait for window).
type Transport interface {
	Send(ctx context.Context, msg []byte) error
	SendNoCopy(ctx context.Context, msg []byte, done func()) error
	Receive(ctx context.Context) ([]byte, error)
	Release(msg []byte)
	Abort()
}

// Window limits, bytes; pinned by TestWireConstantsPinned.
const (
	// MinWindow is the smallest per-stream window a peer may announce.
	MinWindow = 16 << 10
	// MaxWindowLimit is the largest per-stream window a peer may announce or a stream may reach.
	MaxWindowLimit = 1 << 30
)

// Config tunes a Mux. A nil *Config means all defaults; a zero field means that field's
// default.
type Config struct {
	// InitialWindow is each stream's receive window when it opens: what the peer may send on it
	// before we read any. Announced to the peer in HELLO. Default 64 KiB, at least MinWindow.
	InitialWindow int
	// MaxWindow is how far a stream's window may grow while its reader keeps up (the window
	// doubles whenever the reader has emptied the buffer by the time it grants more).
	// Default 16 MiB.
	MaxWindow int
	// MaxBuffered bounds, across all streams, the receive windows granted and not yet read: the
	// most stream data the peer can make this end hold. Windows grow beyond InitialWindow into
	// at most half of it, so that the other half always admits new streams. Default 128 MiB.
	MaxBuffered int64
	// MaxStreams is the most streams open at once on this end, whoever opened them, including
	// those waiting for Accept; the peer's OPEN beyond is refused with CodeTooManyStreams, and
	// Open beyond fails with ErrTooManyStreams. Default 1024.
	MaxStreams int
	// MessageSize is the largest session message the mux sends with stream data, frame header
	// included: writes are cut into DATA frames that fit. Set it to the session's chunk size, so
	// that a DATA message is one chunk (and never more than half a small session window).
	// Default 256 KiB (the session's default chunk size); 1 KiB to MaxData + 9.
	MessageSize int
	// Logger receives protocol violations (warning) and refusals the mux makes itself (info).
	// Default slog.Default().
	Logger *slog.Logger
	// Handler, if set, takes each stream the peer opens, instead of Accept (which then returns
	// only the mux's end): it is called on the mux's reader as the stream's OPEN arrives, and
	// must not block (it starts a goroutine to serve the stream). A server that serves streams
	// this way holds no goroutine waiting for them.
	Handler func(*Stream)
}

// withDefaults validates c and fills in defaults; every configuration it accepts works.
func (c *Config) withDefaults() (Config, error) {
	out := Config{InitialWindow: 64 << 10, MaxWindow: 16 << 20, MaxBuffered: 128 << 20, MaxStreams: 1024,
		MessageSize: 256 << 10, Logger: slog.Default()}
	if c != nil {
		pick(&out.InitialWindow, c.InitialWindow)
		pick(&out.MaxWindow, c.MaxWindow)
		pick(&out.MaxBuffered, c.MaxBuffered)
		pick(&out.MaxStreams, c.MaxStreams)
		pick(&out.MessageSize, c.MessageSize)
		if c.Logger != nil {
			out.Logger = c.Logger
		}
		out.Handler = c.Handler
	}
	switch {
	case out.InitialWindow < MinWindow || out.InitialWindow > MaxWindowLimit:
		return out, fmt.Errorf("mux: InitialWindow %d outside [%d, %d]", out.InitialWindow, MinWindow, MaxWindowLimit)
	case out.MaxWindow < out.InitialWindow || out.MaxWindow > MaxWindowLimit:
		return out, fmt.Errorf("mux: MaxWindow %d outside [InitialWindow %d, %d]", out.MaxWindow, out.InitialWindow, MaxWindowLimit)
	case out.MaxStreams < 1:
		return out, fmt.Errorf("mux: MaxStreams %d must be positive", out.MaxStreams)
	case out.MaxBuffered < int64(out.InitialWindow):
		return out, fmt.Errorf("mux: MaxBuffered %d is below InitialWindow %d", out.MaxBuffered, out.InitialWindow)
	case out.MessageSize < 1<<10 || out.MessageSize > MaxData+headerLen:
		return out, fmt.Errorf("mux: MessageSize %d outside [%d, %d]", out.MessageSize, 1<<10, MaxData+headerLen)
	}
	return out, nil
}

func pick[T int | int64](dst *T, v T) {
	if v != 0 {
		*dst = v
	}
}

// Mux is one end of a multiplexed session. Its methods are safe for concurrent use.
//
// Locks, outermost first: Stream.wmu (one writer per stream), Mux.openMu (from choosing a
// stream id to queueing its OPEN, so that OPENs leave in id order), Stream.mu (one stream's
// state), Mux.mu (streams, pending, nextID, lastPeer, peerWindow, err, readStop, readGen), outMu
// (the send queue, writer.go). Nothing else is taken while Mux.mu is held but outMu (fail marks
// the queue closed as it sets err), and nothing at all while outMu is. The receive budget is
// atomic.
type Mux struct {
	t      Transport
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // ends with the mux
	cancel context.CancelFunc
	odd    bool // this end opens odd stream ids (the dialing end)

	maxPayload int // the most data one DATA frame carries (MessageSize less the header)

	mu         sync.Mutex
	streams    map[uint32]*Stream
	pending    []*Stream   // opened by the peer, not yet Accepted, oldest first
	nextID     uint32      // the next id this end opens
	lastPeer   uint32      // the highest id the peer has opened
	peerWindow int         // the peer's per-stream initial window, from its HELLO
	err        error       // why the mux ended
	readStop   func() bool // stops the transport's AfterReady call that starts the next reader run
	readGen    uint64      // reader runs started: a run's waitReady stores readStop only if it is the latest

	openMu sync.Mutex

	budget     atomic.Int64  // receive windows granted and not yet read, all streams
	grown      atomic.Int64  // of which windows grown beyond InitialWindow (at most MaxBuffered/2)
	acceptKick chan struct{} // a stream joined pending
	hello      chan struct{} // closed when the peer's HELLO has arrived
	done       chan struct{} // closed when the mux has ended

	outMu       sync.Mutex
	outBuf      []byte        // frames waiting to be sent (writer.go), from bufpool
	outSending  bool          // a goroutine is sending outBuf
	outClosed   bool          // the mux has ended: nothing more is queued
	outQueued   int64         // bytes ever queued
	outSent     int64         // bytes ever handed to the transport
	outProgress chan struct{} // closed and replaced each time a message is sent, if outWatched
	outWatched  bool          // outProgress was handed to a waiter since it was made
	maxMessage  int           // the largest message of queued frames (MessageSize)

	stopped sync.WaitGroup
}

// Client starts a Mux on the dialing end of t (it opens odd stream ids).
func Client(t Transport, cfg *Config) (*Mux, error) { return start(t, nil, cfg, true) }

// Server starts a Mux on the accepting end of t (it opens even stream ids).
func Server(t Transport, cfg *Config) (*Mux, error) { return start(t, nil, cfg, false) }

// IsHello reports whether msg, a session's first message, opens a mux: a server uses it to tell
// a tunnel session from another use of the session before handing msg to ServerWith.
func IsHello(msg []byte) bool {
	f, _, err := next(msg)
	return err == nil && f.typ == typeHello
}

// ServerWith is Server for a transport whose first message the caller has already received
// (first, for which IsHello was true). The mux takes first, and Releases it.
func ServerWith(t Transport, first []byte, cfg *Config) (*Mux, error) {
	return start(t, first, cfg, false)
}

func start(t Transport, first []byte, cfg *Config, odd bool) (*Mux, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Mux{t: t, cfg: c, log: c.Logger, odd: odd, streams: make(map[uint32]*Stream),
		acceptKick: make(chan struct{}, 1), hello: make(chan struct{}), done: make(chan struct{}),
		outProgress: make(chan struct{}), nextID: 2,
		maxPayload: c.MessageSize - headerLen, maxMessage: c.MessageSize}
	if odd {
		m.nextID = 1
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// HELLO goes before anything else this end sends.
	if err := m.t.Send(m.ctx, appendHello(nil, uint32(m.cfg.InitialWindow))); err != nil {
		m.cancel()
		return nil, fmt.Errorf("mux: sending HELLO: %w", err)
	}
	m.stopped.Add(1)
	go m.readLoop(first)
	return m, nil
}

// Done is closed when the mux has ended: Close, the transport's end, or a protocol violation.
func (m *Mux) Done() <-chan struct{} { return m.done }

// AfterDone calls f on a goroutine of its own once the mux has ended (Err is set; Done may not
// be closed yet, nor every stream ended), without a goroutine waiting until then; stop, like
// context.AfterFunc's, keeps f from running and reports whether it did.
func (m *Mux) AfterDone(f func()) (stop func() bool) { return context.AfterFunc(m.ctx, f) }

// Err returns why the mux ended, or nil while it runs. A peer that closed its session cleanly
// ends the mux with io.EOF; Close ends it with ErrClosed.
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// NumStreams returns how many streams are open (including those waiting for Accept).
func (m *Mux) NumStreams() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

// Buffered returns the receive budget in use: the windows granted to the peer plus the data
// received and not yet read, over all streams. It is at most Config.MaxBuffered.
func (m *Mux) Buffered() int64 { return m.budget.Load() }

// Close ends the mux: every stream fails with ErrClosed. It does not close the transport, and
// it waits for the mux's own goroutines to stop.
func (m *Mux) Close() error {
	m.fail(ErrClosed)
	<-m.done // a fail already under way (another Close, the transport's end) has finished
	m.stopped.Wait()
	return nil
}

// fail ends the mux with err (the first reason wins) and wakes every stream.
func (m *Mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	streams := make([]*Stream, 0, len(m.streams))
	for _, s := range m.streams {
		streams = append(streams, s)
	}
	m.pending = nil
	stopRead := m.readStop
	// Nothing more is queued, nor a goroutine started to send it, from the moment err is seen:
	// a goroutine started after a Close's wait began would escape it.
	m.outMu.Lock()
	m.outClosed = true
	m.outMu.Unlock()
	m.mu.Unlock()
	m.cancel()
	if stopRead != nil && stopRead() {
		m.stopped.Done() // the reader's run that waited for the next message will not come
	}
	close(m.done)
	for _, s := range streams {
		s.end(m.endErr())
	}
}

// endErr is the error calls fail with once the mux has ended.
func (m *Mux) endErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endErrLocked()
}

func (m *Mux) endErrLocked() error {
	if errors.Is(m.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrSessionEnded, m.err)
}

// Open opens a stream to target, waiting for the peer's answer. A refusal is an *OpenError
// (errors.Is matches ErrRefused and the code's own sentinel: ErrNotAllowed, ErrTargetRefused,
// …). If ctx ends first, the stream is reset and ctx's error returned.
func (m *Mux) Open(ctx context.Context, target string) (*Stream, error) {
	if len(target) > MaxTarget || !utf8.ValidString(target) {
		return nil, fmt.Errorf("mux: target must be at most %d bytes of UTF-8", MaxTarget)
	}
	select {
	case <-m.hello:
	case <-m.done:
		return nil, m.endErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m.openMu.Lock()
	s, err := m.newLocal(target)
	if err != nil {
		m.openMu.Unlock()
		return nil, err
	}
	err = m.queue(s, appendOpen(nil, s.id, target), nil, true)
	m.openMu.Unlock()
	if err != nil {
		s.end(err)
		return nil, err
	}
	select {
	case err := <-s.opened:
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		s.Reset(CodeCancel, "open cancelled")
		return nil, ctx.Err()
	}
}

// newLocal registers a stream this end opens, if the limits allow.
func (m *Mux) newLocal(target string) (*Stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.err != nil:
		return nil, m.endErrLocked()
	case m.nextID > 1<<32-3:
		return nil, fmt.Errorf("%w: stream ids exhausted", ErrTooManyStreams)
	case len(m.streams) >= m.cfg.MaxStreams:
		return nil, fmt.Errorf("%w: %d open (MaxStreams)", ErrTooManyStreams, len(m.streams))
	case !m.take(int64(m.cfg.InitialWindow)):
		return nil, fmt.Errorf("%w: receive budget %d of %d bytes in use", ErrTooManyStreams, m.budget.Load(), m.cfg.MaxBuffered)
	}
	s := m.newStream(m.nextID, target, m.peerWindow, false)
	m.nextID += 2
	m.streams[s.id] = s
	return s, nil
}

// Accept returns the next stream the peer opened (streams the peer reset while they waited are
// skipped). Its Target says what the peer asked for; the caller must Confirm or Refuse it
// (Write, ReadFrom and CloseWrite Confirm it implicitly, Close refuses it). With
// Config.Handler set, no stream comes to Accept: it returns when the mux ends.
func (m *Mux) Accept(ctx context.Context) (*Stream, error) {
	for {
		m.mu.Lock()
		if len(m.pending) > 0 {
			s := m.pending[0]
			m.pending[0] = nil
			m.pending = m.pending[1:]
			if len(m.pending) > 0 {
				kick(m.acceptKick) // another Accept may be waiting
			}
			m.mu.Unlock()
			return s, nil
		}
		m.mu.Unlock()
		select {
		case <-m.acceptKick:
		case <-m.done:
			return nil, m.endErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take reserves n bytes of the receive budget, or reports that they do not fit.
func (m *Mux) take(n int64) bool {
	for {
		used := m.budget.Load()
		if used+n > m.cfg.MaxBuffered {
			return false
		}
		if m.budget.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (m *Mux) give(n int64) {
	if m.budget.Add(-n) < 0 {
		panic("mux: receive budget below zero")
	}
}

// grow reserves n bytes of budget for a window to grow by. Windows grow into at most half of
// MaxBuffered, so that the other half always admits new streams at their initial window.
func (m *Mux) grow(n int64) bool {
	for {
		g := m.grown.Load()
		if g+n > m.cfg.MaxBuffered/2 {
			return false
		}
		if m.grown.CompareAndSwap(g, g+n) {
			break
		}
	}
	if !m.take(n) {
		m.grown.Add(-n)
		return false
	}
	return true
}

// remove forgets stream s: no more frames are expected for it, and it no longer waits for
// Accept.
func (m *Mux) remove(s *Stream) {
	m.mu.Lock()
	if m.streams[s.id] == s {
		delete(m.streams, s.id)
	}
	if i := slices.Index(m.pending, s); i >= 0 {
		m.pending = slices.Delete(m.pending, i, i+1)
	}
	m.mu.Unlock()
}

// ctrl queues frames that must not wait for the transport (WINDOW, RST, refusals, the FIN of
// Close), from goroutines that may hold a stream's lock.
func (m *Mux) ctrl(s *Stream, frames []byte) { m.queue(s, frames, nil, false) }

// readLoop receives the transport's messages and handles them, msg (if not nil) first. It is a
// run of the mux's reader, counted in stopped; runs never overlap. With a transport that has
// AfterReady, a run ends once no message has come for readLinger, and the next starts when one
// is ready (waitReady): an idle mux holds no reader goroutine.
func (m *Mux) readLoop(msg []byte) {
	handedOn := false // the count in stopped passed to the next run
	defer func() {
		if !handedOn {
			m.stopped.Done()
		}
	}()
	m.mu.Lock()
	m.readGen++
	gen := m.readGen
	m.mu.Unlock()
	first := true // the peer's HELLO is yet to come (a run may end before it does)
	select {
	case <-m.hello:
		first = false
	default:
	}
	ctx := m.ctx
	ar, _ := m.t.(readyWaiter)
	var l *linger
	if ar != nil {
		ctx, l = newLinger(m.ctx, readLinger)
		defer l.stop()
	}
	for ; ; first = false {
		if msg == nil {
			var err error
			if msg, err = m.t.Receive(ctx); err != nil {
				if l != nil && ctx.Err() != nil && m.ctx.Err() == nil {
					m.waitReady(ar, gen)
					handedOn = true
					return
				}
				if !errors.Is(err, io.EOF) && m.ctx.Err() == nil {
					m.log.Debug("mux: session receive ended", "err", err)
				}
				m.fail(err)
				return
			}
			if l != nil {
				l.msgs.Add(1)
			}
		}
		kept, err := m.handle(msg, first)
		if !kept {
			m.t.Release(msg)
		}
		if err != nil {
			m.log.Warn("mux: protocol violation, aborting the session", "err", err)
			m.fail(err)
			m.t.Abort()
			return
		}
		msg = nil
	}
}

// readyWaiter is a Transport that calls f once a message is ready (or the transport has
// ended), as *braid.Session's AfterReady does; stop, like context.AfterFunc's, keeps f from
// running and reports whether it did.
type readyWaiter interface {
	AfterReady(f func()) (stop func() bool)
}

// readLinger is how long a reader run waits in Receive for the next message before it leaves
// the wait to the transport's AfterReady (between readLinger and twice that, see linger). While
// messages keep coming, the reader stays in Receive, which reads the session's path itself;
// after a pause the next message costs a goroutine's start, a few microseconds beside a pause
// of 100 ms. A second, tried first, kept more readers alive through a burst of new sessions,
// whose stacks a server keeps: 73-75 KiB per idle tunnel session at 1,000 against 67 (bench
// --sessions 1000 --tunnel, two runs each). braid serve lingers as long between transfers
// (serveLinger). A variable for tests.
var readLinger = 100 * time.Millisecond

// waitReady has a new reader run start once the transport has a message ready, unless the mux
// ends first. The caller, run gen, passes its count in stopped to that run; it is given back
// here or by fail if the run will not come. The run may start at once, and even wait again
// itself before this stores its stop: a stop is stored only by the latest run, or fail would
// call a spent one and Close wait for ever.
func (m *Mux) waitReady(ar readyWaiter, gen uint64) {
	stop := ar.AfterReady(func() { m.readLoop(nil) })
	m.mu.Lock()
	if m.err == nil {
		if m.readGen == gen {
			m.readStop = stop // fail stops it
		}
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	if stop() { // fail came first and found no stop to call
		m.stopped.Done()
	}
}

// linger cancels a context once no message has come for a while: a timer that, each time it
// fires (every d), looks whether a message came since it last looked (msgs), and cancels if
// none did. A run's messages cost it an atomic add each, not a timer reset.
type linger struct {
	msgs    atomic.Uint64
	mu      sync.Mutex // guards seen, stopped and timer (against the timer's first firing)
	seen    uint64
	stopped bool
	timer   *time.Timer
	d       time.Duration
	cancel  context.CancelFunc
}

func newLinger(parent context.Context, d time.Duration) (context.Context, *linger) {
	ctx, cancel := context.WithCancel(parent)
	l := &linger{d: d, cancel: cancel}
	l.mu.Lock()
	l.timer = time.AfterFunc(d, l.fire)
	l.mu.Unlock()
	return ctx, l
}

func (l *linger) fire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if n := l.msgs.Load(); n != l.seen {
		l.seen = n
		l.timer.Reset(l.d)
		return
	}
	l.cancel()
}

// stop ends the linger: its timer and its context.
func (l *linger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.timer.Stop()
	l.mu.Unlock()
	l.cancel()
}

// handle processes every frame of one message. kept reports that a stream now holds msg
// itself (a lone large DATA frame is queued without a copy).
func (m *Mux) handle(msg []byte, first bool) (kept bool, err error) {
	rest := msg
	for len(rest) > 0 {
		var f frame
		if f, rest, err = next(rest); err != nil {
			if first {
				return kept, fmt.Errorf("%w: %w", ErrNotMux, err)
			}
			return kept, err
		}
		if first != (f.typ == typeHello) {
			if first {
				return kept, fmt.Errorf("%w: first frame is %v", ErrNotMux, f.typ)
			}
			return kept, protoErr("second HELLO")
		}
		switch f.typ {
		case typeHello:
			m.mu.Lock()
			m.peerWindow = int(f.window())
			m.mu.Unlock()
			close(m.hello)
			first = false
			continue
		case typeOpen:
			if err := m.onOpen(f); err != nil {
				return kept, err
			}
			continue
		}
		s, err := m.lookup(f)
		if err != nil {
			return kept, err
		}
		if s == nil {
			continue // a late frame for a stream already forgotten
		}
		var keep []byte
		if f.typ == typeData && !kept && len(rest) == 0 && len(f.body) >= len(msg)/2 {
			keep = msg
		}
		took, err := s.onFrame(f, keep)
		if err != nil {
			return kept, fmt.Errorf("stream %d: %w", s.id, err)
		}
		kept = kept || took
	}
	return kept, nil
}

// lookup finds the stream a frame is for. A frame for a stream already forgotten (ended here
// while the peer was sending) returns nil and no error; one for a stream never opened is a
// protocol violation.
func (m *Mux) lookup(f frame) (*Stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.streams[f.stream]; s != nil {
		return s, nil
	}
	if m.ours(f.stream) && f.stream < m.nextID || !m.ours(f.stream) && f.stream <= m.lastPeer {
		return nil, nil
	}
	return nil, protoErr("%v for stream %d, which was never opened", f.typ, f.stream)
}

// ours reports whether this end opens stream id.
func (m *Mux) ours(id uint32) bool { return (id%2 == 1) == m.odd }

func (m *Mux) onOpen(f frame) error {
	if m.ours(f.stream) {
		return protoErr("OPEN for stream %d, an id of ours", f.stream)
	}
	target := string(f.body)
	m.mu.Lock()
	if f.stream <= m.lastPeer {
		m.mu.Unlock()
		return protoErr("OPEN for stream %d after %d", f.stream, m.lastPeer)
	}
	m.lastPeer = f.stream
	if m.err != nil {
		m.mu.Unlock()
		return nil
	}
	if len(m.streams) >= m.cfg.MaxStreams || !m.take(int64(m.cfg.InitialWindow)) {
		n := len(m.streams)
		m.mu.Unlock()
		m.log.Info("mux: stream refused", "stream", f.stream, "target", target, "open", n, "budget", m.budget.Load())
		m.ctrl(nil, appendCoded(nil, typeReply, f.stream, CodeTooManyStreams, fmt.Sprintf("%d streams open", n)))
		return nil
	}
	s := m.newStream(f.stream, target, m.peerWindow, true)
	m.streams[s.id] = s
	if m.cfg.Handler != nil {
		m.mu.Unlock()
		m.cfg.Handler(s)
		return nil
	}
	m.pending = append(m.pending, s)
	m.mu.Unlock()
	kick(m.acceptKick)
	return nil
}

// frameBoundary returns the length of the longest run of whole frames at the start of b that
// is at most limit bytes long (at least one frame, whatever its length).
func frameBoundary(b []byte, limit int) int {
	n := 0
	for n < len(b) {
		f := headerLen + int(frameBodyLen(b[n:]))
		if n > 0 && n+f > limit {
			break
		}
		n += f
	}
	return n
}
