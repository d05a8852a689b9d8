//go:build linux

package session

import "syscall"

// physicalMemory returns the machine's RAM in bytes, or 0 if it is not known.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
