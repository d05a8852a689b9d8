//go:build !linux

package session

import "syscall"

// readTCPInfo cannot tell here (it reads Linux's TCP_INFO): no path is ever found lossy or
// silent by its kernel's view.
func readTCPInfo(syscall.RawConn) (tcpInfo, bool) { return tcpInfo{}, false }
