//go:build linux

package mux

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReadable waits until r, if it is a socket, has data (or an end, or an error) to read, and
// returns how many bytes are there, so that a reader can take a buffer of the right size only
// then: an idle stream holds none. For other readers it returns -1 at once.
func waitReadable(r io.Reader) (int, error) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return -1, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, nil
	}
	avail := -1
	var probe [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			return false
		}
		if n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			avail = n
		}
		return true
	})
	return avail, err
}
