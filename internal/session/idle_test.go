package session

import (
	"bytes"
	"runtime"
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
	testutil.WaitFor(t, c.shared.idle.Load, "the session to be idle")
	buf := make([]byte, 1<<20)
	st := buf[:runtime.Stack(buf, true)]
	if bytes.Contains(st, []byte("(*Session).monitorRun")) {
		t.Fatalf("a monitor run is parked while the session is idle:\n%s", st)
	}
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
