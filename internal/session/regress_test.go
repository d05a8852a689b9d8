package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// Regression tests for bugs found in review; each failed before its fix.

// drain receives and releases messages until the session ends, counting them.
func drain(s *Session, n *atomic.Int64) {
	for {
		m, err := s.Receive(context.Background())
		if err != nil {
			return
		}
		n.Add(1)
		s.Release(m)
	}
}

// TestCreditSurvivesPathLoss: a CREDIT frame lost with a blackholed path is sent again, so the
// sender is not left waiting for window that is already free.
func TestCreditSurvivesPathLoss(t *testing.T) {
	f := newFaultSetup(t, 2, func(c *Config) {
		c.SessionWindow = 1 << 20
		c.MaxMessageSize = 6 * (64 << 10)
		c.ResumeGrace = time.Minute
	})
	var got atomic.Int64
	go drain(f.server, &got)
	msg := make([]byte, 6*(64<<10))
	for i := range 40 {
		if i == 4 {
			f.proxies[0].Blackhole()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := f.client.Send(ctx, msg)
		cancel()
		if err != nil {
			t.Fatalf("Send %d with one path blackholed: %v", i, err)
		}
	}
	testutil.WaitFor(t, func() bool { return got.Load() == 40 }, "all 40 messages (got %d)", got.Load())
	f.proxies[0].Restore()
}

// TestPeerCloseDuringSend: the peer closing while a large Send is placing its chunks must not
// free a chunk still being placed (the race detector saw the same buffer reused).
func TestPeerCloseDuringSend(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, &Config{ChunkSize: 1 << 10, Linger: 2 * time.Second})
	for range 10 {
		c, err := Dial(context.Background(), l.Addr().String(), &Config{ChunkSize: 1 << 10, Paths: 2, Linger: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		s := acceptOne(t, l)
		done := make(chan error, 1)
		go func() { done <- c.Send(context.Background(), make([]byte, 4<<20)) }()
		time.Sleep(time.Millisecond)
		s.Close()
		if err := <-done; err != nil && !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Send: %v, want nil or ErrSessionClosed", err)
		}
		c.Close()
	}
}

// TestAttachSlotsBounded: attaches that fail before ATTACH_OK give their slot back, and paths
// attached and dropped over and over are eventually refused instead of piling up.
func TestAttachSlotsBounded(t *testing.T) {
	l, _ := startListener(t, &Config{MaxPaths: 3})
	_, acc := openRaw(t, l.Addr().String(), 64<<10)
	acceptOne(t, l)
	// Each attach below is in slot 1, and is over, refused or ended, once the server holds no
	// connection but the session's first path's: the next one does not find the slot busy.
	handled := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.conns) == 1
	}
	attach := wire.AppendSessionAttach(nil, wire.SessionAttach{ID: acc.ID, Token: acc.Token, Slot: 1})
	for range 10 { // reset before reading ATTACH_OK
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		wire.NewWriter(c).WriteFrame(wire.TypeSessionAttach, attach)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		testutil.WaitFor(t, handled, "the attach to be handled")
	}
	p := dialRaw(t, l.Addr().String())
	p.send(wire.TypeSessionAttach, attach)
	if f := p.recv(); f.Type != wire.TypeAttachOK {
		t.Fatalf("legitimate attach after failed ones: %s", f.Type)
	}
	p.readUntil(wire.TypePing, "the path's probe") // it has joined
	// Attach and drop until refused: at most MaxPaths × 16 over the session's life.
	for i := 0; ; i++ {
		if i > 3*maxAttachesPerPath+10 {
			t.Fatal("attaches never refused")
		}
		q := dialRaw(t, l.Addr().String())
		q.send(wire.TypeSessionAttach, attach)
		f := q.recv()
		if f.Type == wire.TypeError {
			if e, _ := wire.ParseError(f.Payload); e.Code != wire.CodeTooManyPaths || !strings.Contains(e.Message, "over the session's life") {
				t.Fatalf("refused with %s (%s)", e.Code, e.Message)
			}
			break
		}
		q.conn.Close()
		testutil.WaitFor(t, handled, "the attach to be handled")
	}
}

