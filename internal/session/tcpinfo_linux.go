package session

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readTCPInfo reads what the kernel reports of the TCP connection rc (TCP_INFO), and whether it
// could.
func readTCPInfo(rc syscall.RawConn) (ti tcpInfo, ok bool) {
	if rc == nil {
		return ti, false
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			ti = tcpInfo{
				retrans: info.Total_retrans,
				unacked: info.Unacked,
				ackAge:  time.Duration(info.Last_ack_recv) * time.Millisecond,
				srtt:    time.Duration(info.Rtt) * time.Microsecond,
			}
			ok = true
		}
	})
	return ti, ok
}
