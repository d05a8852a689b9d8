package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// Listener accepts multipath sessions. It also answers the single-path frame protocol (PING,
// TEXT, DATA) on connections that do not open or attach to a session, handing them to a
// frame.Server, so one address serves both kinds of peer.
//
// Each accepted connection has one goroutine: it reads the first frame header within
// HandshakeTimeout and either runs the session handshake (and then the path's reader) or
// serves the frame protocol.
type Listener struct {
	cfg    *Config
	log    *slog.Logger
	ln     net.Listener
	frames *frame.Server
	table  *sessionTable

	refusals logLimiter // one "handshake refused" warning per interval; the rest are counted
	counters listenerCounters

	tlsConf     *tls.Config // nil with Insecure
	fingerprint string      // of the certificate presented, if known

	mu       sync.Mutex
	conns    map[net.Conn]connState // connections not handed to frames
	handlers sync.WaitGroup         // one per connection goroutine, and the accept loop
	closed   bool
	open     int            // connections counted against maxConns (admit)
	maxConns int            // MaxConns, lowered to what the open-file limit allows
	perIP    map[string]int // and against MaxConnsPerIP, by remote IP
	pending  int            // connections not yet authenticated, against MaxHandshakes
	pendIP   map[string]int // and against MaxHandshakesPerIP
}

// noDeadline clears a connection deadline.
var noDeadline time.Time

// Listen listens on the TCP address addr and accepts sessions there.
func Listen(addr string, cfg *Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l, err := NewListener(ln, cfg)
	if err != nil {
		ln.Close()
	}
	return l, err
}

// NewListener accepts sessions on ln, which the Listener then owns.
func NewListener(ln net.Listener, cfg *Config) (*Listener, error) {
	return newListener(ln, cfg, nil)
}

// newListener is NewListener with test hooks (nil outside tests) for its sessions.
func newListener(ln net.Listener, cfg *Config, hooks *testHooks) (*Listener, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	frames, err := frame.NewServer(c.frameConfig())
	if err != nil {
		return nil, err
	}
	l := &Listener{cfg: c, log: c.Logger, ln: ln, frames: frames, conns: make(map[net.Conn]connState),
		perIP: make(map[string]int), pendIP: make(map[string]int), maxConns: connLimit(c.MaxConns), refusals: logLimiter{interval: refusalLogInterval}}
	l.table = &sessionTable{
		cfg:       c,
		counters:  &l.counters,
		hooks:     hooks,
		byID:      make(map[wire.SessionID]*Session),
		pendingIP: make(map[string]int),
		memLimit:  memoryBudget(c),
		accept:    make(chan *Session, c.AcceptBacklog),
		closed:    make(chan struct{}),
	}
	if l.maxConns < c.MaxConns {
		l.log.Info("connection limit lowered to the open-file limit", "max_conns", l.maxConns, "configured", c.MaxConns)
	}
	if err := l.setupTLS(); err != nil {
		return nil, err
	}
	l.handlers.Add(1)
	go l.serve()
	return l, nil
}

// serve accepts connections until the listener closes. Transient failures (too many open files)
// are retried with backoff instead of ending the listener.
func (l *Listener) serve() {
	defer l.handlers.Done()
	l.log.Info("listening", "addr", l.ln.Addr().String(), "memory_budget", l.table.memLimit)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			l.log.Error("accept failed; listener stops", "err", err)
			return
		}
		backoff = 0
		ip := remoteIP(c)
		if err := l.admit(ip); err != nil {
			// Refused before anything is allocated for it: no goroutine, no buffer.
			c.Close()
			l.counters.connLimit.Add(1)
			if ok, n := l.refusals.allow(time.Now()); ok {
				l.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "reason", err, "others_not_logged", n)
			}
			continue
		}
		a := &admission{l: l, ip: ip}
		if !l.track(c) {
			a.done()
			c.Close()
			return
		}
		go func() {
			defer a.done()
			l.handle(c, a)
		}()
	}
}

