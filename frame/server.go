package frame

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/braidnet/braid/internal/wire"
)

// serverReadBuffer is the read buffer of each server connection. It bounds the reads that carry
// DATA payloads (counted, not stored) and is most of an idle session path's memory; 16 KiB costs
// DATA throughput nothing measurable on loopback (see BenchmarkUpload).
const serverReadBuffer = 16 << 10

// Server answers Braid's frame protocol on any number of connections: PING with PONG, TEXT and
// DATA with ACK. Each connection has its own goroutine and its own limits; a connection that
// sends a malformed or oversize frame, or stalls, is sent an ERROR frame and closed without
// affecting the others.
type Server struct {
	cfg *Config
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	shutdown  atomic.Bool // set under mu; read without it by connection handlers
	handlers  sync.WaitGroup
}

// NewServer returns a Server with the given configuration (nil for defaults).
func NewServer(cfg *Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:       c,
		log:       c.Logger,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*serverConn]struct{}),
	}, nil
}

// Serve accepts connections on ln until Shutdown or Close, then returns ErrServerClosed. It
// closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	s.log.Info("listening", "addr", ln.Addr().String())
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("braid: accept: %w", err)
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
	}
}

// isTemporaryAccept reports a transient accept failure (too many open files, a connection
// aborted before accept), after which Serve retries instead of returning.
func isTemporaryAccept(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) closing() bool { return s.shutdown.Load() }

// ServeConn serves the frame protocol on one connection that the caller has accepted, on the
// calling goroutine, until the connection ends, and closes it. Shutdown and Close apply to it
// as to the connections Serve accepts. It returns ErrServerClosed if the server is shut down
// before or while serving, nil when the client closed the connection between frames, and
// otherwise the reason the connection was dropped (also logged).
func (s *Server) ServeConn(c net.Conn) error {
	sc := s.register(c)
	if sc == nil {
		c.Close()
		return ErrServerClosed
	}
	return sc.serve()
}

// track registers c and starts its handler, unless the server is shutting down.
func (s *Server) track(c net.Conn) bool {
	sc := s.register(c)
	if sc == nil {
		return false
	}
	go sc.serve()
	return true
}

// register makes c one of the server's connections, counted by its handlers, or returns nil if
// the server is shutting down.
func (s *Server) register(c net.Conn) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return nil
	}
	sc := &serverConn{
		s:   s,
		c:   c,
		r:   wire.NewReaderSize(c, s.cfg.MaxFrameSize, serverReadBuffer),
		w:   wire.NewWriter(c),
		log: s.log.With("remote", c.RemoteAddr().String()),
	}
	s.conns[sc] = struct{}{}
	s.handlers.Add(1)
	return sc
}

// Shutdown stops accepting, lets every connection finish the frame it is receiving, closes all
// connections and waits for their handlers. If ctx ends first, remaining connections are closed
// at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	for sc := range s.conns {
		sc.interruptIfIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Close closes every listener and connection at once and waits for the handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.closeConns()
	s.handlers.Wait()
	return nil
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sc := range s.conns {
		sc.c.Close()
	}
}

// serverConn is one client connection of a Server.
type serverConn struct {
	s      *Server
	c      net.Conn
	r      *wire.Reader
	w      *wire.Writer
	log    *slog.Logger
	seq    uint64 // TEXT and DATA frames received so far
	frames int    // frames received so far

	dataLen int // length of the DATA frame just read, whose payload was discarded; -1 otherwise

	mu   sync.Mutex // guards busy and the read deadline against Shutdown
	busy bool       // a frame is being received or answered
}

// errClientGone marks a clean end of stream between frames.
var errClientGone = errors.New("client closed the connection")

