package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/braidnet/braid/internal/testutil"
)

// delayProxy forwards TCP connections to upstream, holding each piece of data for delay in the
// client-to-server direction: a slow path.
func delayProxy(t *testing.T, upstream string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer up.(*net.TCPConn).CloseWrite()
				buf := make([]byte, 32<<10)
				for {
					n, err := down.Read(buf)
					if n > 0 {
						time.Sleep(delay)
						if _, werr := up.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				io.Copy(down, up)
				down.Close()
				up.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestReorderingSlowPath: one of three paths delays everything, so its chunks arrive long after
// later chunks on the other paths; delivery is still exact and in order.
func TestReorderingSlowPath(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, nil)
	slow := delayProxy(t, l.Addr().String(), 3*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	specs := []PathSpec{{Remote: l.Addr().String()}, {Remote: slow}, {Remote: l.Addr().String()}}
	c, err := DialPaths(ctx, specs, pinned(&Config{ChunkSize: 4 << 10}))
	if err != nil {
		t.Fatal(err)
	}
	s := acceptOne(t, l)
	var msgs [][]byte
	for i := range 40 {
		m := make([]byte, (i*7919)%100_000)
		rand.Read(m)
		msgs = append(msgs, m)
	}
	go func() {
		for _, m := range msgs {
			if err := c.Send(ctx, m); err != nil {
				t.Error(err)
				return
			}
		}
		c.Close()
	}()
	for i, want := range msgs {
		got, err := s.Receive(ctx)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes (want %d), %v", i, len(got), len(want), err)
		}
	}
	if _, err := s.Receive(ctx); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	for _, p := range s.Stats().Paths {
		if p.ChunksReceived == 0 {
			t.Errorf("path %d received no chunks", p.Index)
		}
	}
	s.Close()
}

// TestBackpressure: a reader that stops reading makes Send block once the window is full; the
// receiver never holds more than its window.
func TestBackpressure(t *testing.T) {
	testutil.CheckLeaks(t)
	const window = 1 << 20
	cfg := &Config{ChunkSize: 16 << 10, SessionWindow: window, MaxMessageSize: 256 << 10, Paths: 2}
	l, _ := startListener(t, cfg)
	c, err := Dial(context.Background(), l.Addr().String(), pinned(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	defer s.Abort()
	msg := make([]byte, 100_000)
	sent := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := c.Send(ctx, msg)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 100 {
			t.Fatal("Send never blocked")
		}
	}
	// 100 000 bytes is 7 chunks of 16 KiB: 114 752 bytes of charge; 9 fit in 1 MiB.
	if sent != 9 {
		t.Errorf("sent %d messages before blocking, want 9", sent)
	}
	// The reader stays away for seconds: the sender keeps trying, stays blocked, and neither end
	// holds more than the window.
	blocked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		blocked <- c.Send(ctx, msg)
	}()
	if err := <-blocked; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send while the reader is away: %v, want to block until its deadline", err)
	}
	s.mu.Lock()
	charged := s.reasm.Charged()
	s.mu.Unlock()
	c.mu.Lock()
	outstanding := int64(0)
	c.out.Each(func(_ uint64, oc *outChunk) { outstanding += int64(len(oc.payload)) })
	inFlight := c.sendFlow.Outstanding()
	c.mu.Unlock()
	if charged > window {
		t.Fatalf("receiver holds %d bytes, window %d", charged, window)
	}
	if outstanding > window || inFlight > window {
		t.Fatalf("sender holds %d bytes unacknowledged and %d unconsumed, window %d", outstanding, inFlight, window)
	}
	// Reading frees the window and Send proceeds.
	for range sent {
		if _, err := s.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, msg); err != nil {
		t.Fatalf("Send after the reader caught up: %v", err)
	}
}

func TestConnView(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, nil)
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 3}))
	if err != nil {
		t.Fatal(err)
	}
	s := acceptOne(t, l)
	cc, sc := c.Conn(), s.Conn()
	data := make([]byte, 20<<20+12345)
	rand.Read(data)
	// Both directions at once: the client streams data, the server echoes it back.
	go func() {
		io.Copy(sc, sc)
		sc.Close()
	}()
	go func() {
		if _, err := io.Copy(cc, bytes.NewReader(data)); err != nil {
			t.Error(err)
		}
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, cc, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("echoed stream differs")
	}
	// A read deadline in the past fails at once with a timeout.
	cc.SetReadDeadline(time.Now().Add(-time.Second))
	var ne net.Error
	if _, err := cc.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	cc.SetReadDeadline(time.Time{})
	if cc.LocalAddr() == nil || cc.RemoteAddr() == nil {
		t.Fatal("no addresses")
	}
	cc.Close()
	if _, err := cc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestCloseReleasesEverything: after Close on both sides no goroutine remains and the server
