//go:build !linux

package session

// Readers doze only on Linux (doze_linux.go): elsewhere a path's reader keeps its goroutine.

func pollArm(*path) bool { return false }
func pollForget(*path)   {}
