package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/braidnet/braid/frame"
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
	if len(l.cfg.ServerID) > 0 {
		l.log.Info("listening", "addr", l.ln.Addr().String(), "memory_budget", l.table.memLimit, "server_id", hex.EncodeToString(l.cfg.ServerID), "server_id_config", l.cfg.ServerIDConfig)
	} else {
		l.log.Info("listening", "addr", l.ln.Addr().String(), "memory_budget", l.table.memLimit)
	}
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
		go l.handle(c, a)
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
//
// What admit and track counted for the connection is given back (done) when the handler returns,
// or, once the connection is a session's path, when the path ends: its reader may doze (doze.go),
// ending this goroutine before the path.
func (l *Listener) handle(raw net.Conn, a *admission) {
	done := func() {
		l.forget(raw)
		a.done()
		l.handlers.Done() // last: Close waits for it, and then finds the counts given back
	}
	pathOwns := false
	defer func() {
		if !pathOwns {
			done()
		}
	}()
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
	case err == nil && !l.advance(raw, handshaking):
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
	if l.tlsConf == nil && secure.LooksLikeTLS(hdr[:]) {
		// No frame starts so (its length would be hundreds of MB): a TLS client.
		if ok, n := l.refusals.allow(time.Now()); ok {
			log.Warn("connection refused", "reason", "the client speaks TLS and this server is plain TCP (insecure): start the client insecure too, or the server with TLS", "others_not_logged", n)
		}
		c.Close()
		return
	}
	if t := wire.Type(hdr[4]); t != wire.TypeSessionNew && t != wire.TypeSessionAttach {
		if l.cfg.requiresClientAuth() && !sec.clientCert {
			// The frame protocol has no token: a server that accepts only authenticated
			// clients serves it to those with a trusted certificate alone.
			if ok, n := l.refusals.allow(time.Now()); ok {
				log.Warn("frame connection refused", "reason", "client not authenticated", "others_not_logged", n)
			}
			hc.fail(fmt.Errorf("%w: the frame protocol needs a trusted client certificate on this server", ErrUnauthorized))
			c.Close()
			return
		}
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
	err = l.table.handshake(hc, markPath, done)
	if pathOwns = errors.Is(err, errPathEnded); !pathOwns {
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
	// In parallel: an Abort may wait up to a second for a peer that reads nothing to take its
	// ERROR.
	var wg sync.WaitGroup
	for _, s := range l.table.shut() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Abort()
		}()
	}
	wg.Wait()
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
