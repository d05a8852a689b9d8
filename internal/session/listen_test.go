package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
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
	l, err := Listen("127.0.0.1:0", serving(&Config{Linger: time.Minute, ResumeGrace: time.Minute, PathTimeout: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	c, err := DialPaths(context.Background(), []PathSpec{{Remote: proxy.Addr()}}, pinned(&Config{PathTimeout: time.Minute}))
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
	l, err := Listen("127.0.0.1:0", serving(&Config{HandshakeTimeout: time.Minute}))
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

// TestRefusedHandshakesLoggedAtBoundedRate: a guesser's refused attaches (bad tokens, unknown
// sessions) do not each write a warning: one gets through per interval, and the next one says how
// many were not logged; a legitimate attach is served meanwhile.
func TestRefusedHandshakesLoggedAtBoundedRate(t *testing.T) {
	l, logs := startListener(t, nil)
	l.refusals.mu.Lock()
	l.refusals.interval = time.Hour
	l.refusals.mu.Unlock()
	addr := l.Addr().String()
	first, acc := openRaw(t, addr, 4096)
	defer first.conn.Close()
	srv := acceptOne(t, l)
	defer srv.Abort()

	guess := func(i int) {
		p := dialRaw(t, addr)
		a := acc.attach(p, 1)
		code := wire.CodeBadToken
		if i%2 == 0 {
			a[len(a)-1] ^= 0xff
		} else {
			a[0] ^= 0xff
			code = wire.CodeUnknownSession
		}
		p.send(wire.TypeSessionAttach, a)
		p.expectError(code)
		p.conn.Close()
	}
	const tries = 20
	for i := range tries {
		guess(i)
	}
	if n := strings.Count(logs.String(), "handshake refused"); n != 1 {
		t.Fatalf("%d refusals logged for %d guesses, want 1:\n%s", n, tries, logs)
	}
	good := attachRaw(t, addr, acc, 1)
	defer good.conn.Close()
	good.expectAttachOK()

	l.refusals.mu.Lock()
	l.refusals.next = time.Time{} // the interval has passed
	l.refusals.mu.Unlock()
	guess(0)
	if !strings.Contains(logs.String(), fmt.Sprintf("others_not_logged=%d", tries-1)) {
		t.Fatalf("the next refusal logged does not count the %d before it:\n%s", tries-1, logs)
	}
}

// TestPartialFirstHeaderTimesOut: a connection that sends one byte of its first frame header and
// stalls is answered ERROR TIMEOUT and closed at HandshakeTimeout, not kept for ReadTimeout.
func TestPartialFirstHeaderTimesOut(t *testing.T) {
	l, _ := startListener(t, &Config{HandshakeTimeout: 300 * time.Millisecond, ReadTimeout: time.Hour})
	p := dialRaw(t, l.Addr().String())
	p.conn.SetDeadline(time.Now().Add(20 * time.Second)) // far below ReadTimeout
	if _, err := p.conn.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	p.expectError(wire.CodeTimeout)
}

// TestSilentSessionsDoNotLockOut: sessions opened with SESSION_NEW and then left silent, their
// connections open (a squatter's), end at HandshakeTimeout, so that they cannot keep MaxSessions
// full and lock real clients out; one whose only path closes before any frame ends at once.
func TestSilentSessionsDoNotLockOut(t *testing.T) {
	l, _ := startListener(t, &Config{MaxSessions: 4, HandshakeTimeout: 500 * time.Millisecond})
	addr := l.Addr().String()
	for range 4 {
		p, _ := openRaw(t, addr, 4096)
		p.conn.SetDeadline(time.Time{})
		defer p.conn.Close()
	}
	full := dialRaw(t, addr)
	full.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
	full.expectError(wire.CodeTooManySessions)
	testutil.WaitFor(t, func() bool { return l.Sessions() == 0 }, "the silent sessions to end (%d left)", l.Sessions())
	c, err := Dial(context.Background(), addr, pinned(&Config{Paths: 2}))
	if err != nil {
		t.Fatalf("a real client after the squatters: %v", err)
	}
	defer c.Abort()
	srv := acceptOne(t, l)
	defer srv.Abort()

}

// TestSilentSessionEndsWithItsPath: a session whose only path closes before any frame came over
// it ends at once, rather than waiting ResumeGrace for a re-dial.
func TestSilentSessionEndsWithItsPath(t *testing.T) {
	l, _ := startListener(t, &Config{HandshakeTimeout: time.Minute, ResumeGrace: 2 * time.Minute, Linger: time.Second})
	p, _ := openRaw(t, l.Addr().String(), 4096)
	testutil.WaitFor(t, func() bool { return l.Sessions() == 1 }, "the session (%d)", l.Sessions())
	p.conn.Close()
	testutil.WaitFor(t, func() bool { return l.Sessions() == 0 }, "the session to end (%d left)", l.Sessions())
}

// TestConnectionLimits: connections beyond MaxConnsPerIP from one address, or beyond MaxConns in
// all, are closed at accept, while clients within the limits are served, and a connection that
// ends gives its place back.
func TestConnectionLimits(t *testing.T) {
	l, _ := startListener(t, &Config{MaxConns: 6, MaxConnsPerIP: 3})
	addr := l.Addr().String()
	open := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.open
	}
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	refused := func(c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(20 * time.Second)) // HandshakeTimeout (10 s) would answer an accepted one
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil || isTimeout(err) {
			t.Fatalf("a connection over the limit was kept: %v", err)
		}
	}
	var idle []net.Conn
	for range 3 {
		idle = append(idle, dialFrom("127.0.0.1"))
	}
	testutil.WaitFor(t, func() bool { return open() == 3 }, "3 connections counted (%d)", open())
	refused(dialFrom("127.0.0.1")) // a fourth from the same address

	c, err := DialPaths(context.Background(), []PathSpec{{Local: "127.0.0.2", Remote: addr}, {Local: "127.0.0.2", Remote: addr}}, pinned(nil))
	if err != nil {
		t.Fatalf("a client from another address: %v", err)
	}
	defer c.Abort()
	srv := acceptOne(t, l)
	defer srv.Abort()
	dialFrom("127.0.0.3")
	testutil.WaitFor(t, func() bool { return open() == 6 }, "6 connections counted (%d)", open())
	refused(dialFrom("127.0.0.4")) // MaxConns

	for _, c := range idle {
		c.Close()
	}
	testutil.WaitFor(t, func() bool { return open() == 3 }, "the closed connections to give their places back (%d)", open())
	dialFrom("127.0.0.1")
	testutil.WaitFor(t, func() bool { return open() == 4 }, "a new connection from 127.0.0.1 counted (%d)", open())
}

// TestConnLimitFollowsOpenFiles: a Listener holds no more connections than the open-file limit
// allows, less a reserve, whatever MaxConns says.
func TestConnLimitFollowsOpenFiles(t *testing.T) {
	fds := fdLimit()
	if fds == 0 {
		t.Skip("the open-file limit is not known here")
	}
	if got := connLimit(fds * 2); got != fds-fdReserve {
		t.Errorf("connLimit(%d) = %d with an open-file limit of %d, want %d", fds*2, got, fds, fds-fdReserve)
	}
	if got := connLimit(10); got != 10 {
		t.Errorf("connLimit(10) = %d", got)
	}
}

// TestPendingSessionsPerIP: one address may hold only MaxPendingSessionsPerIP sessions that are
// not yet established; beyond that its SESSION_NEW is refused, while other addresses are served
// and established sessions keep working. A session leaves the count when its first frame arrives
// or when it ends.
func TestPendingSessionsPerIP(t *testing.T) {
	l, _ := startListener(t, &Config{MaxPendingSessionsPerIP: 3})
	addr := l.Addr().String()
	newSession := func() *rawPath {
		p := dialRaw(t, addr)
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		return p
	}
	var squat []*rawPath
	for range 3 {
		p, _ := openRaw(t, addr, 4096)
		squat = append(squat, p)
		acceptOne(t, l)
	}
	newSession().expectError(wire.CodeTooManySessions)
	// Another address is served, and stays so.
	c, err := DialPaths(context.Background(), []PathSpec{{Local: "127.0.0.2", Remote: addr}}, pinned(nil))
	if err != nil {
		t.Fatalf("a client from another address: %v", err)
	}
	defer c.Abort()
	srv := acceptOne(t, l)
	defer srv.Abort()
	echoOnce(t, c, srv)
	// A frame establishes a squatter's session: it no longer counts.
	squat[0].send(wire.TypePing, make([]byte, 8))
	squat[0].readUntil(wire.TypePong, "the PONG")
	p := newSession()
	if f := p.recv(); f.Type != wire.TypeSessionAccept {
		t.Fatalf("after one session was established: %s", f.Type)
	}
	acceptOne(t, l)
	// A session that ends gives its place back.
	squat[1].conn.Close()
	testutil.WaitFor(t, func() bool {
		l.table.mu.Lock()
		defer l.table.mu.Unlock()
		return l.table.pendingIP["127.0.0.1"] == 2
	}, "the ended session's place back")
	if f := newSession().recv(); f.Type != wire.TypeSessionAccept {
		t.Fatalf("after one session ended: %s", f.Type)
	}
	echoOnce(t, c, srv)
}

// TestMemoryBudget: the receive windows a server grants never add up to more than MaxMemory. A
// session gets SessionWindow while the budget allows, then what is left, and is refused when
// less than the smallest usable window is left; sessions already held keep their windows and
// keep working, and a session that ends gives its window back.
func TestMemoryBudget(t *testing.T) {
	const win = 1 << 20
	l, _ := startListener(t, &Config{SessionWindow: win, MaxMessageSize: 256 << 10, MaxMemory: 2*win + win/2})
	addr := l.Addr().String()
	granted := func() int64 {
		l.table.mu.Lock()
		defer l.table.mu.Unlock()
		return l.table.memGranted
	}
	var windows []uint64
	var raws []*rawPath
	for range 3 {
		p, acc := openRaw(t, addr, 4096)
		acceptOne(t, l)
		windows = append(windows, acc.Window)
		raws = append(raws, p)
	}
	if windows[0] != win || windows[1] != win || windows[2] != win/2 {
		t.Fatalf("windows granted %v, want %d, %d, %d", windows, win, win, win/2)
	}
	if g := granted(); g != 2*win+win/2 {
		t.Fatalf("granted %d, budget %d", g, 2*win+win/2)
	}
	p := dialRaw(t, addr)
	p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
	p.expectError(wire.CodeTooManySessions)
	// The session with half a window works within it: its client's messages are at most half.
	raws[2].send(wire.TypePing, make([]byte, 8))
	raws[2].readUntil(wire.TypePong, "the PONG")
	// One ends: its window returns, and the next session gets a full one.
	raws[0].conn.Close()
	testutil.WaitFor(t, func() bool { return granted() == win+win/2 }, "the window back (granted %d)", granted())
	_, acc := openRaw(t, addr, 4096)
	if acc.Window != win {
		t.Fatalf("after a session ended: window %d, want %d", acc.Window, win)
	}
}