// isTemporaryAccept reports a transient accept failure (too many open files, a connection
// aborted before accept).
func isTemporaryAccept(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *Listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// track counts c as one of the listener's connections, unless it is closing.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = accepted
	l.handlers.Add(1)
	return true
}

func (l *Listener) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// connState is where a connection of the Listener is.
type connState uint8

const (
	accepted      connState = iota // its handler has not started
	tlsHandshake                   // in the TLS handshake, bounded by HandshakeTimeout
	awaitingFirst                  // its first frame header has not arrived; Shutdown interrupts it
	handshaking                    // in the session handshake, bounded by HandshakeTimeout
	sessionPath                    // a session's path: its session closes it
)

// errListenerShutdown refuses connections whose first frame arrives during Shutdown.
var errListenerShutdown = fmt.Errorf("%w: server shutting down", ErrShuttingDown)

// advance moves c to its next state, arming the handshake deadline (which covers TLS and the
// session handshake) on the first step. It reports false once the listener is closing, when a
// connection that has not started its session handshake is refused instead.
func (l *Listener) advance(c net.Conn, to connState) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed && to != sessionPath {
		return false
	}
	if to == tlsHandshake {
		c.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	}
	if _, ok := l.conns[c]; ok {
		l.conns[c] = to
	}
	return true
}

// handle runs c's TLS handshake, reads its first frame header and dispatches: a session
// handshake here, anything else to the frame server (with the header replayed in front of the
// stream).
func (l *Listener) handle(raw net.Conn, a *admission) {
	defer l.handlers.Done()
	defer l.forget(raw)
	log := l.log.With("remote", raw.RemoteAddr().String())
	if !l.advance(raw, tlsHandshake) {
		if l.tlsConf == nil {
			(&handshakeConn{cfg: l.cfg, c: raw, w: wire.NewWriter(raw), log: log}).fail(errListenerShutdown)
		}
		raw.Close()
		return
	}
	// The TLS handshake is not interrupted by Shutdown (so that the refusal can be sent inside
	// TLS); HandshakeTimeout bounds it.
	c, sec, err := l.serverTLS(raw)
	if err != nil {
		l.counters.tls.Add(1)
		if ok, n := l.refusals.allow(time.Now()); ok {
			log.Warn("TLS handshake failed", "reason", err, "others_not_logged", n)
		}
		raw.Close()
		return
	}
	hc := &handshakeConn{cfg: l.cfg, c: c, w: wire.NewWriter(c), log: log, sec: sec}
	if !l.advance(raw, awaitingFirst) {
		hc.fail(errListenerShutdown)
		c.Close()
		return
	}
	var hdr [wire.HeaderSize]byte
	_, err = io.ReadFull(c, hdr[:])
	switch {
	case err == nil && !l.advance(c, handshaking):
		err = hc.fail(errListenerShutdown)
	case isTimeout(err) && l.isClosed():
		err = hc.fail(errListenerShutdown)
	case isTimeout(err):
		err = hc.fail(fmt.Errorf("%w: no frame within %v", ErrTimeout, l.cfg.HandshakeTimeout))
	}
	if err != nil {
		hc.log.Debug("connection refused before its first frame", "reason", err)
		c.Close()
		return
	}
	if t := wire.Type(hdr[4]); t != wire.TypeSessionNew && t != wire.TypeSessionAttach {
		// The frame server owns it from here: its own deadlines, Shutdown and Close.
		c.SetDeadline(noDeadline)
		l.forget(raw)
		a.authenticated()
		l.frames.ServeConn(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(hdr[:]), c)})
		return
	}
	// Before the session handshake succeeds a frame is read only if it is small: handshake
	// frames are, and nobody may make the server allocate much before it knows who they are.
	hc.r = wire.NewReaderSize(io.MultiReader(bytes.NewReader(hdr[:]), c), l.cfg.MaxFrameSize, readBufferSize(c))
	hc.r.SetMaxPayload(maxHandshakeFrame)
	markPath := func() {
		l.advance(raw, sessionPath)
		a.authenticated()
		hc.r.SetMaxPayload(l.cfg.MaxFrameSize)
	}
	if err := l.table.handshake(hc, markPath); !errors.Is(err, errPathEnded) {
		if ok, n := l.refusals.allow(time.Now()); ok {
			hc.log.Warn("handshake refused", "reason", err, "others_not_logged", n)
		}
		c.Close()
	}
	// A path's connection is its own: the path closes it when it is done with it.
}

