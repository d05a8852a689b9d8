package session

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// TestListenerShutdownHonoursContext: Shutdown with a deadline does not wait out the Linger of a
// session whose graceful close cannot finish (its only path is blackholed).
func TestListenerShutdownHonoursContext(t *testing.T) {
	testutil.CheckLeaks(t)
	l, err := Listen("127.0.0.1:0", &Config{Linger: time.Minute, ResumeGrace: time.Minute, PathTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	c, err := DialPaths(context.Background(), []PathSpec{{Remote: proxy.Addr()}}, &Config{PathTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	proxy.Blackhole()
	if err := s.Send(context.Background(), make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second): // the session's Linger is a minute
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
		t.Fatal("Shutdown waited for the session's Linger")
	}
	if !errors.Is(s.Err(), ErrSessionClosed) {
		t.Fatalf("session: %v", s.Err())
	}
}

// TestListenerShutdownTellsWaitingConnections: a connection that has sent nothing yet is told
// SHUTTING_DOWN at once, not left to its handshake timeout, and Shutdown does not wait for it.
func TestListenerShutdownTellsWaitingConnections(t *testing.T) {
	testutil.CheckLeaks(t)
	l, err := Listen("127.0.0.1:0", &Config{HandshakeTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := dialRaw(t, l.Addr().String())
	testutil.WaitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.conns) == 1
	}, "the connection to be accepted")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Shutdown(ctx) }()
	p.expectError(wire.CodeShuttingDown)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// After Shutdown nothing is accepted.
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a connection after Shutdown was answered")
		}
		c.Close()
	}
}
