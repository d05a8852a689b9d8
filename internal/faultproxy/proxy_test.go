package faultproxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// failAfter bounds every wait in these tests; it only turns a hang into a
// failure and is never a performance threshold.
const failAfter = 5 * time.Second

// echoServer echoes every connection on 127.0.0.1 and records how each ended.
type echoServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int32
	ended    chan error // the io.Copy error of each connection (nil on EOF)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, ended: make(chan error, 64), conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, err := io.Copy(c, c)
				c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				select {
				case e.ended <- err:
				default:
				}
			}()
		}
	}()
	return e
}

func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// setup starts an echo server and a proxy to it; at the end of the test it
// closes both and checks that no goroutine is left.
func setup(t *testing.T) (*Proxy, *echoServer) {
	t.Helper()
	e := startEcho(t)
	p, err := New(e.ln.Addr().String())
	if err != nil {
		e.close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := p.Conns(); n != 0 {
			t.Errorf("Conns after Close = %d", n)
		}
		e.close()
		goleak.VerifyNone(t)
	})
	return p, e
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	expectRead(t, c, msg)
}

func expectRead(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failAfter))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("read %q, want %q", got, msg)
	}
}

// expectStall checks that a read with a 300 ms deadline times out with nothing.
func expectStall(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during blackhole = %d, %v; want a timeout", n, err)
	}
}

func expectReset(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failAfter))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read = %v, want ECONNRESET", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// echoAll writes data, half-closes, and returns everything read back until EOF.
func echoAll(t *testing.T, c *net.TCPConn, data []byte) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	c.SetReadDeadline(time.Now().Add(failAfter))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

// transfer sends n bytes through the echo without closing and reads them back.
func transfer(t *testing.T, c net.Conn, n int) {
	t.Helper()
	data := randomBytes(n)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	c.SetReadDeadline(time.Now().Add(failAfter))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	for _, a := range []string{"example.invalid:80", "0.0.0.0:80", "no-port"} {
		if p, err := New(a); err == nil {
			p.Close()
			t.Errorf("New(%q) succeeded", a)
		}
	}
	goleak.VerifyNone(t)
}

func TestForward(t *testing.T) {
	p, e := setup(t)
	c := dial(t, p)
	data := randomBytes(4 << 20)
	got := echoAll(t, c, data)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("got %d bytes, SHA-256 differs from the %d sent", len(got), len(data))
	}
	select {
	case err := <-e.ended:
		if err != nil {
			t.Fatalf("upstream ended with %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("upstream connection did not end")
	}
	eventually(t, "Conns() == 0", func() bool { return p.Conns() == 0 })
}

func TestReset(t *testing.T) {
	p, e := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "hello")
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns = %d, want 1", n)
	}
	p.Reset()
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Reset = %d, want 0", n)
	}
	expectReset(t, c)
	select {
	case err := <-e.ended:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("upstream side ended with %v, want ECONNRESET", err)
		}
	case <-time.After(failAfter):
		t.Fatal("upstream side was not reset")
	}
	roundTrip(t, dial(t, p), "new connections still work")
}

func TestResetMidTransfer(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := c.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	var rerr error
	for rerr == nil {
		_, rerr = c.Read(make([]byte, 64<<10))
	}
	werr := <-done
	// Linux reports a RST to one call only: with a reader and a writer both
	// busy, one gets ECONNRESET and the other EOF or EPIPE.
	if !errors.Is(rerr, syscall.ECONNRESET) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("read = %v, write = %v; want ECONNRESET from one of them", rerr, werr)
	}
}

func TestBlackhole(t *testing.T) {
	p, e := setup(t)
	c1 := dial(t, p)
	roundTrip(t, c1, "before")
	p.Blackhole()
	if _, err := c1.Write([]byte("held one")); err != nil {
		t.Fatal(err)
	}
	expectStall(t, c1)

	// A connection made during the blackhole is accepted but not forwarded.
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("held two")); err != nil {
		t.Fatal(err)
	}
	expectStall(t, c2)
	if n := e.accepted.Load(); n != 1 {
		t.Fatalf("upstream accepted %d connections during the blackhole, want 1", n)
	}
	if n := p.Conns(); n != 2 {
		t.Fatalf("Conns = %d, want 2", n)
	}
	select {
	case err := <-e.ended:
		t.Fatalf("upstream connection ended during the blackhole: %v", err)
	default:
	}

	p.Restore()
	expectRead(t, c1, "held one")
	expectRead(t, c2, "held two")
	roundTrip(t, c1, "after")
	roundTrip(t, c2, "after")
}