// replayConn is a connection whose first bytes were already read: Read returns them first.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handshakeConn is a connection running the session handshake.
type handshakeConn struct {
	cfg *Config
	c   net.Conn // the *tls.Conn, or the TCP connection with Insecure
	r   *wire.Reader
	w   *wire.Writer
	log *slog.Logger
	sec pathSecurity
}

// writeNow writes one frame at once, within the write timeout.
func (hc *handshakeConn) writeNow(t wire.Type, payload []byte) error {
	hc.c.SetWriteDeadline(time.Now().Add(hc.cfg.WriteTimeout))
	return hc.w.WriteFrame(t, payload)
}

// fail tells the peer why its handshake is refused (best effort, within a second) and returns
// cause.
func (hc *handshakeConn) fail(cause error) error {
	var b [2 + wire.MaxErrorMessage]byte
	payload := wire.AppendError(b[:0], wire.ErrorFrame{Code: codeFor(cause), Message: cause.Error()})
	hc.c.SetWriteDeadline(time.Now().Add(min(hc.cfg.WriteTimeout, time.Second)))
	if err := hc.w.WriteFrame(wire.TypeError, payload); err != nil {
		hc.log.Debug("could not send ERROR frame", "err", err)
	}
	return cause
}

// Accept waits for the next session a client opens.
func (l *Listener) Accept(ctx context.Context) (*Session, error) {
	select {
	case s := <-l.table.accept:
		return s, nil
	case <-l.table.closed:
		return nil, ErrServerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addr returns the address the Listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// stop stops accepting.
func (l *Listener) stop() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.ln.Close()
}

// closeConns closes every connection the listener still holds.
func (l *Listener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// interruptIdle ends the wait of connections whose first frame has not arrived; they are told
// the server is shutting down. Handshakes in progress finish (a new session is refused, the
// table being shut) within HandshakeTimeout.
func (l *Listener) interruptIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, st := range l.conns {
		if st == awaitingFirst {
			c.SetReadDeadline(time.Now())
		}
	}
}

// Close stops accepting and aborts every session and connection at once.
func (l *Listener) Close() error {
	for _, s := range l.table.shut() {
		s.Abort()
	}
	l.stop()
	l.closeConns()
	l.frames.Close()
	l.handlers.Wait()
	return nil
}

// Shutdown stops accepting, closes every session gracefully (each delivers what it has sent),
// tells connections still waiting for their first frame that it is shutting down, lets
// handshakes in progress finish (new sessions are refused) and shuts the frame connections down
// as frame.Server.Shutdown does. If ctx ends first, sessions still closing are aborted (their
// peers see ErrShuttingDown), remaining connections are closed and ctx's error is returned.
func (l *Listener) Shutdown(ctx context.Context) error {
	sessions := l.table.shut()
	l.stop()
	l.interruptIdle()
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Close()
		}()
	}
	closed := make(chan struct{})
	go func() {
		wg.Wait()
		close(closed)
	}()
	var late error
	select {
	case <-closed:
	case <-ctx.Done():
		// Out of time: abort what is still closing; Close returns once its session has ended.
		late = ctx.Err()
		for _, s := range sessions {
			go s.abort(fmt.Errorf("%w: server shutdown deadline", ErrSessionClosed), wire.CodeShuttingDown)
		}
		<-closed
	}
	err := l.frames.Shutdown(ctx)
	if late != nil {
		err = late
	}
	if err != nil {
		l.closeConns() // out of time: handshakes still running end now
	}
	l.handlers.Wait()
	return err
}