// hideCloseWrite wraps a listener's connections so that they lack CloseWrite, as those of
// netutil.LimitListener do.
type hideCloseWrite struct{ net.Listener }

type connOnly struct{ net.Conn }

func (l hideCloseWrite) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return connOnly{c}, nil
}

// TestListenerWithoutCloseWrite: closing a session on connections without CloseWrite does not
// panic, and the peer still sees end of stream.
func TestListenerWithoutCloseWrite(t *testing.T) {
	testutil.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewListener(hideCloseWrite{ln}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := Dial(context.Background(), ln.Addr().String(), &Config{Paths: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	go s.Close()
	if _, err := c.Receive(context.Background()); err != io.EOF {
		t.Fatalf("client after the server's Close: %v, want io.EOF", err)
	}
	c.Close()
}

// TestLingerCountsProgress: a graceful Close over a slow path takes as long as the data needs,
// since acknowledgements keep arriving; Linger bounds only time without progress.
func TestLingerCountsProgress(t *testing.T) {
	f := newFaultSetup(t, 1, func(c *Config) {
		c.Linger = time.Second
		c.PathTimeout = 10 * time.Second
		c.MinRTO = 5 * time.Second
	})
	f.proxies[0].Throttle(2 << 20)
	msg := make([]byte, 1<<20)
	for range 6 {
		if err := f.client.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan struct{})
	go func() {
		f.client.Close()
		close(closed)
	}()
	var got atomic.Int64
	drain(f.server, &got)
	<-closed
	if got.Load() != 6 || errors.Is(f.server.Err(), ErrSessionClosed) && strings.Contains(f.server.Err().Error(), "linger") {
		t.Fatalf("server got %d of 6 messages; err %v", got.Load(), f.server.Err())
	}
}

// TestStallRecoversWhilePeerStreams: a path stalled by a brief blackhole is probed and used
// again even though the peer's stream of data (and our ACKs) keeps it from ever being idle.
func TestStallRecoversWhilePeerStreams(t *testing.T) {
	f := newFaultSetup(t, 1, func(c *Config) { c.PathTimeout = 3 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the server streams to the client
		msg := make([]byte, 16<<10)
		for f.server.Send(ctx, msg) == nil {
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var c2s, s2c atomic.Int64
	go drain(f.client, &s2c)
	go drain(f.server, &c2s)
	go func() {
		msg := make([]byte, 64<<10)
		for f.client.Send(ctx, msg) == nil {
		}
	}()
	time.Sleep(300 * time.Millisecond)
	f.proxies[0].Blackhole()
	time.Sleep(600 * time.Millisecond)
	f.proxies[0].Restore()
	before := c2s.Load()
	testutil.WaitFor(t, func() bool { return c2s.Load() > before+10 }, "the client's messages to flow again while the server streams")
}

// TestWriteTimeoutShorterThanKeepAlive: an idle path's first write after a long wait is not
// failed by a write deadline armed before the wait.
func TestWriteTimeoutShorterThanKeepAlive(t *testing.T) {
	cfg := &Config{WriteTimeout: 300 * time.Millisecond, KeepAlive: 2 * time.Second, PathTimeout: 5 * time.Second}
	l, _ := startListener(t, cfg)
	logs := &testutil.SyncBuffer{}
	ccfg := faultConfig(logs)
	ccfg.WriteTimeout, ccfg.KeepAlive, ccfg.PathTimeout = cfg.WriteTimeout, cfg.KeepAlive, cfg.PathTimeout
	c, err := Dial(context.Background(), l.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	defer s.Abort()
	time.Sleep(time.Second)
	if err := c.Send(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Receive(context.Background()); err != nil || string(m) != "hello" {
		t.Fatalf("%q %v", m, err)
	}
	if strings.Contains(logs.String(), "path down") {
		t.Fatalf("a path went down:\n%s", logs.String())
	}
}

// TestCloseNotHeldBySendWithoutPath: Close with a Send stuck for lack of any path returns within
// Linger's reach, not after the whole ResumeGrace.
func TestCloseNotHeldBySendWithoutPath(t *testing.T) {
	f := newFaultSetup(t, 1, func(c *Config) {
		c.Linger = 500 * time.Millisecond
		c.ResumeGrace = 30 * time.Second
	})
	var got atomic.Int64
	go drain(f.server, &got)
	go func() {
		msg := make([]byte, 1<<20)
		for f.client.Send(context.Background(), msg) == nil {
		}
	}()
	time.Sleep(300 * time.Millisecond)
	f.proxies[0].Cut()
	time.Sleep(300 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		f.client.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // Linger is 0.5 s; the grace period 30 s
		t.Fatal("Close waited for the grace period")
	}
}

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

// TestWriterRearmedAfterSuspect: a path whose writer went back to waiting while the path was
// suspect (silent while another was heard) listened for no ACK kicks. Once heard from again it
// must take them, or an ACK waits for the peer's retransmission timeout (or a keepalive).
func TestWriterRearmedAfterSuspect(t *testing.T) {
	f := newFaultSetup(t, 1, func(c *Config) {
		c.MinRTO = time.Second // the peer's RTO, and how long a silent path takes to be suspect
		c.KeepAlive = 30 * time.Second
		c.PathTimeout = time.Minute
	})
	s := f.server
	s.mu.Lock()
	sp := s.paths[0]
	s.mu.Unlock()
	// Suspect: another path was heard just now, this one long ago. Its writer loops (a kick it
	// always listens for) and goes back to waiting with the ACK and CREDIT kicks off.
	s.lastHeard.Store(int64(s.clock()))
	sp.lastRecv.Store(int64(s.clock() - 5*time.Second))
	kick(sp.capKick)
	time.Sleep(20 * time.Millisecond)

	// The client's message makes the path heard again; its ACK must follow without the
	// client's retransmission timeout.
	if err := f.client.Send(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.client.mu.Lock()
	cp := f.client.paths[0]
	f.client.mu.Unlock()
	acked := func() bool {
		f.client.mu.Lock()
		defer f.client.mu.Unlock()
		return f.client.out.Len() == 0
	}
	testutil.WaitFor(t, func() bool { return acked() || cp.rtoBackoff.Load() > 0 }, "the message to be acknowledged")
	if n := cp.rtoBackoff.Load(); n > 0 {
		t.Fatalf("the ACK came only after %d retransmission timeout(s): the server's writer was not re-armed", n)
	}
}

// TestKillWhileWriterReturns: a path killed while its writer was returning after writing CLOSE
// has its connection closed all the same. Neither closed it once, and the reader then waited for
// a peer that never hangs up: a Shutdown whose session aborted at that moment (its deadline
// passed) waited out the session's Linger, and Close after its Linger forever.
func TestKillWhileWriterReturns(t *testing.T) {
	testutil.CheckLeaks(t)
	hooks := &testHooks{finishWritten: func(p *path) {
		p.s.abort(fmt.Errorf("%w: test", ErrSessionClosed), wire.CodeSessionClosed)
	}}
	l, _ := startHookedListener(t, &Config{Linger: time.Minute}, hooks)
	raw, _ := openRaw(t, l.Addr().String(), 4096)
	defer raw.conn.Close()
	raw.conn.SetDeadline(time.Time{})
	srv := acceptOne(t, l)
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second): // the Linger is a minute; the peer never hangs up
		t.Fatal("Close waited for a peer that never hangs up")
	}
	if !errors.Is(srv.Err(), ErrSessionClosed) {
		t.Fatalf("session: %v", srv.Err())
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