func TestBlackholeHoldsBulk(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "x")
	p.Blackhole()
	// More than the proxy queues: backpressure must hold the rest, nothing lost.
	data := randomBytes(2 << 20)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		werr <- err
	}()
	expectStall(t, c)
	p.Restore()
	c.SetReadDeadline(time.Now().Add(failAfter))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("held data corrupted")
	}
}

func TestCut(t *testing.T) {
	p, e := setup(t)
	c1 := dial(t, p)
	roundTrip(t, c1, "before")
	p.Cut()
	expectReset(t, c1)
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Cut = %d, want 0", n)
	}
	for range 3 {
		c, err := net.Dial("tcp4", p.Addr())
		if err != nil {
			continue // refused: fine too
		}
		expectReset(t, c)
		c.Close()
	}
	if n := e.accepted.Load(); n != 1 {
		t.Fatalf("upstream accepted %d connections, want 1", n)
	}
	p.Restore()
	roundTrip(t, dial(t, p), "after restore")
	if _, err := c1.Write([]byte("x")); err == nil {
		t.Fatal("a connection reset by Cut accepted a write after Restore")
	}
}

func TestThrottle(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "existing connection")
	const rate = 256 << 10
	p.Throttle(rate)
	start := time.Now()
	transfer(t, c, 128<<10)
	// 128 KiB at 256 KiB/s takes 500 ms each way; only a lower bound is checked.
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("128 KiB at 256 KiB/s took %v", el)
	}
	p.Restore()
	transfer(t, c, 1<<20)
}

func TestThrottleRestoreWakes(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	p.Throttle(1) // a trickle: 1 byte per second
	msg := string(randomBytes(1024))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.Restore()
	expectRead(t, c, msg)
}

func TestLatency(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	roundTrip(t, c, "existing connection")
	p.Latency(50 * time.Millisecond)
	start := time.Now()
	roundTrip(t, c, "ping")
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("round trip with 50 ms each way took %v", el)
	}
	// Many small writes keep their order; bulk data is intact.
	var want bytes.Buffer
	for i := range 200 {
		msg := []byte{byte(i), byte(i >> 8)}
		want.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	expectRead(t, c, want.String())
	transfer(t, c, 4<<20)
}

func TestLatencyRestoreWakes(t *testing.T) {
	p, _ := setup(t)
	c := dial(t, p)
	p.Latency(time.Hour)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.Restore()
	expectRead(t, c, "x")
}

func TestConns(t *testing.T) {
	p, _ := setup(t)
	var cs []*net.TCPConn
	for i := range 3 {
		c := dial(t, p)
		roundTrip(t, c, "hi")
		cs = append(cs, c)
		if n := p.Conns(); n != i+1 {
			t.Fatalf("Conns = %d, want %d", n, i+1)
		}
	}
	cs[0].Close()
	eventually(t, "Conns() == 2", func() bool { return p.Conns() == 2 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Close = %d", n)
	}
	expectReset(t, cs[1])
}

// TestCloseBusy closes a proxy with connections in every kind of wait: a
// throttled transfer, a latency queue, a blackholed dial; the cleanup checks
// that no goroutine survives.
func TestCloseBusy(t *testing.T) {
	p, _ := setup(t)
	var wg sync.WaitGroup
	busy := func(c net.Conn) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, c)
		}()
	}
	c1 := dial(t, p)
	roundTrip(t, c1, "x")
	c2 := dial(t, p)
	roundTrip(t, c2, "x")
	p.Throttle(64 << 10)
	busy(c1)
	p.Latency(20 * time.Millisecond)
	busy(c2)
	time.Sleep(200 * time.Millisecond)
	p.Blackhole()
	c3 := dial(t, p)
	busy(c3)
	eventually(t, "Conns() == 3", func() bool { return p.Conns() == 3 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Methods after Close are harmless.
	p.Reset()
	p.Cut()
	p.Restore()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []net.Conn{c1, c2, c3} {
		c.Close()
	}
	wg.Wait()
}

func TestCorrupt(t *testing.T) {
	p, _ := setup(t)
	p.Corrupt(5)
	c := dial(t, p)
	msg := []byte("0123456789")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	want := []byte("01234" + string('5'^1) + "6789")
	if !bytes.Equal(got, want) {
		t.Fatalf("echo %q, want %q", got, want)
	}
	// Once per connection: the same offset is not reached again.
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("second echo %q, %v", got, err)
	}
}