// Sessions returns the number of sessions the Listener holds, accepted or not.
func (l *Listener) Sessions() int {
	l.table.mu.Lock()
	defer l.table.mu.Unlock()
	return len(l.table.byID)
}

// sessionTable is a server's sessions, by id.
type sessionTable struct {
	cfg        *Config
	counters   *listenerCounters // the Listener's
	hooks      *testHooks        // for each session; nil outside tests
	mu         sync.Mutex
	byID       map[wire.SessionID]*Session
	pendingIP  map[string]int // sessions not yet established, by source address
	memLimit   int64          // the memory budget for receive windows (memoryBudget)
	memGranted int64          // the windows granted to sessions held
	accept     chan *Session
	closed     chan struct{}
	isClosed   bool
}

// shut stops new sessions and returns the existing ones.
func (t *sessionTable) shut() []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.isClosed {
		t.isClosed = true
		close(t.closed)
	}
	var all []*Session
	for _, s := range t.byID {
		all = append(all, s)
	}
	return all
}

// errPathEnded ends a connection handler whose connection served as a session path.
var errPathEnded = errors.New("session path ended")

// handshake handles a connection whose first frame is SESSION_NEW or SESSION_ATTACH. On success
// the connection becomes a path and this call runs its reader until the path ends.
func (t *sessionTable) handshake(sc *handshakeConn, markPath func()) error {
	f, err := sc.r.ReadFrame()
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("%w: no handshake within %v", ErrTimeout, t.cfg.HandshakeTimeout)
		}
		return t.refuse(sc, f.Type, err)
	}
	var (
		s         *Session
		idx, slot int
	)
	if f.Type == wire.TypeSessionNew {
		s, err = t.open(sc, f.Payload)
	} else {
		s, idx, slot, err = t.attach(sc, f.Payload)
	}
	if err != nil {
		return t.refuse(sc, f.Type, err)
	}
	if h := t.hooks; h != nil && h.attaching != nil && f.Type == wire.TypeSessionAttach {
		h.attaching(slot)
	}
	markPath()
	p := newPath(s, idx, slot, PathSpec{}, sc.c, sc.r, sc.w)
	p.reserved = true
	p.kex = sc.sec.kex
	if err := s.addPath(p); err != nil {
		s.unreserve(slot)
		if f.Type == wire.TypeSessionNew {
			s.end(err)
		}
		return t.refuse(sc, f.Type, err)
	}
	sc.c.SetDeadline(noDeadline)
	if f.Type == wire.TypeSessionNew {
		t.offer(s)
	}
	s.readPath(p)
	return errPathEnded
}

// refuse tells the peer why its handshake (a frame of type t) is refused, counts it by its code
// (and as a refused session if it was SESSION_NEW), and returns cause.
func (t *sessionTable) refuse(sc *handshakeConn, typ wire.Type, cause error) error {
	t.counters.refuse(codeFor(cause))
	if typ == wire.TypeSessionNew {
		t.counters.refused.Add(1)
	}
	return sc.fail(cause)
}

