package session

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// dozingReaders counts s's paths whose readers doze.
func dozingReaders(s *Session) int {
	n := 0
	for _, p := range s.pathList() {
		if p.dozing.Load() {
			n++
		}
	}
	return n
}

// readerGoroutines counts the goroutines of the process running a path's reader.
func readerGoroutines() int {
	buf := make([]byte, 4<<20)
	return bytes.Count(buf[:runtime.Stack(buf, true)], []byte("session.(*path).readLoop("))
}

// listenerConns returns what l counts against its connection limits: open connections, and
// those from 127.0.0.1.
func listenerConns(l *Listener) (open, perIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.perIP["127.0.0.1"]
}

// TestIdleReadersDoze: the readers of an idle session's paths doze at both ends (no goroutine
// runs them, the server still counts their connections), the paths stay live through many idle
// timeouts (each PING wakes its path's reader, which dozes again), messages of every size go both
// ways, and Close, then the Listener's Close, end every reader.
func TestIdleReadersDoze(t *testing.T) {
	testutil.CheckLeaks(t)
	var dozes atomic.Int64
	l, _ := startHookedListener(t, idleParkConfig(), &testHooks{readerDozed: func(*path) { dozes.Add(1) }})
	c, s := dialTo(t, l, idleParkConfig())
	waitPaths(s, 2)
	waitPaths(c, 2)
	echoOnce(t, c, s)
	for _, e := range []*Session{c, s} {
		testutil.WaitFor(t, func() bool { return dozingReaders(e) == 2 }, "both readers to doze")
	}
	if n := readerGoroutines(); n != 0 {
		t.Fatalf("%d reader goroutines while every reader dozes", n)
	}
	if open, perIP := listenerConns(l); open != 2 || perIP != 2 {
		t.Fatalf("listener counts %d connections (%d from 127.0.0.1) while both paths doze; want 2", open, perIP)
	}
	before := dozes.Load()
	time.Sleep(10 * idleParkConfig().IdleKeepAlive) // idle path timeout: PathTimeout + 2 IdleKeepAlive
	if dozes.Load() < before+4 {
		t.Errorf("readers dozed %d times over 10 IdleKeepAlives; each PING should wake one and it doze again", dozes.Load()-before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := bytes.Repeat([]byte("braid"), 200<<10)
	for round := range 3 {
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
		for _, e := range []*Session{c, s} {
			testutil.WaitFor(t, func() bool { return dozingReaders(e) == 2 }, "the readers to doze again")
		}
	}
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
	l.Close() // waits for every connection's handler, a dozing reader's included
	if open, perIP := listenerConns(l); open != 0 || perIP != 0 {
		t.Errorf("listener still counts %d connections (%d from 127.0.0.1) after Close", open, perIP)
	}
	if n := readerGoroutines(); n != 0 {
		t.Errorf("%d reader goroutines after Close", n)
	}
}

// TestDozingReaderEnds: a dozing reader reports its path's end whatever ends it — the path
// killed at this end, or the peer's connection gone — and the session carries on over the other
// path; an Abort with every reader dozing ends the session at both ends.
func TestDozingReaderEnds(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startHookedListener(t, idleParkConfig(), nil)
	c, s := dialTo(t, l, idleParkConfig())
	waitPaths(s, 2)
	waitPaths(c, 2)
	echoOnce(t, c, s)
	dozeAll := func() {
		for _, e := range []*Session{c, s} {
			testutil.WaitFor(t, func() bool { return dozingReaders(e) == len(liveList(e)) }, "every live reader to doze")
		}
	}
	dozeAll()
	// Killed here: the client's own reader must wake to report it.
	cp := liveList(c)[0]
	cp.kill(0, "")
	testutil.WaitFor(t, func() bool { return c.Stats().PathsDown >= 1 }, "the client to count its killed path down")
	testutil.WaitFor(t, func() bool { return s.Stats().PathsDown >= 1 }, "the server to see the path's connection end")
	echoOnce(t, c, s)
	dozeAll()
	// The peer's connection closed under a dozing reader (no CLOSE, no ERROR): the socket's end
	// wakes it.
	sp := liveList(s)[0]
	sp.conn.Close()
	testutil.WaitFor(t, func() bool { return c.Stats().PathsDown >= 2 }, "the client to see the second path end")
	echoOnce(t, c, s)
	dozeAll()
	c.Abort()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the server session outlived the client's Abort by 10 s")
	}
	testutil.WaitFor(t, func() bool { return readerGoroutines() == 0 && dozingReaders(c)+dozingReaders(s) == 0 }, "every reader to end")
}

// liveList returns s's live paths.
func liveList(s *Session) []*path {
	var live []*path
	for _, p := range s.pathList() {
		if !p.dead.Load() {
			live = append(live, p)
		}
	}
	return live
}

// TestPollerBrokenWakesDozers: if the poller stops, every dozing reader is woken to read as it
// did before dozing, and none dozes again; the session keeps working.
func TestPollerBrokenWakesDozers(t *testing.T) {
	l, _ := startHookedListener(t, idleParkConfig(), nil)
	c, s := dialTo(t, l, idleParkConfig())
	waitPaths(s, 2)
	waitPaths(c, 2)
	echoOnce(t, c, s)
	for _, e := range []*Session{c, s} {
		testutil.WaitFor(t, func() bool { return dozingReaders(e) == 2 }, "both readers to doze")
	}
	pollBroken(errors.New("test: poller stopped"))
	t.Cleanup(func() {
		poller.mu.Lock()
		poller.broken = nil // the poller goroutine itself still runs: later tests may doze
		poller.mu.Unlock()
	})
	testutil.WaitFor(t, func() bool { return dozingReaders(c)+dozingReaders(s) == 0 && readerGoroutines() == 4 }, "every reader to run again")
	time.Sleep(5 * idleParkConfig().IdleKeepAlive) // keepalives, after which a reader would doze
	if n := dozingReaders(c) + dozingReaders(s); n != 0 {
		t.Fatalf("%d readers dozed with the poller stopped", n)
	}
	echoOnce(t, c, s)
}
