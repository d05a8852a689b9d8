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
// Deadlines apply to pending calls as well as later ones, as net.Conn requires: setting one
// wakes a blocked Read or Write, which then waits until the new deadline. Close closes the
// whole session.
func (s *Session) Conn() net.Conn {
	return &sessionConn{s: s}
}

type sessionConn struct {
	s *Session

	rmu  sync.Mutex // one Read at a time; guards rest
	msg  []byte     // the last message received, released once read in full
	rest []byte     // unread part of msg
	wmu  sync.Mutex // one Write at a time, so that concurrent writes do not interleave

	dmu   sync.Mutex // guards both deadlines
	read  deadline
	write deadline
}

// deadline is one direction's deadline, and the cancel of the call waiting under it.
type deadline struct {
	at     time.Time
	gen    uint64             // changes with at
	cancel context.CancelFunc // of the call waiting, if any
}

func (c *sessionConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.expired(&c.read) {
		return 0, os.ErrDeadlineExceeded // even with data at hand, as a socket does
	}
	for len(c.rest) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		ctx, gen := c.context(&c.read)
		msg, err := c.s.Receive(ctx)
		if c.done(&c.read, gen) && errors.Is(err, context.Canceled) {
			continue // the deadline moved while it waited: wait again, under the new one
		}
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
	if c.expired(&c.write) {
		return 0, os.ErrDeadlineExceeded // even with room in the window, as a socket does
	}
	max := c.maxWrite()
	written := 0
	for written < len(p) {
		n := min(len(p)-written, max)
		ctx, gen := c.context(&c.write)
		err := c.s.Send(ctx, p[written:written+n])
		if c.done(&c.write, gen) && errors.Is(err, context.Canceled) {
			continue // the deadline moved while it waited (nothing of the message was sent)
		}
		if err != nil {
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

// context returns the context of one call under d, which a change of d cancels, and d's
// generation.
func (c *sessionConn) context(d *deadline) (context.Context, uint64) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	var ctx context.Context
	if d.at.IsZero() {
		ctx, d.cancel = context.WithCancel(context.Background())
	} else {
		ctx, d.cancel = context.WithDeadline(context.Background(), d.at)
	}
	return ctx, d.gen
}

// done ends a call under d, and reports whether d changed since the call began at generation
// gen (a change cancels the call's context).
func (c *sessionConn) done(d *deadline, gen uint64) bool {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	return d.gen != gen
}

// expired reports whether d has passed.
func (c *sessionConn) expired(d *deadline) bool {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return !d.at.IsZero() && !time.Now().Before(d.at)
}

// set moves d to t, waking the call waiting under it.
func (d *deadline) set(t time.Time) {
	d.at = t
	d.gen++
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
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
	c.read.set(t)
	c.write.set(t)
	return nil
}

func (c *sessionConn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.read.set(t)
	return nil
}

func (c *sessionConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.write.set(t)
	return nil
}
