package session

import (
	"bytes"
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// pathList returns s's paths, live or not.
func (s *Session) pathList() []*path {
	s.mu.Lock()
	defer s.mu.Unlock()
	paths := make([]*path, 0, len(s.paths))
	for _, p := range s.paths {
		if p != nil {
			paths = append(paths, p.path)
		}
	}
	return paths
}

// parkedWriters counts s's paths whose writers are parked.
func parkedWriters(s *Session) int {
	paths := s.pathList()
	s.shared.park.mu.Lock()
	defer s.shared.park.mu.Unlock()
	n := 0
	for _, p := range paths {
		if p.parked {
			n++
		}
	}
	return n
}

// writerGoroutines counts the goroutines of the process running a path's writer.
func writerGoroutines() int {
	buf := make([]byte, 4<<20)
	return bytes.Count(buf[:runtime.Stack(buf, true)], []byte("session.(*path).writeLoop("))
}

// idleParkConfig has short keepalives, so that a test sees an idle session's parked writers
// ping.
func idleParkConfig() *Config {
	return &Config{Paths: 2, KeepAlive: 20 * time.Millisecond, PathTimeout: 100 * time.Millisecond, IdleKeepAlive: 150 * time.Millisecond}
}

// exchangeRounds sends a small message and one past inlineMax (through the queues) each way
// between c and s, rounds times, checking each, and calls after at the end of each round.
func exchangeRounds(t *testing.T, c, s *Session, rounds int, after func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("braid"), 200<<10) // 1 MB
	for round := range rounds {
		for _, msg := range [][]byte{[]byte("small"), big} {
			for _, dir := range [][2]*Session{{c, s}, {s, c}} {
				if err := dir[0].Send(ctx, msg); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				got, err := dir[1].Receive(ctx)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("round %d: received %d bytes, %v; want %d", round, len(got), err, len(msg))
				}
			}
		}
		after()
	}
}

// keptAndClosed checks that neither end of a 2-path session lost a path, then closes both ends
// at once.
func keptAndClosed(t *testing.T, c, s *Session) {
	t.Helper()
	for name, e := range map[string]*Session{"client": c, "server": s} {
		if st := e.Stats(); st.PathsDown != 0 || len(st.Paths) != 2 {
			t.Errorf("%s: %d paths lost, %d paths", name, st.PathsDown, len(st.Paths))
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := s.Close(); err != nil {
		t.Errorf("server Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("client Close: %v", err)
	}
}

// TestIdleWritersPark: the writers of an idle session's paths park at both ends (no goroutine
// runs them), the paths stay live through many idle timeouts (the parked writers' keepalive
// timers start them to ping), and every kind of work starts them again: a message small enough
// for the sender to write itself, one through the queues, the CREDIT and CHUNK_ACK a Receive
// owes, and the session's close.
func TestIdleWritersPark(t *testing.T) {
	var parks atomic.Int64
	l, _ := startHookedListener(t, idleParkConfig(), &testHooks{writerParked: func(*path) { parks.Add(1) }})
	c, s := dialTo(t, l, idleParkConfig())
	waitPaths(s, 2)
	echoOnce(t, c, s)
	for _, e := range []*Session{c, s} {
		testutil.WaitFor(t, func() bool { return parkedWriters(e) == 2 }, "both writers to park")
	}
	if n := writerGoroutines(); n != 0 {
		t.Fatalf("%d writer goroutines while every writer is parked", n)
	}
	before := parks.Load()
	time.Sleep(10 * idleParkConfig().IdleKeepAlive) // idle path timeout: PathTimeout + 2 IdleKeepAlive
	if parks.Load() == before {
		t.Error("no writer woke (to ping) and parked again over 10 IdleKeepAlives")
	}
	exchangeRounds(t, c, s, 3, func() {
		for _, e := range []*Session{c, s} {
			testutil.WaitFor(t, func() bool { return parkedWriters(e) == 2 }, "the writers to park again")
		}
	})
	// Close with every writer parked: each must wake to write CLOSE, and end.
	keptAndClosed(t, c, s)
	testutil.WaitFor(t, func() bool { return writerGoroutines() == 0 }, "no writer goroutine after Close")
	for _, e := range []*Session{c, s} {
		for _, p := range e.pathList() {
			select {
			case <-p.writerDone:
			case <-time.After(5 * time.Second):
				t.Fatalf("path %d's writer has not ended", p.index)
			}
		}
	}
}

// TestAbortEndsParkedWriters: a session aborted while its writers are parked ends them, and
// the peer hears of it at once (ERROR, or the connection closed), not at its idle timeout.
func TestAbortEndsParkedWriters(t *testing.T) {
	c, s := dialPair(t, idleParkConfig(), idleParkConfig())
	waitPaths(s, 2)
	echoOnce(t, c, s)
	testutil.WaitFor(t, func() bool { return parkedWriters(c) == 2 }, "both writers to park")
	start := time.Now()
	c.Abort()
	for _, p := range c.pathList() {
		select {
		case <-p.writerDone:
		case <-time.After(5 * time.Second):
			t.Fatalf("path %d's parked writer has not ended", p.index)
		}
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the server's session did not end after the client's abort")
	}
	if d := time.Since(start); d > idlePathTimeout(s.cfg) {
		t.Errorf("the server took %v to see the abort, beyond its idle path timeout", d)
	}
}

// TestParkedWriterWakes: each kind of work a writer listens to starts a parked one again, on its
// own (the keepalive and the monitor, which also wake writers, are minutes away): the writer
// runs, finds the work done or nothing more to do, and parks again.
func TestParkedWriterWakes(t *testing.T) {
	var parks atomic.Int64
	cfg := func() *Config {
		return &Config{Paths: 2, KeepAlive: 20 * time.Millisecond, PathTimeout: 100 * time.Millisecond, IdleKeepAlive: time.Minute}
	}
	l, _ := startHookedListener(t, cfg(), &testHooks{writerParked: func(*path) { parks.Add(1) }})
	c, s := dialTo(t, l, cfg())
	waitPaths(s, 2)
	echoOnce(t, c, s)
	testutil.WaitFor(t, func() bool { return parkedWriters(s) == 2 }, "the server's writers to park")
	p := s.pathList()[0]
	for _, tc := range []struct {
		name string
		wake func()
	}{
		{"control frame", p.probe},
		{"CHUNK_ACK for any path", func() { s.shared.kickShared(s.shared.ackKick) }},
		{"CREDIT for any path", func() { s.shared.kickShared(s.shared.creditKick) }},
		{"retransmissions", func() { p.kickWriter(p.rtxKick) }},
		{"room under the cap", func() { p.kickWriter(p.capKick) }},
		{"no longer suspect", func() { p.kickWriter(p.rearm) }},
	} {
		before := parks.Load()
		tc.wake()
		testutil.WaitFor(t, func() bool { return parks.Load() > before && parkedWriters(s) == 2 }, tc.name+": the writer to run and park again")
	}
	if st := s.Stats(); st.PathsDown != 0 {
		t.Errorf("%d paths lost", st.PathsDown)
	}
}
