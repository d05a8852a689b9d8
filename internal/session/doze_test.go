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
	l, c, s := dozedPair(t, &testHooks{readerDozed: func(*path) { dozes.Add(1) }})
	// dozing is set just before a reader's goroutine returns, and keepalives wake readers:
	// there is a moment with none.
	testutil.WaitFor(t, func() bool { return readerGoroutines() == 0 }, "no reader goroutine while every reader dozes")
	if open, perIP := listenerConns(l); open != 2 || perIP != 2 {
		t.Fatalf("listener counts %d connections (%d from 127.0.0.1) while both paths doze; want 2", open, perIP)
	}
	before := dozes.Load()
	time.Sleep(10 * idleParkConfig().IdleKeepAlive) // idle path timeout: PathTimeout + 2 IdleKeepAlive
	if dozes.Load() < before+4 {
		t.Errorf("readers dozed %d times over 10 IdleKeepAlives; each PING should wake one and it doze again", dozes.Load()-before)
	}
	exchangeRounds(t, c, s, 3, func() { waitDozing(t, c, s, "the readers to doze again") })
	keptAndClosed(t, c, s) // every reader dozing: each must wake to read the peer's CLOSE
	l.Close()              // waits for every connection's handler, a dozing reader's included
	if open, perIP := listenerConns(l); open != 0 || perIP != 0 {
		t.Errorf("listener still counts %d connections (%d from 127.0.0.1) after Close", open, perIP)
	}
	if n := readerGoroutines(); n != 0 {
		t.Errorf("%d reader goroutines after Close", n)
	}
	notFiled(t, c, s)
}

// filed reports whether p is filed with the poller.
func (t *tokens) filed(p *path) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.pollToken != 0 && t.by[p.pollToken] == p
}

// notFiled fails t if a path of c or s is still filed with the poller: a session that has ended
// must not stay reachable from it.
func notFiled(t *testing.T, c, s *Session) {
	t.Helper()
	for _, e := range []*Session{c, s} {
		for _, p := range e.pathList() {
			if poller.filed(p) {
				t.Errorf("path %d still filed with the poller after its end", p.index)
			}
		}
	}
}

// TestDozingReaderEnds: a dozing reader reports its path's end whatever ends it — the path
// killed at this end, or the peer's connection gone — and the session carries on over the other
// path; an Abort with every reader dozing ends the session at both ends.
func TestDozingReaderEnds(t *testing.T) {
	testutil.CheckLeaks(t)
	_, c, s := dozedPair(t, nil)
	dozeAll := func() { waitDozing(t, c, s, "every live reader to doze") }
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
	notFiled(t, c, s)
}

// dozedPair opens a 2-path session with short keepalives to a listener with hooks, exchanges a
// message, and waits until every reader at both ends dozes.
func dozedPair(t *testing.T, hooks *testHooks) (l *Listener, c, s *Session) {
	t.Helper()
	l, _ = startHookedListener(t, idleParkConfig(), hooks)
	c, s = dialTo(t, l, idleParkConfig())
	waitPaths(s, 2)
	waitPaths(c, 2)
	echoOnce(t, c, s)
	waitDozing(t, c, s, "every reader to doze")
	return l, c, s
}

// waitDozing waits until every live path's reader of each session dozes.
func waitDozing(t *testing.T, c, s *Session, what string) {
	t.Helper()
	for _, e := range []*Session{c, s} {
		testutil.WaitFor(t, func() bool { return dozingReaders(e) == len(liveList(e)) }, what)
	}
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
	_, c, s := dozedPair(t, nil)
	pollBroken()
	t.Cleanup(func() { pollerOff.Store(false) }) // the poller goroutine still runs: later tests may doze
	testutil.WaitFor(t, func() bool { return dozingReaders(c)+dozingReaders(s) == 0 && readerGoroutines() == 4 }, "every reader to run again")
	time.Sleep(5 * idleParkConfig().IdleKeepAlive) // keepalives, after which a reader would doze
	if n := dozingReaders(c) + dozingReaders(s); n != 0 {
		t.Fatalf("%d readers dozed with the poller stopped", n)
	}
	echoOnce(t, c, s)
}

// TestKillWhileDozing: a path killed, and its connection closed, while its reader is between
// saying it dozes and arming the poller (which then fails) is read by exactly one goroutine to
// its end: no second reader, no path left filed with the poller, and the session goes on over
// its other path.
func TestKillWhileDozing(t *testing.T) {
	testutil.CheckLeaks(t)
	var target atomic.Pointer[path]
	var hits atomic.Int64
	hooks := &testHooks{dozeArming: func(p *path) {
		if p == target.Load() && hits.Add(1) == 1 {
			p.kill(0, "")
			p.conn.Close()
		}
	}}
	_, c, s := dozedPair(t, hooks)
	p := liveList(s)[0]
	target.Store(p)
	p.wakeReader() // run it: it dozes again, and meets the kill on the way
	testutil.WaitFor(t, func() bool { return hits.Load() > 0 && s.Stats().PathsDown == 1 }, "the killed path to end")
	echoOnce(t, c, s)
	c.Abort()
	<-s.Done()
	testutil.WaitFor(t, func() bool { return readerGoroutines() == 0 }, "every reader to end")
	notFiled(t, c, s)
}

// TestIdleReceiveLeavesInlineRead: a server that answers messages from a Receive loop (which
// reads a path itself after a one-chunk message, inline.go) gives that path back when the
// session turns idle, so that its reader dozes rather than waiting parked while the Receive
// waits; the next message is still answered.
func TestIdleReceiveLeavesInlineRead(t *testing.T) {
	_, c, s := dozedPair(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := echoing(s)
	for round := range 3 {
		msg := []byte{'r', byte('0' + round)}
		if err := c.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Receive(ctx); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: %q, %v", round, got, err)
		}
		waitDozing(t, c, s, "every reader to doze while the server waits in Receive")
		testutil.WaitFor(t, func() bool { return readerGoroutines() == 0 }, "no reader goroutine, parked or reading, while idle")
	}
	s.Abort()
	<-served
}
