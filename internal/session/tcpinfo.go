package session

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"
)

// What the kernel knows of a path's TCP connection (TCP_INFO, read by readTCPInfo on Linux):
// whether it loses packets, and whether ACKs still come. ARCHITECTURE.md, "What the kernel knows".

// tcpInfo is what the monitor reads of a path's TCP connection from the kernel.
type tcpInfo struct {
	retrans uint32        // segments retransmitted, ever
	unacked uint32        // segments sent and not acknowledged
	ackAge  time.Duration // since the connection last received an ACK
	srtt    time.Duration // the kernel's smoothed round-trip time (0: not measured)
}

// lookAtTCP reads p's TCP connection from the kernel: whether it has retransmitted since the
// monitor last looked, marking p lossy for lossMemory after it has (the scheduler then copies
// chunks given to it to a clean path with room: sched.LossCopy), and whether it has stopped
// (tcpSilent), which it reports with the limit it was judged by; or, if it may be stopping, due:
// when the monitor should look again (0: at its usual tick). Call with s.mu held.
func (s *Session) lookAtTCP(p *pathEntry, now time.Duration) (silent bool, limit, due time.Duration) {
	var ti tcpInfo
	var ok bool
	if h := s.hooks; h != nil && h.tcpInfo != nil {
		ti, ok = h.tcpInfo(p.path)
	} else {
		ti, ok = readTCPInfo(p.tcp)
	}
	if !ok {
		return false, 0, 0
	}
	if ti.retrans != p.retrans {
		p.retrans, p.lossAt = ti.retrans, now
	}
	if l := lossy(now, p.lossAt); l != p.lossy.Load() {
		p.lossy.Store(l)
		p.debug("path lossy: its TCP connection retransmitted", "lossy", l, "retransmits", ti.retrans)
	}
	srtt := silenceRTT(ti.srtt, p.rtt().min)
	limit = tcpSilenceLimit(srtt)
	silent, due = tcpSilent(now, p.oldest, now-ti.ackAge, ti.unacked, srtt, limit)
	return silent, limit, due
}

// rawTCP returns the TCP socket under c, through TLS and batchConn, or nil if there is none.
func rawTCP(c net.Conn) syscall.RawConn {
	for {
		switch v := c.(type) {
		case *tlsConn:
			c = v.batch
		case *tls.Conn:
			c = v.NetConn()
		case *batchConn:
			c = v.Conn
		case *net.TCPConn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		default:
			return nil
		}
	}
}
