package frame

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// newServerListener makes a Server with cfg (nil: the defaults) and a loopback listener for it.
func newServerListener(t *testing.T, cfg *Config) (*Server, net.Listener) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return srv, ln
}

// startServer runs a Server on a loopback port and shuts it down when the test ends.
func startServer(t *testing.T, cfg *Config) (*Server, string, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, ln := newServerListener(t, cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return srv, ln.Addr().String(), logs
}

func dialClient(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPingTextData(t *testing.T) {
	testutil.CheckLeaks(t)
	_, addr, _ := startServer(t, nil)
	c := dialClient(t, addr)
	ctx := context.Background()
	if _, err := c.Ping(ctx, []byte("probe")); err != nil {
		t.Fatal(err)
	}
	ack, err := c.SendText(ctx, "hello, wörld")
	if err != nil || ack != (Ack{Acked: TypeText, Seq: 1, Bytes: uint64(len("hello, wörld"))}) {
		t.Fatalf("text ack %+v, %v", ack, err)
	}
	ack, err = c.SendData(ctx, make([]byte, 3<<20))
	if err != nil || ack.Seq != 2 || ack.Bytes != 3<<20 {
		t.Fatalf("data ack %+v, %v", ack, err)
	}
	if _, err := c.SendData(ctx, nil); err != nil {
		t.Fatalf("empty data: %v", err)
	}
	res, err := c.Upload(ctx, io.LimitReader(rand.Reader, 10<<20+123), 64<<10)
	if err != nil || res.Bytes != 10<<20+123 || res.Frames != 161 {
		t.Fatalf("upload %+v, %v", res, err)
	}
	// Empty upload: nothing to send, nothing to acknowledge.
	if res, err := c.Upload(ctx, strings.NewReader(""), 1024); err != nil || res.Frames != 0 {
		t.Fatalf("empty upload %+v, %v", res, err)
	}
}

// TestUploadSmallFramesWindow sends more small frames than the pipelining window.
func TestUploadSmallFramesWindow(t *testing.T) {
	_, addr, _ := startServer(t, nil)
	c := dialClient(t, addr)
	res, err := c.Upload(context.Background(), bytes.NewReader(make([]byte, 64*5000)), 64)
	if err != nil || res.Frames != 5000 {
		t.Fatalf("upload %+v, %v", res, err)
	}
}

func rawHeader(n uint32, typ wire.Type) []byte {
	b := make([]byte, wire.HeaderSize)
	wire.PutHeader(b, wire.Header{Length: n, Type: typ})
	return b
}

// readErrorFrame reads frames from conn until an ERROR arrives and returns its code.
func readErrorFrame(t *testing.T, conn net.Conn) wire.Code {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(conn, 0)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("no ERROR frame: %v", err)
		}
		if f.Type == wire.TypeError {
			e, err := wire.ParseError(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			// After ERROR the server closes the connection.
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after ERROR: %v, want EOF", err)
			}
			return e.Code
		}
	}
}

