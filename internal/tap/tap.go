// Package tap records what connections carry: the first bytes each accepted connection brings
// (and, separately, the first it sends), as an eavesdropper on that one path would see them. The demo and the confidentiality tests use it
// on a server's listener.
package tap

import (
	"bytes"
	"net"
	"sync"
)

// Listener wraps a net.Listener and records up to Limit bytes read by each accepted connection.
type Listener struct {
	net.Listener
	Limit int

	mu    sync.Mutex
	conns []*Conn
}

// Conn is an accepted connection whose reads and writes are recorded.
type Conn struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte // read
	wbuf []byte // written
	max  int
}

// Accept accepts the next connection and starts recording it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &Conn{Conn: c, max: l.Limit}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

// Conns returns the connections accepted so far, in order.
func (l *Listener) Conns() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Conn(nil), l.conns...)
}

// Read reads from the connection, recording what it returns.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if keep := min(n, c.max-len(c.buf)); keep > 0 {
		c.buf = append(c.buf, p[:keep]...)
	}
	c.mu.Unlock()
	return n, err
}

// Write writes to the connection, recording what it sends.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if keep := min(len(p), c.max-len(c.wbuf)); keep > 0 {
		c.wbuf = append(c.wbuf, p[:keep]...)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Written returns a copy of what the connection has sent, up to the limit.
func (c *Conn) Written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.wbuf)
}

// Bytes returns a copy of what has been read.
func (c *Conn) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf)
}
