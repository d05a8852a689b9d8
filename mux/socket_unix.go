//go:build unix

package mux

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/braidnet/braid/internal/bufpool"
)

// source reads what a stream sends (ReadFrom), once per call of read, as io.Reader.Read does,
// into a buffer from bufpool of headerLen + at most limit bytes, the data after the header's
// room (buf is nil when n is 0). From a socket it takes the buffer only while it reads: when the
// socket has nothing yet, the buffer goes back to the pool before the goroutine waits, so that
// an idle stream holds none. From other readers it takes a full-size buffer.
//
// The socket's raw connection and the function that reads it are made once per source, not per
// read: each would be an allocation per read.
type source struct {
	r     io.Reader
	raw   syscall.RawConn // nil if r is not a socket
	fn    func(fd uintptr) bool
	limit int
	buf   []byte
	n     int
	err   error
}

// newSource returns a source reading r.
func newSource(r io.Reader) *source {
	s := &source{r: r, raw: socketOf(r)}
	s.fn = s.readFD
	return s
}

// read reads once.
func (s *source) read(limit int) (buf []byte, n int, err error) {
	if s.raw == nil {
		return readPlain(s.r, limit)
	}
	s.limit, s.buf, s.n, s.err = limit, nil, 0, nil
	err = s.raw.Read(s.fn)
	if err == nil {
		err = s.err
	}
	buf, n = s.buf, s.n
	s.buf = nil
	return buf, n, err
}

// readFD is the socket's read, as RawConn.Read calls it: false means "not readable yet, wait".
func (s *source) readFD(fd uintptr) bool {
	s.buf = bufpool.Get(headerLen + s.limit)
	k, e := syscall.Read(int(fd), s.buf[headerLen:headerLen+s.limit])
	switch {
	case e == syscall.EAGAIN || e == syscall.EINTR:
		bufpool.Put(s.buf)
		s.buf = nil
		return false
	case e != nil:
		s.err = os.NewSyscallError("read", e)
	case k > 0:
		s.n = k
		return true
	default:
		s.err = io.EOF
	}
	bufpool.Put(s.buf)
	s.buf = nil
	return true
}

// socketOf returns v's raw connection if v is a socket (a net.Conn with one).
func socketOf(v any) syscall.RawConn {
	sc, ok := v.(syscall.Conn)
	if _, isConn := v.(net.Conn); !ok || !isConn {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// useSocket lets the output write to w directly (writeDirectLocked) if w is a socket.
func (o *output) useSocket(w io.Writer) {
	if o.raw = socketOf(w); o.raw != nil {
		o.writeFn = o.writeFD
	}
}

// writeFD is a direct write to a stream's output socket, as RawConn.Write calls it.
func (o *output) writeFD(fd uintptr) bool {
	k, err := syscall.Write(int(fd), o.direct)
	if err == nil && k > 0 {
		o.wrote = k
	}
	return true // never wait: the reader must not block
}