// TestBadInputOverSockets: every kind of bad input gets an ERROR with its code, the connection is
// closed with a logged reason, and a concurrent well-behaved client is unaffected throughout.
func TestBadInputOverSockets(t *testing.T) {
	_, addr, logs := startServer(t, &Config{MaxFrameSize: 1 << 20, ReadTimeout: 300 * time.Millisecond, IdleTimeout: 10 * time.Second})

	good := dialClient(t, addr)
	stop := make(chan struct{})
	goodDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-stop:
				goodDone <- nil
				return
			default:
			}
			if _, err := good.Ping(ctx, []byte{byte(i)}); err != nil {
				goodDone <- err
				return
			}
			if _, err := good.SendData(ctx, make([]byte, 1000)); err != nil {
				goodDone <- err
				return
			}
		}
	}()

	cases := []struct {
		name   string
		send   []byte
		half   bool // close the write side after sending
		code   wire.Code
		reason string
	}{
		{"oversize length", rawHeader(1<<20+1, wire.TypeData), false, wire.CodeFrameTooLarge, "frame too large"},
		{"max length", rawHeader(0xffffffff, wire.TypeData), false, wire.CodeFrameTooLarge, "frame too large"},
		{"unknown type", rawHeader(3, 0x7e), false, wire.CodeUnknownType, "unknown frame type"},
		{"truncated header then EOF", []byte{0, 0}, true, wire.CodeProtocol, "truncated frame header"},
		{"header then EOF", rawHeader(100, wire.TypeData), true, wire.CodeProtocol, "unexpected EOF"},
		{"header then stall", append(rawHeader(100, wire.TypeData), 1, 2, 3), false, wire.CodeTimeout, "frame not received within"},
		{"invalid UTF-8 text", append(rawHeader(2, wire.TypeText), 0xff, 0xfe), false, wire.CodeProtocol, "not UTF-8"},
		{"oversize ping", append(rawHeader(65, wire.TypePing), make([]byte, 65)...), false, wire.CodeProtocol, "PING payload"},
		{"unexpected PONG", rawHeader(0, wire.TypePong), false, wire.CodeProtocol, "unexpected PONG"},
		{"malformed ERROR", append(rawHeader(1, wire.TypeError), 0), false, wire.CodeProtocol, "malformed payload"},
		{"session opened on a frame server", rawHeader(0, wire.TypeSessionNew), false, wire.CodeProtocol, "not allowed here"},
		{"chunk with no session", rawHeader(0, wire.TypeChunk), false, wire.CodeUnknownSession, "attached to no session"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local := conn.LocalAddr().String()
			if _, err := conn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			if c.half {
				conn.(*net.TCPConn).CloseWrite()
			}
			if got := readErrorFrame(t, conn); got != c.code {
				t.Fatalf("ERROR code %s, want %s", got, c.code)
			}
			testutil.WaitFor(t, func() bool {
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, local) && strings.Contains(line, "connection dropped") && strings.Contains(line, c.reason) {
						return true
					}
				}
				return false
			}, "logged reason %q for %s", c.reason, local)
		})
	}
	close(stop)
	if err := <-goodDone; err != nil {
		t.Fatalf("concurrent client was affected: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, addr, _ := startServer(t, &Config{IdleTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := readErrorFrame(t, conn); got != wire.CodeTimeout {
		t.Fatalf("code %s", got)
	}
	// The client API reports it as a matchable error.
	c := dialClient(t, addr)
	time.Sleep(400 * time.Millisecond)
	if _, err := c.Ping(context.Background(), nil); !errors.Is(err, ErrTimeout) {
		t.Fatalf("ping after idle: %v, want ErrTimeout", err)
	}
}

func TestClientSeesRemoteErrors(t *testing.T) {
	_, addr, _ := startServer(t, &Config{MaxFrameSize: 1000})
	c := dialClient(t, addr)
	_, err := c.SendData(context.Background(), make([]byte, 1001))
	var re *RemoteError
	if !errors.Is(err, ErrFrameTooLarge) || !errors.As(err, &re) || re.Code != CodeFrameTooLarge {
		t.Fatalf("err = %v", err)
	}
	// The error is sticky: the connection is gone.
	if _, err2 := c.Ping(context.Background(), nil); err2 != err {
		t.Fatalf("second call: %v", err2)
	}
}

func TestClientContextCancel(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c := dialClient(t, ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Ping(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// TestClosedAtFirstFrameNamesTLS: a server that closes the connection at a plain client's first
// frame, as a TLS server does, gets an error saying the client may need TLS; one that closes it
// after answering does not.
func TestClosedAtFirstFrameNamesTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := make(chan int, 2) // frames each accepted connection answers before closing
	answers <- 0
	answers <- 1
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := <-answers
			r, w := wire.NewReader(c, 1<<20), wire.NewWriter(c)
			for ; ; n-- {
				f, err := r.ReadFrame()
				if err != nil || n == 0 {
					break
				}
				w.Queue(wire.TypePong, nil, f.Payload)
				w.Flush()
			}
			c.Close()
		}
	}()
	for _, tc := range []struct {
		name   string
		hinted bool
	}{{"closed at the first frame", true}, {"closed after an answer", false}} {
		c := dialClient(t, ln.Addr().String())
		if !tc.hinted {
			if _, err := c.Ping(context.Background(), make([]byte, 8)); err != nil {
				t.Fatalf("%s: first ping: %v", tc.name, err)
			}
		}
		_, err := c.Ping(context.Background(), make([]byte, 8))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: err = %v, want unexpected EOF", tc.name, err)
		}
		if got := strings.Contains(err.Error(), "speaks TLS"); got != tc.hinted {
			t.Errorf("%s: TLS hint %v in %q, want %v", tc.name, got, err, tc.hinted)
		}
	}
}