// open creates a session from a SESSION_NEW payload and answers SESSION_ACCEPT.
func (t *sessionTable) open(sc *handshakeConn, payload []byte) (*Session, error) {
	m, err := wire.ParseSessionNew(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	cs := int(m.ChunkSize)
	mode, modeErr := disperse.FromWire(m.Mode, m.K, m.N)
	switch {
	case m.Version != wire.ProtocolVersion:
		return nil, fmt.Errorf("%w: version %d, this server speaks %d", ErrBadOptions, m.Version, wire.ProtocolVersion)
	case modeErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, modeErr)
	case mode.N > t.cfg.MaxPaths:
		return nil, fmt.Errorf("%w: mode %s needs %d paths, this server allows %d", ErrBadOptions, mode, mode.N, t.cfg.MaxPaths)
	case mode.Coded() && cs >= MinChunkSize && cs <= MaxChunkSize && wire.PieceHeaderSize+mode.PieceSize(cs) > t.cfg.MaxFrameSize:
		return nil, fmt.Errorf("%w: pieces of %d-byte chunks exceed the frame limit %d", ErrBadOptions, cs, t.cfg.MaxFrameSize)
	case cs < MinChunkSize || cs > MaxChunkSize || cs+wire.ChunkHeaderSize > t.cfg.MaxFrameSize:
		return nil, fmt.Errorf("%w: chunk size %d outside %d..%d", ErrBadOptions, cs, MinChunkSize, min(MaxChunkSize, t.cfg.MaxFrameSize-wire.ChunkHeaderSize))
	case m.Window < uint64(2*reasm.Charge(1, mode.ChunkCharge(cs))):
		return nil, fmt.Errorf("%w: window %d below two chunks", ErrBadOptions, m.Window)
	case t.cfg.requiresClientAuth() && !sc.sec.clientCert &&
		(t.cfg.Token == "" || subtle.ConstantTimeCompare(m.Token, []byte(t.cfg.Token)) != 1):
		return nil, fmt.Errorf("%w: no trusted client certificate or token", ErrUnauthorized)
	}
	var terms sessionTerms
	rand.Read(terms.id[:])
	rand.Read(terms.token[:])
	terms.key = sc.sec.key // nil without TLS: the token keys attach proofs
	terms.chunkSize, terms.peerWindow, terms.mode = cs, int64(min(m.Window, 1<<62)), mode
	grant, err := t.grantWindow(2 * reasm.Charge(1, mode.ChunkCharge(cs)))
	if err != nil {
		return nil, err
	}
	terms.window = grant
	s, err := newSession(t.cfg, terms)
	if err != nil {
		t.returnWindow(grant)
		return nil, err
	}
	claim := &pendingClaim{t: t, ip: remoteIP(sc.c)}
	s.onEstablished = claim.release
	s.onEnd = func() {
		claim.release()
		t.returnWindow(grant)
		t.remove(s)
	}
	s.hooks = t.hooks
	s.onViolation = t.counters.refuse
	if err := t.register(sc, s, cs, claim); err != nil {
		s.end(err) // stops its monitor and forgets it
		return nil, err
	}
	t.counters.opened.Add(1)
	s.log.Info("session opened", "remote", sc.c.RemoteAddr().String(), "chunk_size", cs, "mode", mode.String(), "key_exchange", sc.sec.kex)
	return s, nil
}

// register makes a new session attachable and answers SESSION_ACCEPT.
func (t *sessionTable) register(sc *handshakeConn, s *Session, cs int, claim *pendingClaim) error {
	if _, err := s.reserveIndex(1, 0); err != nil { // index 0, slot 0: this connection's
		return err
	}
	// Register before answering: the client attaches its other paths as soon as it reads
	// SESSION_ACCEPT. Nobody can attach earlier, since only the answer reveals id and token.
	t.mu.Lock()
	switch {
	case t.isClosed:
		t.mu.Unlock()
		return fmt.Errorf("%w: server shutting down", ErrShuttingDown)
	case len(t.byID) >= t.cfg.MaxSessions:
		t.mu.Unlock()
		return fmt.Errorf("%w: %d sessions", ErrTooManySessions, t.cfg.MaxSessions)
	case t.pendingIP[claim.ip] >= t.cfg.MaxPendingSessionsPerIP:
		n := t.pendingIP[claim.ip]
		t.mu.Unlock()
		return fmt.Errorf("%w: %d sessions from %s not yet established, MaxPendingSessionsPerIP %d", ErrTooManySessions, n, claim.ip, t.cfg.MaxPendingSessionsPerIP)
	}
	t.byID[s.id] = s
	t.pendingIP[claim.ip]++
	claim.counted = true
	t.mu.Unlock()
	acc := wire.AppendSessionAccept(nil, wire.SessionAccept{ID: s.id, Token: s.token, PathIndex: 0,
		MaxPaths: uint16(t.cfg.MaxPaths), ChunkSize: uint32(cs), Window: uint64(s.window)})
	return sc.writeNow(wire.TypeSessionAccept, acc)
}

