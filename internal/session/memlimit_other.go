//go:build !linux

package session

// physicalMemory returns 0: the machine's RAM is not known here, and the memory budget defaults
// to what MaxSessions windows need.
func physicalMemory() int64 { return 0 }
