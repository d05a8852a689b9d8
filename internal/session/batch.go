package session

import (
	"crypto/tls"
	"net"
	"sync"
)

// System-call batching under TLS. crypto/tls writes each record (at most 16 KiB of payload) with
// a write of its own and reads each with at least one read, so a bulk path over TLS makes a
// system call per 16 KiB where a plaintext path makes one per 2 MiB batch; on loopback those
// calls, not the cipher, were half the CPU time (docs/EVALUATION.md, "TLS"). batchConn sits
// between the TLS connection and the TCP connection and gathers both directions into large
// system calls, with buffers borrowed from a pool only while a path is busy. An idle path holds
// none, except that a path whose last read of a burst was large keeps its read buffer until its
// next bytes arrive (at the latest the peer's keepalive: within KeepAlive of a busy peer, or
// IdleKeepAlive of an idle one), which that read then ends.

// batchSize is the size of a borrowed batch buffer.
const batchSize = 256 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, batchSize); return &b }}

// batchConn is a TCP connection under a TLS one. Writes made between hold and release leave in
// one write at release; reads, once the stream is seen to be busy, are served from one large
// read.
type batchConn struct {
	net.Conn

	wmu     sync.Mutex
	holding bool
	wbuf    *[]byte // borrowed while holding; (*wbuf)[:wn] is pending
	wn      int

	// Read state, used only by the TLS connection's reader (crypto/tls serialises its reads).
	batching bool    // set once the TLS handshake is done: a peer not yet authenticated gets no big buffer
	rbuf     *[]byte // borrowed while busy
	r, n     int     // (*rbuf)[r:n] is unread
	busy     bool    // the last read filled what it was given: more is probably waiting
}

// hold starts gathering writes.
func (b *batchConn) hold() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.holding = true
}

// release writes what was gathered since hold, in one system call, and stops gathering.
func (b *batchConn) release() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.holding = false
	err := b.flushLocked()
	if b.wbuf != nil {
		batchPool.Put(b.wbuf)
		b.wbuf = nil
	}
	return err
}

func (b *batchConn) flushLocked() error {
	if b.wn == 0 {
		return nil
	}
	p := (*b.wbuf)[:b.wn]
	b.wn = 0
	for len(p) > 0 {
		n, err := b.Conn.Write(p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Write gathers p while holding (writing out what is gathered first if p would not fit), and
// otherwise writes it at once.
func (b *batchConn) Write(p []byte) (int, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if !b.holding {
		return b.Conn.Write(p)
	}
	if b.wn+len(p) > batchSize {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > batchSize {
			return b.Conn.Write(p)
		}
	}
	if b.wbuf == nil {
		b.wbuf = batchPool.Get().(*[]byte)
	}
	b.wn += copy((*b.wbuf)[b.wn:], p)
	return len(p), nil
}

// Read serves buffered bytes first; otherwise, on a busy stream, it makes one large read into a
// borrowed buffer, and on a quiet one it reads straight into p (a quiet path waits in that read
// holding no buffer).
func (b *batchConn) Read(p []byte) (int, error) {
	if b.r < b.n {
		k := copy(p, (*b.rbuf)[b.r:b.n])
		b.r += k
		b.giveBack()
		return k, nil
	}
	if !b.busy || len(p) >= batchSize {
		n, err := b.Conn.Read(p)
		b.busy = b.batching && n == len(p) && n > 0
		return n, err
	}
	if b.rbuf == nil {
		b.rbuf = batchPool.Get().(*[]byte)
	}
	n, err := b.Conn.Read(*b.rbuf)
	b.r, b.n = 0, n
	b.busy = n > batchSize/2 // a read that drained the socket well short of the buffer ends the burst
	k := copy(p, (*b.rbuf)[:n])
	b.r = k
	b.giveBack()
	return k, err
}

// giveBack returns the read buffer to the pool once it is empty and the burst is over.
func (b *batchConn) giveBack() {
	if b.r == b.n && !b.busy && b.rbuf != nil {
		batchPool.Put(b.rbuf)
		b.rbuf, b.r, b.n = nil, 0, 0
	}
}

// tlsConn is a path's TLS connection over its batchConn. The path's frame writer brackets each
// flush with Hold and Release.
type tlsConn struct {
	*tls.Conn
	batch *batchConn
}

// Hold gathers the TLS records written until Release into one system call.
func (c *tlsConn) Hold() { c.batch.hold() }

// Release writes the records gathered since Hold.
func (c *tlsConn) Release() error { return c.batch.release() }