// grantWindow takes a new session's receive window from the memory budget: SessionWindow, or
// what is left if less, and at least least; otherwise the session is refused.
func (t *sessionTable) grantWindow(least int64) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := min(t.cfg.SessionWindow, t.memLimit-t.memGranted)
	if w < least {
		return 0, fmt.Errorf("%w: the memory budget (MaxMemory %d bytes) is granted to the sessions held", ErrTooManySessions, t.memLimit)
	}
	t.memGranted += w
	return w, nil
}

// returnWindow gives a session's window back to the budget.
func (t *sessionTable) returnWindow(w int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.memGranted -= w
}

// memoryBudget is MaxMemory, or its default: half the machine's RAM, or, where that is not
// known, what MaxSessions full windows need.
func memoryBudget(c *Config) int64 {
	if c.MaxMemory > 0 {
		return c.MaxMemory
	}
	if ram := physicalMemory(); ram > 0 {
		return ram / 2
	}
	return int64(c.MaxSessions) * c.SessionWindow
}

// pendingClaim is a new session's place in its source address's count of sessions not yet
// established (no frame since SESSION_ACCEPT), given back once, when the first frame arrives or
// the session ends, whichever is first. Established sessions do not count, so a flood of
// SESSION_NEW from one address can neither fill MaxSessions nor push anyone out.
type pendingClaim struct {
	t       *sessionTable
	ip      string
	counted bool // guarded by t.mu
}

func (c *pendingClaim) release() {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if !c.counted {
		return
	}
	c.counted = false
	uncount(c.t.pendingIP, c.ip)
}

// offer hands a new session, its first path running, to Accept; with the backlog full the
// session is refused.
func (t *sessionTable) offer(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case t.accept <- s:
		return
	default:
	}
	go s.abort(fmt.Errorf("%w: accept backlog of %d is full", ErrTooManySessions, cap(t.accept)), wire.CodeTooManySessions)
}

// attach adds a connection to an existing session from a SESSION_ATTACH payload and answers
// ATTACH_OK. A live path in the same slot is one the client has given up on (it re-dials only
// lost paths): addPath ends it once the new one has joined, so that an attach refused or failed
// before then leaves it alone. The slot is the handshake's until then: a second attach in it is
// refused (TOO_MANY_PATHS), and the client's re-dial tries again.
func (t *sessionTable) attach(sc *handshakeConn, payload []byte) (*Session, int, int, error) {
	a, err := wire.ParseSessionAttach(payload)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	t.mu.Lock()
	s := t.byID[a.ID]
	t.mu.Unlock()
	if s == nil {
		return nil, 0, 0, fmt.Errorf("%w: %x", ErrUnknownSession, a.ID[:8])
	}
	if !secure.CheckProof(a.Proof[:], s.key, a.ID[:], a.Slot, sc.sec.binding) {
		return nil, 0, 0, fmt.Errorf("%w for session %s", ErrBadToken, s.ID()) // logged, at a bounded rate, by handle
	}
	slot := int(a.Slot)
	if limit := s.slotLimit(t.cfg.MaxPaths); slot >= limit {
		return nil, 0, 0, fmt.Errorf("%w: slot %d, want 0..%d", ErrBadOptions, slot, limit-1)
	}
	idx, err := s.reserveIndex(t.cfg.MaxPaths, slot)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := sc.writeNow(wire.TypeAttachOK, wire.AppendAttachOK(nil, uint16(idx))); err != nil {
		s.unreserve(slot)
		return nil, 0, 0, err
	}
	return s, idx, slot, nil
}

func (t *sessionTable) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[s.id] == s {
		delete(t.byID, s.id)
	}
}
