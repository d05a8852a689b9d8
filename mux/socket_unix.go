//go:build unix

package mux

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/braidnet/braid/internal/bufpool"
)

// readInto reads once from r, as io.Reader.Read does, into a buffer from bufpool of headerLen +
// at most limit bytes, the data after the header's room (buf is nil when n is 0). For a socket
// it takes the buffer only while it reads: when the socket has nothing yet, the buffer goes back
// to the pool before the goroutine waits, so that an idle stream holds none. For other readers
// it takes a full-size buffer.
func readInto(r io.Reader, limit int) (buf []byte, n int, err error) {
	raw := socketOf(r)
	if raw == nil {
		return readPlain(r, limit)
	}
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		buf = bufpool.Get(headerLen + limit)
		k, e := syscall.Read(int(fd), buf[headerLen:headerLen+limit])
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			bufpool.Put(buf)
			buf = nil
			return false
		case e != nil:
			rerr = os.NewSyscallError("read", e)
		case k > 0:
			n = k
			return true
		default:
			rerr = io.EOF
		}
		bufpool.Put(buf)
		buf = nil
		return true
	})
	if err == nil {
		err = rerr
	}
	return buf, n, err
}

// socketOf returns r's raw connection if r is a socket.
func socketOf(r io.Reader) syscall.RawConn {
	sc, ok := r.(syscall.Conn)
	if _, isConn := r.(net.Conn); !ok || !isConn {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
