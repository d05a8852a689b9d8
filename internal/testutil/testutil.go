// Package testutil holds the helpers the packages' tests share: a log sink safe for concurrent
// writers, a goroutine-leak check, a polling wait and a loopback TCP server. Only tests import
// it.
package testutil

import (
	"bytes"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// SyncBuffer is a goroutine-safe log sink, so that tests can assert on logged reasons.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// CheckLeaks asserts, after every cleanup registered later has run, that the test left no
// goroutine behind.
func CheckLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, LeakOptions...) })
}

// LeakOptions are the goroutines a leak check allows: the session engine's poller of dozing
// readers, which runs for the life of the process once a path has dozed.
var LeakOptions = []goleak.Option{goleak.IgnoreAnyFunction("github.com/braidnet/braid/internal/session.pollLoop")}

// TCPServer serves loopback TCP connections with handle, one goroutine each, until the test
// ends (then it closes the listener and waits for the handlers), and returns its address.
func TCPServer(t testing.TB, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// WaitFor polls cond until it holds, failing the test after 30 s (generous: under the race
// detector on a loaded machine a step can take seconds).
func WaitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lazy formats itself when printed, so that a failure message shows values at the time of the
// failure (WaitFor's arguments are evaluated when it is called).
type Lazy func() string

func (l Lazy) String() string { return l() }

// GoroutinesIn counts the goroutines other than the caller whose stacks hold any of the given
// strings (function names: what a goroutine still runs).
func GoroutinesIn(names ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i > 0 && slices.ContainsFunc(names, func(name string) bool { return strings.Contains(g, name) }) {
			count++
		}
	}
	return count
}
