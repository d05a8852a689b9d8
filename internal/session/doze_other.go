//go:build !linux

package session

// Readers doze only on Linux (doze_linux.go): elsewhere a path's reader keeps its goroutine.

const canDoze = false

var poller struct{ tokens }

func pollArm(*path) bool { return false }
