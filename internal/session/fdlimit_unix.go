//go:build unix

package session

import "syscall"

// fdLimit returns the process's soft limit on open files, or 0 if it is not known.
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