// forgets the session.
func TestCloseReleasesEverything(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startHookedListener(t, nil, withRecording(nil))
	before := runtime.NumGoroutine()
	for range 5 {
		c, err := dialRecorded(context.Background(), l.Addr().String(), pinned(&Config{Paths: 4}))
		if err != nil {
			t.Fatal(err)
		}
		s := acceptOne(t, l)
		if err := c.Send(context.Background(), make([]byte, 300_000)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
		for _, s := range []*Session{c, s} {
			if n := danglingHolds(t, s); n != 0 {
				t.Fatalf("%s: %d chunk holds never let go of", s, n)
			}
		}
	}
	testutil.WaitFor(t, func() bool { return l.Sessions() == 0 && runtime.NumGoroutine() <= before }, "sessions and goroutines released (%d > %d)", runtime.NumGoroutine(), before)

	// An aborted session is released too, and its peer sees a matchable error.
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 2}))
	if err != nil {
		t.Fatal(err)
	}
	s := acceptOne(t, l)
	c.Abort()
	if _, err := s.Receive(context.Background()); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("peer of an aborted session: %v", err)
	}
	testutil.WaitFor(t, func() bool { return l.Sessions() == 0 }, "aborted session forgotten")
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

// TestSmallChunkWrittenInline: a small chunk for an idle path is written by the sender itself
// (writeNow), not handed to the path's writer through its queue; a large one goes through the
// queue.
func TestSmallChunkWrittenInline(t *testing.T) {
	var queued atomic.Int32
	hooks := &testHooks{enqueueing: func(*path, *outChunk) { queued.Add(1) }}
	l, _ := startHookedListener(t, quietConfig(), hooks)
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	srv := acceptOne(t, l)
	defer srv.Abort()
	// The writer may hold the path for a moment (a keepalive, a credit) when the small chunk
	// comes, on a loaded machine: it then rightly goes through the queue, so the small size has
	// a few tries to show the inline write; a large chunk must never be written inline.
	for _, tc := range []struct {
		size   int
		queued bool
		tries  int
	}{{64, false, 5}, {inlineMax + 1, true, 1}} {
		got := !tc.queued
		for range tc.tries {
			queued.Store(0)
			if err := srv.Send(context.Background(), make([]byte, tc.size)); err != nil {
				t.Fatal(err)
			}
			m, err := c.Receive(context.Background())
			if err != nil || len(m) != tc.size {
				t.Fatalf("received %d bytes, %v", len(m), err)
			}
			got = queued.Load() > 0
			// Wait for the acknowledgement, so that the next chunk finds nothing in flight.
			testutil.WaitFor(t, func() bool {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				return srv.out.Len() == 0
			}, "the %d-byte message to be acknowledged", tc.size)
			if got == tc.queued {
				break
			}
		}
		if got != tc.queued {
			t.Errorf("%d-byte message: through the queue %v, want %v", tc.size, got, tc.queued)
		}
	}
}