// serve runs the connection until it ends and returns why: nil for a client that closed it
// between frames.
func (sc *serverConn) serve() error {
	defer sc.s.handlers.Done()
	sc.log.Debug("connection opened")
	err := sc.loop()
	switch {
	case errors.Is(err, errClientGone):
		sc.log.Debug("connection closed", "reason", err)
		err = nil
	case errors.Is(err, ErrServerClosed):
		sc.log.Debug("connection closed", "reason", "server shutting down")
	default:
		sc.log.Warn("connection dropped", "reason", err)
	}
	sc.c.Close()
	sc.forget()
	return err
}

func (sc *serverConn) forget() {
	sc.s.mu.Lock()
	delete(sc.s.conns, sc)
	sc.s.mu.Unlock()
}

// loop serves frames until the connection ends; it returns why.
func (sc *serverConn) loop() error {
	cfg := sc.s.cfg
	for {
		wait := cfg.IdleTimeout
		if sc.frames == 0 {
			wait = min(wait, cfg.FirstFrameTimeout)
		}
		if !sc.setIdle(wait) {
			return sc.fail(ErrServerClosed, wire.CodeShuttingDown, "server shutting down")
		}
		if err := sc.r.Wait(); err != nil {
			switch {
			case err == io.EOF:
				return errClientGone
			case IsTimeout(err) && sc.s.closing():
				return sc.fail(ErrServerClosed, wire.CodeShuttingDown, "server shutting down")
			case IsTimeout(err):
				return sc.fail(fmt.Errorf("idle for %v: %w", cfg.IdleTimeout, err), wire.CodeTimeout, "idle timeout")
			}
			return err
		}
		sc.setBusy(cfg.ReadTimeout)
		f, err := sc.readFrame()
		if err != nil {
			if IsTimeout(err) {
				return sc.fail(fmt.Errorf("frame not received within %v: %w", cfg.ReadTimeout, err), wire.CodeTimeout, "read timeout")
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return sc.fail(err, wire.CodeProtocol, "truncated frame")
			}
			return sc.fail(err, wire.Code(CodeFor(err)), err.Error())
		}
		sc.trace("recv", f.Type, sc.payloadLen(f))
		sc.frames++
		switch f.Type {
		case wire.TypeSessionNew, wire.TypeSessionAttach:
			return sc.fail(fmt.Errorf("%w: %s not allowed here", ErrProtocol, f.Type), wire.CodeProtocol, "this connection cannot open or attach a session")
		case wire.TypeChunk, wire.TypeCredit, wire.TypeClose:
			return sc.fail(fmt.Errorf("%w: %s on a connection attached to no session", ErrUnknownSession, f.Type), wire.CodeUnknownSession, "no session on this connection")
		}
		if err := sc.answer(f); err != nil {
			return err
		}
		// Answers to frames that arrived together leave in one write.
		if sc.r.Buffered() == 0 || sc.w.Pending() >= 64<<10 {
			if err := sc.flush(); err != nil {
				return err
			}
		}
	}
}

// readFrame reads the next frame. A DATA payload is counted and discarded as it streams in,
// since only its length is acknowledged: a connection costs its fixed read buffer, not the size
// of the largest frame it was sent. The returned Frame then has a nil Payload and dataLen set.
func (sc *serverConn) readFrame() (wire.Frame, error) {
	h, err := sc.r.ReadHeader()
	if err != nil {
		return wire.Frame{}, err
	}
	sc.dataLen = -1
	if h.Type == wire.TypeData {
		sc.dataLen = int(h.Length)
		return wire.Frame{Type: h.Type}, sc.r.Discard(int(h.Length))
	}
	p, err := sc.r.ReadPayload(h)
	return wire.Frame{Type: h.Type, Payload: p}, err
}

