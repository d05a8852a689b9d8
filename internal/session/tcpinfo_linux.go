package session

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// retransmits returns the number of segments the kernel has retransmitted on the TCP connection
// rc, ever (tcpi_total_retrans), and whether it could tell.
func retransmits(rc syscall.RawConn) (n uint32, ok bool) {
	if rc == nil {
		return 0, false
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n, ok = info.Total_retrans, true
		}
	})
	return n, ok
}
