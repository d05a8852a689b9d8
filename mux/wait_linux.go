//go:build linux

package mux

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReadable waits until r, if it is a socket, has data (or an end, or an error) to read, and
// returns how many bytes are there, so that a reader can take a buffer of the right size only
// then: an idle stream holds none. For other readers it returns -1 at once.
func waitReadable(r io.Reader) (int, error) {
	sc, ok := r.(syscall.Conn)
	if _, isConn := r.(net.Conn); !ok || !isConn {
		return -1, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, nil
	}
	avail := -1
	var probe [1]byte
	var sockErr error
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch err {
		case unix.EAGAIN, unix.EINTR:
			return false
		case unix.ENOTSOCK:
		case nil:
			if n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
				avail = n
			}
		default:
			// The peek has taken the socket's pending error (a reset, say): the next read would
			// not see it, so it is reported from here.
			sockErr = os.NewSyscallError("read", err)
		}
		return true
	})
	if err == nil {
		err = sockErr
	}
	return avail, err
}