// TestSendNoCopy: the session reads the caller's message without copying it, and hands it back
// exactly once: after the peer acknowledged it, when the session ends with it unacknowledged, and
// at once in a coded mode.
func TestSendNoCopy(t *testing.T) {
	t.Run("acknowledged", func(t *testing.T) {
		c, srv := dialPair(t, nil, &Config{Paths: 2, ChunkSize: 4096})
		msg := make([]byte, 100_000)
		for i := range msg {
			msg[i] = byte(i * 13)
		}
		want := append([]byte(nil), msg...)
		var done atomic.Int32
		if err := c.SendNoCopy(context.Background(), msg, func() { done.Add(1) }); err != nil {
			t.Fatal(err)
		}
		got, err := srv.Receive(context.Background())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("received %d bytes (equal %v), %v", len(got), bytes.Equal(got, want), err)
		}
		testutil.WaitFor(t, func() bool { return done.Load() > 0 }, "the message to be handed back")
		c.Close()
		if n := done.Load(); n != 1 {
			t.Fatalf("done ran %d times", n)
		}
	})
	t.Run("never acknowledged", func(t *testing.T) {
		l, _ := startListener(t, quietConfig())
		a, _ := openRawSession(t, l.Addr().String(), 0, 4096)
		defer a.conn.Close()
		srv := acceptOne(t, l)
		var done atomic.Int32
		if err := srv.SendNoCopy(context.Background(), make([]byte, 10_000), func() { done.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if n := done.Load(); n != 0 {
			t.Fatalf("done ran before any acknowledgement")
		}
		srv.Abort()
		if n := done.Load(); n != 1 {
			t.Fatalf("done ran %d times once the session ended, want 1", n)
		}
	})
	t.Run("done calls the session", func(t *testing.T) {
		// done runs holding none of the session's locks: it may ask for Stats, or send the
		// next message, as a sender recycling its buffers does.
		c, srv := dialPair(t, nil, &Config{Paths: 2, ChunkSize: 4096})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sent := make(chan error, 1)
		var acked atomic.Uint64
		if err := c.SendNoCopy(ctx, make([]byte, 50_000), func() {
			acked.Store(c.Stats().Paths[0].BytesAcked + c.Stats().Paths[1].BytesAcked)
			sent <- c.Send(ctx, []byte("after done"))
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, err := srv.Receive(ctx); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("Send from done: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("done never finished: it blocked on the session")
		}
		if acked.Load() == 0 {
			t.Error("Stats from done saw nothing acknowledged")
		}
	})
	t.Run("coded", func(t *testing.T) {
		l, _ := startListener(t, nil)
		c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 3, Mode: "shamir:2/3"}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Abort()
		srv := acceptOne(t, l)
		defer srv.Abort()
		var done atomic.Int32
		msg := []byte("encoded at once")
		if err := c.SendNoCopy(context.Background(), msg, func() { done.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if n := done.Load(); n != 1 {
			t.Fatalf("done ran %d times by the time SendNoCopy returned, want 1", n)
		}
		copy(msg, "XXXXXXXXXXXXXXX")
		if got, err := srv.Receive(context.Background()); err != nil || string(got) != "encoded at once" {
			t.Fatalf("received %q, %v", got, err)
		}
	})
}

// TestConnConformance runs golang.org/x/net/nettest's net.Conn conformance tests (I/O, deadlines
// on pending calls, concurrent use, close) on a session's Conn view.
func TestConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		l, _ := startListener(t, &Config{Insecure: true})
		c, err := Dial(context.Background(), l.Addr().String(), &Config{Paths: 2, Insecure: true})
		if err != nil {
			return nil, nil, nil, err
		}
		s, err := l.Accept(context.Background())
		if err != nil {
			c.Abort()
			return nil, nil, nil, err
		}
		return c.Conn(), s.Conn(), func() { c.Abort(); s.Abort() }, nil
	})
}
