package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/mux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.LeakOptions...) }

func loopbackAllow(t *testing.T) *AllowList {
	a, err := ParseAllowList("127.0.0.0/8:*")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Many concurrent connections through -L, random sizes, random write sizes, half-closes: every
// byte comes back exactly.
func TestForwardManyStreamsExact(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	tc := dialServer(t, ts, &braid.Config{Paths: 4})
	addr := tc.forward(t, echoTarget(t))
	sizes := []int{0, 1, 1000, 64<<10 + 1, 300 << 10, 2 << 20}
	if raceEnabled {
		sizes[5] = 600 << 10
	}
	const streams = 120
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 3))
			n := sizes[r.IntN(len(sizes))] + r.IntN(5000)
			if err := echoRoundTrip(addr, randomData(n, uint64(i)), uint64(i)); err != nil {
				errs <- fmt.Errorf("connection %d (%d bytes): %w", i, n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testutil.WaitFor(t, func() bool { return tc.m.NumStreams() == 0 && tc.m.Buffered() == 0 }, "client streams to close (%v open)", testutil.Lazy(func() string { return fmt.Sprint(tc.m.NumStreams()) }))
}

// Every dispersal mode and scheduler carries streams exactly.
func TestModesAndSchedulers(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	echo := echoTarget(t)
	for _, c := range []struct{ mode, sched string }{
		{"plain", "round-robin"}, {"plain", "lowest-rtt"}, {"plain", "redundant"}, {"redundant", "adaptive"},
		{"shamir:2/3", ""}, {"erasure:2/3", ""}, {"aont:2/3", ""},
	} {
		t.Run(c.mode+"/"+c.sched, func(t *testing.T) {
			paths := 3
			tc := dialServer(t, ts, &braid.Config{Paths: paths, Mode: c.mode, Scheduler: c.sched, ChunkSize: 64 << 10})
			addr := tc.forward(t, echo)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := echoRoundTrip(addr, randomData(200<<10+i*999, uint64(i)), uint64(i)); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// A connection whose reader stalls (its target never reads, and the application never reads
// the answer of another) holds only its windows; the other connections keep flowing.
func TestStalledReaderDoesNotStarveOthers(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	tc := dialServer(t, ts, &braid.Config{Paths: 2})
	release := make(chan struct{})
	sink := target(t, func(c *net.TCPConn) { <-release }) // accepts, never reads
	source := target(t, func(c *net.TCPConn) {            // writes until it cannot
		buf := make([]byte, 1<<20)
		for {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	defer close(release)
	stallUp, err := net.Dial("tcp", tc.forward(t, sink))
	if err != nil {
		t.Fatal(err)
	}
	defer stallUp.Close()
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := stallUp.Write(buf); err != nil {
				return
			}
		}
	}()
	stallDown, err := net.Dial("tcp", tc.forward(t, source)) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer stallDown.Close()
	time.Sleep(200 * time.Millisecond) // let both fill their windows and the sockets behind them

	echo := tc.forward(t, echoTarget(t))
	for i := range 10 {
		if err := echoRoundTrip(echo, randomData(4<<20, uint64(i)), uint64(i)); err != nil {
			t.Fatalf("round trip %d beside two stalled streams: %v", i, err)
		}
	}
	// What the stalled streams hold is bounded by their windows (the defaults: 16 MiB each at
	// most), not by what their writers offered.
	for _, m := range []*mux.Mux{tc.m, <-ts.muxs} {
		if b := m.Buffered(); b > 2*(16<<20)+64<<20 {
			t.Errorf("a mux holds %d bytes of budget", b)
		}
	}
}

// A reset on either side reaches the other as a reset.
func TestResetPropagation(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	tc := dialServer(t, ts, nil)

	t.Run("target resets", func(t *testing.T) {
		addr := tc.forward(t, target(t, func(c *net.TCPConn) {
			buf := make([]byte, 5)
			io.ReadFull(c, buf)
			c.Write([]byte("bye"))
			c.SetLinger(0)
			c.Close()
		}))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		if string(got) != "bye" || !isReset(err) {
			t.Errorf("application read %q, %v; want \"bye\" then a reset", got, err)
		}
	})

	t.Run("application resets", func(t *testing.T) {
		seen := make(chan error, 1)
		addr := tc.forward(t, target(t, func(c *net.TCPConn) {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.Copy(io.Discard, c)
			seen <- err
		}))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("some data"))
		time.Sleep(100 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		if err := <-seen; !isReset(err) {
			t.Errorf("target saw %v, want a reset", err)
		}
	})
}

// Refusals reach the client as errors it can match, and the server logs each.
func TestRefusals(t *testing.T) {
	closed := func() string { // a loopback port with nothing listening
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()
	allow, err := ParseAllowList("127.0.0.0/8:*", "unreachable.test:80", "nxdomain.test:80", "slow.test:80")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, allow, func(sv *Server) {
		sv.Dialer.Timeout = 300 * time.Millisecond
		sv.Dialer.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch addr {
			case "unreachable.test:80": // no packet leaves this machine: the kernel's answer, injected
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}
			case "nxdomain.test:80":
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nxdomain.test", IsNotFound: true}}
			case "slow.test:80":
				<-ctx.Done()
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	})
	tc := dialServer(t, ts, nil)
	ctx := testCtx(t, 30*time.Second)
	for _, c := range []struct {
		target string
		want   error
		code   mux.Code
		socks  byte
	}{
		{closed, mux.ErrTargetRefused, mux.CodeRefused, SOCKSConnectionRefused},
		{"192.0.2.1:80", mux.ErrNotAllowed, mux.CodeNotAllowed, SOCKSNotAllowed},
		{"elsewhere.test:443", mux.ErrNotAllowed, mux.CodeNotAllowed, SOCKSNotAllowed},
		{"nowhere.test:443", mux.ErrNotFound, mux.CodeNotFound, SOCKSHostUnreachable},
		{"unreachable.test:80", mux.ErrUnreachable, mux.CodeHostUnreachable, SOCKSHostUnreachable},
		{"nxdomain.test:80", mux.ErrNotFound, mux.CodeNotFound, SOCKSHostUnreachable},
		{"slow.test:80", mux.ErrTimeout, mux.CodeTimeout, SOCKSTTLExpired},
	} {
		_, err := tc.cl.Open(ctx, c.target)
		var oe *mux.OpenError
		if !errors.Is(err, c.want) || !errors.Is(err, mux.ErrRefused) || !errors.As(err, &oe) || oe.Code != c.code {
			t.Errorf("Open(%s): %v; want %v (code %v)", c.target, err, c.want, c.code)
			continue
		}
		if got := SOCKSReply(err); got != c.socks {
			t.Errorf("Open(%s): SOCKS reply %d, want %d", c.target, got, c.socks)
		}
		if !strings.Contains(ts.log.String(), "target="+c.target) {
			t.Errorf("no refusal logged for %s; log:\n%s", c.target, ts.log.String())
		}
	}
	// The session is still fine.
	if err := echoRoundTrip(tc.forward(t, echoTarget(t)), []byte("still here"), 1); err != nil {
		t.Error(err)
	}
	// Through -L, a refused target closes the application's connection.
	// Through -L, a refused target resets the application's connection (on loopback, often
	// before its dial has returned).
	c, err := net.Dial("tcp", tc.forward(t, "192.0.2.1:80"))
	if err == nil {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || !isReset(err) {
			t.Errorf("read on a refused forwarding: %d, %v", n, err)
		}
		c.Close()
	} else if !isReset(err) {
		t.Fatal(err)
	}
}

func TestSOCKS(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	tc := dialServer(t, ts, nil)
	echo := echoTarget(t)
	_, port, _ := net.SplitHostPort(echo)
	users, err := ParseSOCKSUsers(strings.NewReader("# users\nalice:s3cret\n"))
	if err != nil {
		t.Fatal(err)
	}
	open := tc.socks(t, nil)
	authed := tc.socks(t, users)
	for _, c := range []struct {
		name       string
		proxy      string
		user, pass string
		host       string
		cmd        byte
		wantReply  int // -1: authentication refused
	}{
		{"by address", open, "", "", "127.0.0.1", socksConnect, SOCKSSucceeded},
		{"by name, resolved by the server", open, "", "", "localhost", socksConnect, SOCKSSucceeded},
		{"IPv6 not allowed", open, "", "", "::1", socksConnect, SOCKSNotAllowed},
		{"not allowed", open, "", "", "192.0.2.1", socksConnect, SOCKSNotAllowed},
		{"BIND unsupported", open, "", "", "127.0.0.1", 0x02, SOCKSCommandUnsupported},
		{"password", authed, "alice", "s3cret", "127.0.0.1", socksConnect, SOCKSSucceeded},
		{"wrong password", authed, "alice", "guess", "127.0.0.1", socksConnect, -1},
		{"no credentials offered", authed, "", "", "127.0.0.1", socksConnect, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, reply, err := socksDial(c.proxy, c.user, c.pass, c.host, port, c.cmd)
			if c.wantReply < 0 {
				if err == nil {
					t.Errorf("authentication accepted")
					conn.Close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if int(reply) != c.wantReply {
				t.Fatalf("reply %d, want %d", reply, c.wantReply)
			}
			if reply != SOCKSSucceeded {
				return
			}
			msg := []byte("through socks")
			conn.Write(msg)
			conn.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(conn)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("echo %q, %v", got, err)
			}
		})
	}
}

// socksDial is a minimal SOCKS5 client: it returns the connection and the server's reply code.
func socksDial(proxy, user, pass, host, port string, cmd byte) (net.Conn, byte, error) {
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, 0, err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fail := func(err error) (net.Conn, byte, error) { c.Close(); return nil, 0, err }
	method := byte(socksNoAuth)
	if user != "" {
		method = socksUserPass
	}
	c.Write([]byte{5, 1, method})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return fail(err)
	}
	if sel[1] != method {
		return fail(fmt.Errorf("method %#x chosen", sel[1]))
	}
	if user != "" {
		c.Write(append(append(append([]byte{1, byte(len(user))}, user...), byte(len(pass))), pass...))
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil || st[1] != 0 {
			return fail(fmt.Errorf("authentication: %v %v", st, err))
		}
	}
	req := []byte{5, cmd, 0}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			req = append(append(req, socksIPv4), ip.AsSlice()...)
		} else {
			req = append(append(req, socksIPv6), ip.AsSlice()...)
		}
	} else {
		req = append(append(req, socksDomain, byte(len(host))), host...)
	}
	var p int
	fmt.Sscan(port, &p)
	req = append(req, byte(p>>8), byte(p))
	c.Write(req)
	var rep [10]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fail(err)
	}
	c.SetDeadline(time.Time{})
	return c, rep[1], nil
}

// A stream that names no target goes to the server's stdout, one at a time; without --stdout
// it is refused.
func TestStdout(t *testing.T) {
	var out bytes.Buffer
	gate := make(chan struct{})
	ts := startServer(t, nil, func(sv *Server) { sv.Stdout = gatedWriter{&out, gate} })
	tc := dialServer(t, ts, nil)
	ctx := testCtx(t, 30*time.Second)
	st, err := tc.cl.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.cl.Open(ctx, ""); !errors.Is(err, mux.ErrTooManyStreams) {
		t.Errorf("second stream to stdout: %v", err)
	}
	data := randomData(3<<20, 9)
	go func() {
		st.Write(data)
		st.CloseWrite()
	}()
	close(gate)
	// The server's FIN comes once everything is written.
	if n, err := io.Copy(io.Discard, st); n != 0 || err != nil {
		t.Errorf("reading the server's side: %d, %v", n, err)
	}
	st.Close()
	if !bytes.Equal(out.Bytes(), data) {
		t.Errorf("stdout got %d bytes, sent %d", out.Len(), len(data))
	}

	ts2 := startServer(t, nil, nil)
	tc2 := dialServer(t, ts2, nil)
	if _, err := tc2.cl.Open(ctx, ""); !errors.Is(err, mux.ErrNoTarget) {
		t.Errorf("no target, no stdout: %v", err)
	}
}

type gatedWriter struct {
	w    io.Writer
	gate chan struct{}
}

func (g gatedWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.w.Write(p)
}

// A path cut (reset) or blackholed mid-transfer breaks no stream.
func TestPathLossMidStream(t *testing.T) {
	for _, fault := range []string{"cut", "blackhole"} {
		t.Run(fault, func(t *testing.T) {
			ts := startServer(t, loopbackAllow(t), nil)
			var proxies []*faultproxy.Proxy
			for range 3 {
				p, err := faultproxy.New(ts.l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				proxies = append(proxies, p)
			}
			tc := dialServer(t, ts, &braid.Config{Paths: 3, Scheduler: "round-robin"}, proxies...)
			addr := tc.forward(t, echoTarget(t))
			size := 24 << 20
			if raceEnabled {
				size = 6 << 20
			}
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := echoRoundTrip(addr, randomData(size, uint64(i)), uint64(i)); err != nil {
						t.Errorf("stream %d: %v", i, err)
					}
				}()
			}
			// Cut path 1 once data flows on it.
			testutil.WaitFor(t, func() bool { return tc.s.Stats().Paths[1].BytesSent > 1<<20 }, "data on path 1")
			if fault == "cut" {
				proxies[1].Cut()
			} else {
				proxies[1].Blackhole()
			}
			wg.Wait()
			if !t.Failed() && tc.s.Err() != nil {
				t.Errorf("session: %v", tc.s.Err())
			}
		})
	}
}

// Thousands of streams, opened and ended every way, leave no goroutine, descriptor, stream or
// budget behind.
func TestManyStreamsNoLeak(t *testing.T) {
	ts := startServer(t, loopbackAllow(t), nil)
	tc := dialServer(t, ts, nil)
	echo := echoTarget(t)
	addr := tc.forward(t, echo)
	ctx := testCtx(t, 5*time.Minute)
	warm := func() {
		if err := echoRoundTrip(addr, []byte("warm"), 0); err != nil {
			t.Fatal(err)
		}
	}
	warm()
	time.Sleep(100 * time.Millisecond)
	g0, fd0 := runtime.NumGoroutine(), openSockets(t)
	n := 3000
	if raceEnabled {
		n = 1200
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			switch i % 4 {
			case 0: // a whole exchange with half-closes
				if err := echoRoundTrip(addr, randomData(i%7000, uint64(i)), uint64(i)); err != nil {
					t.Error(err)
				}
			case 1: // the application resets mid-stream
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Write([]byte("abc"))
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
			case 2: // a refused target
				tc.cl.Open(ctx, "127.0.0.1:1")
			case 3: // a stream reset by its opener with data in flight
				if st, err := tc.cl.Open(ctx, echo); err == nil {
					st.Write([]byte("xyz"))
					st.Reset(mux.CodeCancel, "test")
					st.Close()
				}
			}
		}()
	}
	wg.Wait()
	sm := <-ts.muxs
	testutil.WaitFor(t, func() bool {
		return tc.m.NumStreams() == 0 && sm.NumStreams() == 0 && tc.m.Buffered() == 0 && sm.Buffered() == 0 &&
			runtime.NumGoroutine() <= g0 && openSockets(t) <= fd0
	}, "everything to be released: %v", testutil.Lazy(func() string {
		return fmt.Sprintf("streams %d/%d, budget %d/%d, goroutines %d (were %d), fds %d (were %d)",
			tc.m.NumStreams(), sm.NumStreams(), tc.m.Buffered(), sm.Buffered(), runtime.NumGoroutine(), g0, openSockets(t), fd0)
	}))
	warm()
}
