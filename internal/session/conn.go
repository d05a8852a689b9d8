package session

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/braidnet/braid/internal/reasm"
)

// maxConnWrite bounds the message a Conn's Write makes of one slice of its input, so that a large
// Write streams as several messages instead of needing its whole size in the peer's window.
const maxConnWrite = 1 << 20

// Conn returns a view of the session as a net.Conn: a byte stream, in order, carried as messages
// over all the session's paths, so that io.Copy and other stream code work unchanged. Each Write
// sends its bytes as one or more messages; Read returns them in order, ignoring message
// boundaries, and io.EOF after the peer's Close.
//
// Deadlines apply to calls that start after they are set; a call already blocked keeps the
// deadline it started with. Close closes the whole session.
func (s *Session) Conn() net.Conn {
	return &sessionConn{s: s}
}

type sessionConn struct {
	s *Session

	rmu  sync.Mutex // one Read at a time; guards rest
	msg  []byte     // the last message received, released once read in full
	rest []byte     // unread part of msg
	wmu  sync.Mutex // one Write at a time, so that concurrent writes do not interleave

	dmu           sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time
}

func (c *sessionConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rest) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		ctx, cancel := c.context(&c.readDeadline)
		msg, err := c.s.Receive(ctx)
		cancel()
		if err != nil {
			return 0, connError(err)
		}
		c.msg, c.rest = msg, msg
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	if len(c.rest) == 0 && c.msg != nil {
		c.s.Release(c.msg) // the stream has copied all of it out
		c.msg, c.rest = nil, nil
	}
	return n, nil
}

func (c *sessionConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := c.context(&c.writeDeadline)
	defer cancel()
	max := c.maxWrite()
	written := 0
	for written < len(p) {
		n := min(len(p)-written, max)
		if err := c.s.Send(ctx, p[written:written+n]); err != nil {
			return written, connError(err)
		}
		written += n
	}
	return written, nil
}

// maxWrite is the largest message a Write sends: within the session's limits and half the
// peer's window.
func (c *sessionConn) maxWrite() int {
	s := c.s
	s.mu.Lock()
	win := s.peerWindow
	s.mu.Unlock()
	chunks := (win/2 - reasm.ItemOverhead) / int64(s.chunkSize)
	return int(max(1, min(chunks*int64(s.chunkSize), int64(s.cfg.MaxMessageSize), maxConnWrite)))
}

// context turns a deadline into a context for one call.
func (c *sessionConn) context(deadline *time.Time) (context.Context, context.CancelFunc) {
	c.dmu.Lock()
	d := *deadline
	c.dmu.Unlock()
	if d.IsZero() {
		return context.Background(), func() {}
	}
	return context.WithDeadline(context.Background(), d)
}

// connError maps a session error to what net.Conn callers expect: a deadline as
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true), a closed session as
// net.ErrClosed.
func connError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return os.ErrDeadlineExceeded
	case err == io.EOF:
		return io.EOF
	case errors.Is(err, ErrSessionClosed) && !isRemote(err):
		return net.ErrClosed
	}
	return err
}

func isRemote(err error) bool {
	var re *RemoteError
	return errors.As(err, &re)
}

func (c *sessionConn) Close() error { return c.s.Close() }

// LocalAddr returns the local address of the session's first path.
func (c *sessionConn) LocalAddr() net.Addr { return c.firstAddr(true) }

// RemoteAddr returns the remote address of the session's first path.
func (c *sessionConn) RemoteAddr() net.Addr { return c.firstAddr(false) }

func (c *sessionConn) firstAddr(local bool) net.Addr {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for _, p := range c.s.paths {
		if p != nil {
			if local {
				return p.conn.LocalAddr()
			}
			return p.conn.RemoteAddr()
		}
	}
	return sessionAddr(c.s.ID())
}

// sessionAddr names a session when it has no path to take an address from.
type sessionAddr string

func (a sessionAddr) Network() string { return "braid" }
func (a sessionAddr) String() string  { return string(a) }

func (c *sessionConn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.readDeadline, c.writeDeadline = t, t
	return nil
}

func (c *sessionConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.readDeadline = t
	return nil
}

func (c *sessionConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.writeDeadline = t
	return nil
}
