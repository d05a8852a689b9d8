package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// TestPeerCloseDuringSend: the peer closing while a large Send is placing its chunks must not
// free a chunk still being placed (the race detector saw the same buffer reused).
func TestPeerCloseDuringSend(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, &Config{ChunkSize: 1 << 10, Linger: 2 * time.Second})
	for range 10 {
		c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{ChunkSize: 1 << 10, Paths: 2, Linger: 2 * time.Second}))
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
	// Without TLS: a TLS connection always has CloseWrite (it sends close_notify).
	l, err := NewListener(hideCloseWrite{ln}, &Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := Dial(context.Background(), ln.Addr().String(), &Config{Paths: 2, Insecure: true})
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

// TestKillWhileWriterReturns: a path killed while its writer was returning after writing CLOSE
// has its connection closed all the same. Neither closed it once, and the reader then waited for
// a peer that never hangs up: a Shutdown whose session aborted at that moment (its deadline
// passed) waited out the session's Linger, and Close after its Linger forever.
func TestKillWhileWriterReturns(t *testing.T) {
	testutil.CheckLeaks(t)
	hooks := &testHooks{finishWritten: func(p *path) {
		p.eng.(*Session).abort(fmt.Errorf("%w: test", ErrSessionClosed), wire.CodeSessionClosed)
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

// TestCloseReportsUndelivered: Close returns nil only when the peer acknowledged everything sent;
// a linger that expires with chunks unacknowledged, or a peer that closes first, makes it return
// ErrUndelivered, and every later call says the same.
func TestCloseReportsUndelivered(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer func(p *rawPath) // what the raw peer does once the message is sent
	}{
		{"linger expires", func(*rawPath) {}},
		{"peer closes first", func(p *rawPath) { p.send(wire.TypeClose, wire.AppendUint64(nil, 0)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quietConfig()
			cfg.Linger = 300 * time.Millisecond
			l, _ := startListener(t, cfg)
			a, _ := openRawSession(t, l.Addr().String(), 0, 4096)
			defer a.conn.Close()
			var readers sync.WaitGroup
			defer readers.Wait()
			a.discard(&readers) // reads, never acknowledges
			srv := acceptOne(t, l)
			if err := srv.Send(context.Background(), []byte("never acknowledged")); err != nil {
				t.Fatal(err)
			}
			tc.peer(a)
			err := srv.Close()
			if !errors.Is(err, ErrUndelivered) {
				t.Fatalf("Close: %v, want ErrUndelivered", err)
			}
			if again := srv.Close(); !errors.Is(again, ErrUndelivered) {
				t.Fatalf("second Close: %v", again)
			}
		})
	}
	t.Run("everything acknowledged", func(t *testing.T) {
		l, _ := startListener(t, nil)
		c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 2}))
		if err != nil {
			t.Fatal(err)
		}
		srv := acceptOne(t, l)
		defer srv.Abort()
		if err := c.Send(context.Background(), make([]byte, 100_000)); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close after delivery: %v", err)
		}
	})
}