// answer queues the reply to one frame.
func (sc *serverConn) answer(f wire.Frame) error {
	switch f.Type {
	case wire.TypePing:
		if len(f.Payload) > wire.MaxPingPayload {
			return sc.fail(fmt.Errorf("%w: PING payload %d bytes, maximum %d", ErrProtocol, len(f.Payload), wire.MaxPingPayload), wire.CodeProtocol, "PING payload too long")
		}
		return sc.queue(wire.TypePong, f.Payload)
	case wire.TypeText, wire.TypeData:
		if f.Type == wire.TypeText && !utf8.Valid(f.Payload) {
			return sc.fail(fmt.Errorf("%w: TEXT payload is not UTF-8", ErrProtocol), wire.CodeProtocol, "TEXT payload is not UTF-8")
		}
		sc.seq++
		n := sc.payloadLen(f)
		if f.Type == wire.TypeText {
			sc.log.Info("text received", "seq", sc.seq, "bytes", len(f.Payload), "text", truncateText(f.Payload, 200))
		}
		var b [wire.AckSize]byte
		return sc.queue(wire.TypeAck, wire.AppendAck(b[:0], wire.Ack{Acked: f.Type, Seq: sc.seq, Bytes: uint64(n)}))
	case wire.TypeError:
		e, err := wire.ParseError(f.Payload)
		if err != nil {
			return sc.fail(err, wire.CodeProtocol, err.Error())
		}
		return remoteError(e)
	default:
		return sc.fail(fmt.Errorf("%w: unexpected %s frame from a client", ErrProtocol, f.Type), wire.CodeProtocol, "unexpected "+f.Type.String())
	}
}

func (sc *serverConn) payloadLen(f wire.Frame) int {
	if sc.dataLen >= 0 {
		return sc.dataLen
	}
	return len(f.Payload)
}

// queue adds a small control frame (PONG, ACK). The payload goes in as the copied head, never the
// retained body, so callers may pass stack buffers without them escaping.
func (sc *serverConn) queue(t wire.Type, payload []byte) error {
	sc.trace("send", t, len(payload))
	return sc.w.Queue(t, payload, nil)
}

func (sc *serverConn) flush() error {
	sc.c.SetWriteDeadline(time.Now().Add(sc.s.cfg.WriteTimeout))
	if err := sc.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// fail sends the peer an ERROR frame (best effort, bounded by a short deadline) and returns
// cause, which becomes the logged reason for closing.
func (sc *serverConn) fail(cause error, code wire.Code, msg string) error {
	var b [2 + wire.MaxErrorMessage]byte
	payload := wire.AppendError(b[:0], wire.ErrorFrame{Code: code, Message: msg})
	sc.c.SetWriteDeadline(time.Now().Add(min(sc.s.cfg.WriteTimeout, time.Second)))
	sc.trace("send", wire.TypeError, len(payload))
	if err := sc.w.WriteFrame(wire.TypeError, payload); err != nil {
		sc.log.Debug("could not send ERROR frame", "err", err)
	}
	return cause
}

func (sc *serverConn) trace(dir string, t wire.Type, n int) {
	if sc.log.Enabled(context.Background(), slog.LevelDebug) {
		sc.log.Debug("frame", "dir", dir, "type", t.String(), "bytes", n)
	}
}

// setIdle marks the connection as waiting for a frame and arms the idle deadline. It returns
// false if the server is shutting down, in which case the connection should close.
func (sc *serverConn) setIdle(idle time.Duration) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.busy = false
	if sc.s.closing() {
		return false
	}
	sc.c.SetReadDeadline(time.Now().Add(idle))
	return true
}

// setBusy marks a frame in flight; Shutdown lets it finish.
func (sc *serverConn) setBusy(read time.Duration) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.busy = true
	sc.c.SetReadDeadline(time.Now().Add(read))
}

// interruptIfIdle wakes a handler waiting for its next frame; a busy one notices shutdown when it
// goes idle.
func (sc *serverConn) interruptIfIdle() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.busy {
		sc.c.SetReadDeadline(time.Now())
	}
}

func truncateText(p []byte, n int) string {
	if len(p) <= n {
		return string(p)
	}
	return string(p[:n]) + "…"
}