// TestManyConcurrentClients: 500 clients at once, each doing ping, text and data.
func TestManyConcurrentClients(t *testing.T) {
	testutil.CheckLeaks(t)
	_, addr, _ := startServer(t, nil)
	const clients = 500
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- oneClient(addr, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func oneClient(addr string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	var probe [8]byte
	binary.BigEndian.PutUint64(probe[:], uint64(i))
	if _, err := c.Ping(ctx, probe[:]); err != nil {
		return fmt.Errorf("client %d ping: %w", i, err)
	}
	msg := fmt.Sprintf("client %d says hi", i)
	if a, err := c.SendText(ctx, msg); err != nil || a.Seq != 1 || a.Bytes != uint64(len(msg)) {
		return fmt.Errorf("client %d text: %+v %w", i, a, err)
	}
	if a, err := c.SendData(ctx, make([]byte, 1000+i)); err != nil || a.Seq != 2 || a.Bytes != uint64(1000+i) {
		return fmt.Errorf("client %d data: %+v %w", i, a, err)
	}
	return nil
}

// TestGracefulShutdown: a frame in flight when Shutdown starts is still answered; idle
// connections are told the server is shutting down; no goroutine survives.
func TestGracefulShutdown(t *testing.T) {
	testutil.CheckLeaks(t)
	srv, ln := newServerListener(t, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	payload := make([]byte, 1000)
	busy.Write(rawHeader(uint32(len(payload)), wire.TypeData))
	busy.Write(payload[:500])
	// Make sure the server has both connections and is inside the busy frame.
	testutil.WaitFor(t, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		n := 0
		for sc := range srv.conns {
			sc.mu.Lock()
			if sc.busy {
				n++
			}
			sc.mu.Unlock()
		}
		return len(srv.conns) == 2 && n == 1
	}, "server to see one busy connection")

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if got := readErrorFrame(t, idle); got != wire.CodeShuttingDown {
		t.Fatalf("idle connection got %s", got)
	}
	time.Sleep(50 * time.Millisecond)
	busy.Write(payload[500:])
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(busy, 0)
	f, err := r.ReadFrame()
	if err != nil || f.Type != wire.TypeAck {
		t.Fatalf("in-flight frame: %v %v", f.Type, err)
	}
	if a, _ := wire.ParseAck(f.Payload); a.Bytes != 1000 {
		t.Fatalf("ack %+v", a)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
	// New connections are refused.
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("server still accepting")
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	testutil.CheckLeaks(t)
	srv, _ := NewServer(nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(rawHeader(1000, wire.TypeData)) // stalls mid-frame
	testutil.WaitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.conns) == 1 }, "connection")
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []*Config{{MaxFrameSize: -1}, {MaxFrameSize: wire.MaxPayloadLimit + 1}, {IdleTimeout: -1}} {
		if _, err := NewServer(bad); err == nil {
			t.Errorf("NewServer(%+v) accepted", bad)
		}
	}
}

// TestServeConn: a connection the caller accepted is served on the calling goroutine; ServeConn
// returns nil when the client hangs up between frames, and ErrServerClosed once the server is.
func TestServeConn(t *testing.T) {
	testutil.CheckLeaks(t)
	srv, ln := newServerListener(t, nil)
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- srv.ServeConn(c)
	}()
	c := dialClient(t, ln.Addr().String())
	if _, err := c.Ping(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-served; err != nil {
		t.Fatalf("ServeConn after the client hung up: %v, want nil", err)
	}
	srv.Close()
	a, b := net.Pipe()
	defer b.Close()
	if err := srv.ServeConn(a); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn on a closed server: %v, want ErrServerClosed", err)
	}
}
