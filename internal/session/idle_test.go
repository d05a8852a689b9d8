package session

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// TestIdleSessionKeepsItsPaths: a session left idle for many PathTimeouts keeps every path at
// both ends — its monitor sleeps, its paths ping every IdleKeepAlive and are judged by the idle
// timeout — and when it turns busy again its paths, silent for longer than PathTimeout, are
// probed rather than declared dead; messages then go both ways.
func TestIdleSessionKeepsItsPaths(t *testing.T) {
	cfg := &Config{Paths: 2, KeepAlive: 20 * time.Millisecond, PathTimeout: 100 * time.Millisecond, IdleKeepAlive: 150 * time.Millisecond}
	c, s := dialPair(t, cfg, cfg)
	testutil.WaitFor(t, func() bool { return len(s.Stats().Paths) == 2 }, "both paths")
	echoOnce(t, c, s)
	for _, e := range []*Session{c, s} {
		testutil.WaitFor(t, e.shared.idle.Load, "the session to be idle")
	}
	// Silent for longer than PathTimeout between pings, many times over.
	time.Sleep(20 * cfg.PathTimeout)
	// Keepalives alone do not make a session busy (its monitor would tick again): a writer
	// pinging an idle path silent for longer than MinRTO does not count it suspect.
	for name, e := range map[string]*Session{"client": c, "server": s} {
		if !e.shared.idle.Load() {
			t.Errorf("%s: busy after keepalives alone", name)
		}
	}
	for i := range 3 {
		echoOnce(t, c, s)
		echoOnce(t, s, c)
		if i < 2 {
			testutil.WaitFor(t, c.shared.idle.Load, "the session to be idle again")
			time.Sleep(5 * cfg.PathTimeout)
		}
	}
	for name, e := range map[string]*Session{"client": c, "server": s} {
		st := e.Stats()
		if st.PathsDown != 0 || len(st.Paths) != 2 {
			t.Errorf("%s: %d paths lost, %d paths", name, st.PathsDown, len(st.Paths))
		}
		for _, p := range st.Paths {
			if !p.Live {
				t.Errorf("%s: path %d not live", name, p.Index)
			}
		}
	}
}

// TestIdleMonitorSleeps: an idle session's monitor sleeps until its next deadline, not for
// monitorTick.
func TestIdleMonitorSleeps(t *testing.T) {
	cfg := &Config{Paths: 1}
	c, s := dialPair(t, cfg, cfg)
	echoOnce(t, c, s)
	testutil.WaitFor(t, c.shared.idle.Load, "the session to be idle")
	c.mu.Lock()
	next := c.idleDeadline(c.clock())
	c.mu.Unlock()
	if next <= monitorTick {
		t.Fatalf("an idle session's monitor looks again in %v, not beyond monitorTick", next)
	}
}

// TestMonitorIsATimer: an idle session's monitor holds no goroutine between its runs, wakes when
// the session turns busy (only a monitor run finds the session idle again, and a sleeping one
// would not look before its idle deadline, a minute away), and closes monitorDone once the
// session ends.
func TestMonitorIsATimer(t *testing.T) {
	cfg := &Config{Paths: 2}
	c, s := dialPair(t, cfg, cfg)
	echoOnce(t, c, s)
	testutil.WaitFor(t, func() bool { return c.shared.idle.Load() && s.shared.idle.Load() }, "the sessions to be idle")
	// A run passing through (a timer of either end firing) may be caught by one look; a parked
	// one is in every look.
	buf := make([]byte, 1<<20)
	var st []byte
	testutil.WaitFor(t, func() bool {
		st = buf[:runtime.Stack(buf, true)]
		return !bytes.Contains(st, []byte("(*Session).monitorRun"))
	}, "no monitor run while the sessions are idle; the last look:\n%s", testutil.Lazy(func() string { return string(st) }))
	for range 20 {
		echoOnce(t, c, s)
		testutil.WaitFor(t, c.shared.idle.Load, "the session to be idle again")
	}
	c.Abort()
	select {
	case <-c.monitorDone:
	case <-time.After(5 * time.Second):
		t.Fatal("monitorDone still open after Abort")
	}
}

// TestIdleSuspectWriterTakesKicks: the writer of an idle session's path that counts as suspect
// (silent while the session heard from elsewhere) still sends the CREDIT and CHUNK_ACK it is
// kicked for. It had passed each kick on, then taken it back itself at the top of its loop,
// which ignores suspicion when idle: a spin that lasted until another path's writer got a
// turn, for ever on a session of one path (at 9,000 idle sessions it took the server's CPU).
func TestIdleSuspectWriterTakesKicks(t *testing.T) {
	var passed atomic.Int64
	l, _ := startHookedListener(t, nil, &testHooks{passedOn: func(*path) { passed.Add(1) }})
	c, s := dialTo(t, l, &Config{Paths: 1})
	echoOnce(t, c, s)
	testutil.WaitFor(t, s.shared.idle.Load, "the session to be idle")
	s.mu.Lock()
	p := s.paths[0].path
	s.mu.Unlock()
	// Heard from "elsewhere" after the path: suspect.
	s.shared.lastHeard.Store(p.lastRecv.Load() + int64(3*s.cfg.MinRTO))
	if !p.suspect() {
		t.Fatal("the path is not suspect: the test tests nothing")
	}
	c.mu.Lock()
	cp := c.paths[0].path
	c.mu.Unlock()
	before := cp.bytesRead()
	kick(s.shared.creditKick)
	kick(s.shared.ackKick)
	time.Sleep(100 * time.Millisecond)
	if n := passed.Load(); n != 0 {
		t.Errorf("an idle session's only writer passed its kicks on %d times", n)
	}
	if cp.bytesRead() == before {
		t.Error("nothing written for the kicks: the client read no CREDIT")
	}
}

// TestOnIdleGrid: an idle timer waits at least what it asked for, less than one grid step more,
// and ends on the grid, whatever the wait.
func TestOnIdleGrid(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, idleGrid / 3, idleGrid, 25 * time.Second, 54*time.Second + 7*time.Millisecond} {
		now := time.Now()
		w := onIdleGrid(d)
		end := now.Add(w)
		if w < d || w > d+idleGrid+10*time.Millisecond {
			t.Errorf("onIdleGrid(%v) = %v: not within one grid step above", d, w)
		}
		if off := end.Sub(end.Truncate(idleGrid)); off > 10*time.Millisecond && off < idleGrid-10*time.Millisecond {
			t.Errorf("onIdleGrid(%v) ends %v past the grid", d, off)
		}
	}
}
