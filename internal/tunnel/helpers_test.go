package tunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/mux"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// tunnelServer is a Braid listener serving tunnel sessions with a tunnel.Server, as braid serve
// does.
type tunnelServer struct {
	l    *braid.Listener
	sv   *Server
	log  *testutil.SyncBuffer
	muxs chan *mux.Mux // every server mux, for white-box checks
	wg   sync.WaitGroup
}

func startServer(t *testing.T, allow *AllowList, tweak func(*Server)) *tunnelServer {
	t.Helper()
	ts := &tunnelServer{log: &testutil.SyncBuffer{}, muxs: make(chan *mux.Mux, 10000)}
	logger := slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{Logger: logger, PathTimeout: 2 * time.Second, KeepAlive: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts.l = l
	ts.sv = &Server{Dialer: Dialer{Allow: allow, Timeout: 5 * time.Second, LookupNetIP: fakeResolver}, Logger: logger}
	if tweak != nil {
		tweak(ts.sv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				defer s.Close()
				first, err := s.Receive(ctx)
				if err != nil || !mux.IsHello(first) {
					s.Abort()
					return
				}
				// As braid serve does: no goroutine of the server's waits on the session.
				ended := make(chan struct{})
				m, err := StartSession(ctx, s, first, ts.sv, nil, func(error) { close(ended) })
				if err != nil {
					return
				}
				ts.muxs <- m
				<-ended
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		ts.wg.Wait()
	})
	return ts
}

// fakeResolver answers for localhost and *.test names only, so that no test sends a DNS query
// anywhere: elsewhere.test is 192.0.2.7 (documentation space), anything else does not exist.
func fakeResolver(_ context.Context, _, host string) ([]netip.Addr, error) {
	switch host {
	case "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	case "elsewhere.test":
		return []netip.Addr{netip.MustParseAddr("192.0.2.7")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// tunnelClient is one tunnel session from the client side.
type tunnelClient struct {
	s  *braid.Session
	m  *mux.Mux
	cl *Client
}

// dialServer opens a tunnel session of n paths (through proxies if given) to ts.
func dialServer(t *testing.T, ts *tunnelServer, cfg *braid.Config, proxies ...*faultproxy.Proxy) *tunnelClient {
	t.Helper()
	if cfg == nil {
		cfg = &braid.Config{}
	}
	cfg.ServerFingerprint = ts.l.Fingerprint()
	if cfg.PathTimeout == 0 {
		cfg.PathTimeout, cfg.KeepAlive = 2*time.Second, 200*time.Millisecond
	}
	n := cfg.Paths
	if n == 0 {
		n = 2
	}
	var specs []braid.PathSpec
	for i := range n {
		addr := ts.l.Addr().String()
		if len(proxies) > 0 {
			addr = proxies[i%len(proxies)].Addr()
		}
		specs = append(specs, braid.PathSpec{Remote: addr})
	}
	cfg.Paths = n
	s, m, err := Dial(testCtx(t, 30*time.Second), specs, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tunnelClient{s: s, m: m, cl: &Client{Mux: m, OpenTimeout: 20 * time.Second}}
	t.Cleanup(func() {
		m.Close()
		s.Close()
	})
	return tc
}

// forward starts a -L listener on loopback to target; it stops at cleanup.
func (tc *tunnelClient) forward(t *testing.T, target string) string {
	return listenLoopback(t, func(ctx context.Context, ln net.Listener) { tc.cl.Forward(ctx, ln, target) })
}

// socks starts a SOCKS listener on loopback; it stops at cleanup.
func (tc *tunnelClient) socks(t *testing.T, users SOCKSUsers) string {
	return listenLoopback(t, func(ctx context.Context, ln net.Listener) { tc.cl.SOCKS(ctx, ln, users) })
}

// listenLoopback runs serve on a new loopback listener until the test ends, and returns its
// address.
func listenLoopback(t *testing.T, serve func(context.Context, net.Listener)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// target is a local TCP server with a per-connection handler.
func target(t *testing.T, handle func(*net.TCPConn)) string { return testutil.TCPServer(t, handle) }

// echoTarget sends back what it reads, and half-closes after the client's FIN.
func echoTarget(t *testing.T) string {
	return target(t, func(c *net.TCPConn) {
		if _, err := io.Copy(c, c); err == nil {
			c.CloseWrite()
			io.Copy(io.Discard, c)
		}
	})
}

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// echoRoundTrip connects to addr, writes data in random pieces, half-closes, and checks that
// exactly data comes back.
func echoRoundTrip(addr string, data []byte, seed uint64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	errc := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(seed, 1))
		rest := data
		for len(rest) > 0 {
			k := min(len(rest), 1+r.IntN(200<<10))
			if _, err := c.Write(rest[:k]); err != nil {
				errc <- err
				return
			}
			rest = rest[k:]
		}
		errc <- c.(*net.TCPConn).CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("writing: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("reading after %d bytes: %w", n, err)
	}
	if want := sha256.Sum256(data); n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%d bytes back of %d sent, or different bytes", n, len(data))
	}
	return nil
}

// openSockets counts this process's open sockets (pipes are left out: the net package keeps a
// pool of them for splice, released only by the garbage collector).
func openSockets(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// isReset reports whether err is a TCP reset as a reader or writer sees it.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
