//go:build !linux

package eval

import (
	"errors"
	"os"
	"syscall"
)

// errNotLinux is why the netns backend and the TCP baseline's --cc cannot run here.
var errNotLinux = errors.New("needs Linux (network namespaces, TUN devices, TCP_CONGESTION)")

func openTUN(string) (*os.File, error) { return nil, errNotLinux }

func agentProcAttr() *syscall.SysProcAttr { return nil }

func setCongestion(uintptr, string) error { return errNotLinux }
