package mux

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/braidnet/braid/internal/bufpool"
	"golang.org/x/sys/unix"
)

// readInto reads once from r, as io.Reader.Read does, into a buffer from bufpool of headerLen +
// at most limit bytes, the data after the header's room (buf is nil when n is 0). For a socket
// it takes the buffer only once data is waiting, and sizes it to what is waiting (SIOCINQ), so
// that an idle stream holds no buffer; for other readers it takes a full-size buffer.
func readInto(r io.Reader, limit int) (buf []byte, n int, err error) {
	raw := socketOf(r)
	if raw == nil {
		return readPlain(r, limit)
	}
	var probe [1]byte
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		avail, e := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if e != nil || avail == 0 {
			// Nothing queued: not yet, or the end, or an error. A peek tells them apart (and
			// takes a pending error, which is then reported from here).
			_, _, e := unix.Recvfrom(int(fd), probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch e {
			case unix.EAGAIN, unix.EINTR:
				return false
			case nil:
			default:
				rerr = os.NewSyscallError("read", e)
				return true
			}
		}
		size := min(limit, max(avail, 4<<10))
		buf = bufpool.Get(headerLen + size)
		k, e := syscall.Read(int(fd), buf[headerLen:headerLen+size])
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
