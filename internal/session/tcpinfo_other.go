//go:build !linux

package session

import "syscall"

// retransmits cannot tell here (it reads Linux's TCP_INFO): no path is ever found lossy.
func retransmits(syscall.RawConn) (uint32, bool) { return 0, false }
