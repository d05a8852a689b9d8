package mux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.LeakOptions...) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo serves every stream s accepts: it confirms it and sends back what it reads, then FIN.
func echo(ctx context.Context, s *Mux) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			st, err := s.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				echoStream(st)
			}()
		}
	}()
	return &wg
}

// echoStream serves st as an echo: it confirms it, sends back what it reads, then FIN, and
// closes it.
func echoStream(st *Stream) {
	defer st.Close()
	if st.Confirm() != nil {
		return
	}
	if _, err := io.Copy(st, st); err == nil {
		st.CloseWrite()
	}
}

// roundTrip sends n random bytes on a new stream, half-closes, and checks the echo.
func roundTrip(ctx context.Context, c *Mux, n int, seed uint64) error {
	st, err := c.Open(ctx, "echo")
	if err != nil {
		return err
	}
	defer st.Close()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		// Odd-sized writes, so frames do not line up with anything.
		rest := data
		for len(rest) > 0 {
			k := min(len(rest), 1+r.IntN(100<<10))
			if _, err := st.Write(rest[:k]); err != nil {
				errc <- err
				return
			}
			rest = rest[k:]
		}
		errc <- st.CloseWrite()
	}()
	got, err := io.ReadAll(st)
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("stream %d: %d bytes back, sent %d, equal prefix %d", st.ID(), len(got), n, commonPrefix(got, data))
	}
	return nil
}

// openPair opens a stream from c and returns it with its other end, accepted and confirmed
// on s.
func openPair(t *testing.T, ctx context.Context, c, s *Mux) (*Stream, *Stream) {
	t.Helper()
	acc := make(chan *Stream, 1)
	go func() {
		st, err := s.Accept(ctx)
		if err == nil {
			st.Confirm()
		}
		acc <- st
	}()
	cs, err := c.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	ss := <-acc
	if ss == nil {
		t.Fatal("the stream was not accepted")
	}
	return cs, ss
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestConcurrentStreamsExact(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	wg := echo(ctx, s)
	var errs sync.WaitGroup
	fail := make(chan error, 200)
	for i := range 200 {
		errs.Add(1)
		go func() {
			defer errs.Done()
			n := []int{0, 1, 1000, 70 << 10, 300 << 10, 1 << 20}[i%6] + i
			if err := roundTrip(ctx, c, n, uint64(i)); err != nil {
				fail <- err
			}
		}()
	}
	errs.Wait()
	close(fail)
	for err := range fail {
		t.Error(err)
	}
	c.Close()
	s.Close()
	wg.Wait()
	if b := s.budget.Load(); b != 0 {
		t.Errorf("server budget %d after every stream closed", b)
	}
}

// A stream whose reader stalls holds at most its window; the others keep flowing.
func TestStalledReaderDoesNotStarveOthers(t *testing.T) {
	ctx := testCtx(t)
	cfg := &Config{InitialWindow: 64 << 10, MaxWindow: 256 << 10}
	c, s, _, st := pair(t, cfg, cfg)
	wg := echo(ctx, s)
	defer func() { c.Close(); s.Close(); wg.Wait() }()

	stalled, err := c.Open(ctx, "stalled")
	if err != nil {
		t.Fatal(err)
	}
	// Never read from stalled: its echo stops once our window for it is full, and the server's
	// copy stops once the server's window for our writes is full.
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := stalled.Write(buf); err != nil {
				return
			}
		}
	}()
	for i := range 20 {
		if err := roundTrip(ctx, c, 2<<20, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	stalled.mu.Lock()
	held := stalled.buffered
	stalled.mu.Unlock()
	if held > 256<<10 {
		t.Errorf("the stalled stream holds %d bytes, more than its largest window", held)
	}
	st.in.mu.Lock()
	q := st.in.bytes
	st.in.mu.Unlock()
	if q > 1<<20 {
		t.Errorf("%d bytes wait in the transport for the server", q)
	}
	stalled.Close()
}

func TestHalfClose(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	go func() {
		st, err := s.Accept(ctx)
		if err != nil {
			return
		}
		st.Confirm()
		// Read the request to EOF, then answer: the answer flows after the client's FIN.
		req, _ := io.ReadAll(st)
		fmt.Fprintf(st, "got %d bytes", len(req))
		st.CloseWrite()
		st.Close()
	}()
	st, err := c.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	st.Write(make([]byte, 5000))
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after CloseWrite: %v, want ErrClosed", err)
	}
	got, err := io.ReadAll(iotest.OneByteReader(st))
	if err != nil || string(got) != "got 5000 bytes" {
		t.Fatalf("answer %q, %v", got, err)
	}
	st.Close()
}

func TestResetBothWays(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	for _, fromClient := range []bool{true, false} {
		t.Run(fmt.Sprintf("fromClient=%v", fromClient), func(t *testing.T) {
			cs, ss := openPair(t, ctx, c, s)
			from, to := cs, ss
			if !fromClient {
				from, to = ss, cs
			}
			from.Write([]byte("before"))
			from.Reset(CodeReset, "target reset")
			buf := make([]byte, 100)
			n, err := io.ReadFull(to, buf[:6])
			if err != nil || string(buf[:n]) != "before" {
				t.Errorf("data before the reset: %q, %v", buf[:n], err)
			}
			_, err = to.Read(buf)
			var re *ResetError
			if !errors.Is(err, ErrReset) || !errors.As(err, &re) || re.Code != CodeReset || re.Reason != "target reset" {
				t.Errorf("Read after reset: %v", err)
			}
			if _, err := to.Write(buf); !errors.Is(err, ErrReset) {
				t.Errorf("Write after reset: %v", err)
			}
			if _, err := from.Write(buf); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after our own reset: %v", err)
			}
			to.Close()
			from.Close()
		})
	}
}

func TestCloseWithUnreadDataResets(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	cs, ss := openPair(t, ctx, c, s)
	ss.Write([]byte("unread"))
	cs.Close() // the peer has not finished sending: this resets
	_, err := ss.Write([]byte("more"))
	for err == nil {
		time.Sleep(time.Millisecond)
		_, err = ss.Write([]byte("more"))
	}
	var re *ResetError
	if !errors.As(err, &re) || re.Code != CodeCancel {
		t.Errorf("peer's Write after Close: %v, want reset with CodeCancel", err)
	}
	ss.Close()
}

func TestRefusal(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	go func() {
		for {
			st, err := s.Accept(ctx)
			if err != nil {
				return
			}
			switch st.Target() {
			case "denied:1":
				st.Refuse(CodeNotAllowed, "not on the allow-list")
			case "refused:1":
				st.Refuse(CodeRefused, "dial tcp: connection refused")
			default:
				st.Close()
			}
		}
	}()
	for _, tc := range []struct {
		target string
		want   error
		code   Code
	}{
		{"denied:1", ErrNotAllowed, CodeNotAllowed},
		{"refused:1", ErrTargetRefused, CodeRefused},
		{"other:1", ErrRefused, CodeFailure},
	} {
		_, err := c.Open(ctx, tc.target)
		var oe *OpenError
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrRefused) || !errors.As(err, &oe) || oe.Code != tc.code || oe.Target != tc.target {
			t.Errorf("Open(%q): %v, want %v (code %v)", tc.target, err, tc.want, tc.code)
		}
	}
	if n := c.NumStreams(); n != 0 {
		t.Errorf("%d streams left after refusals", n)
	}
}

// Streams waiting for Accept count against the acceptor's MaxStreams; beyond it, opens are
// refused at once, and a stream the opener gives up on leaves the queue.
func TestPeerStreamLimit(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, &Config{MaxStreams: 2})
	results := make(chan error, 3)
	for range 3 {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := c.Open(ctx, "x")
			results <- err
		}()
	}
	var refused, waited int
	for range 3 {
		switch err := <-results; {
		case errors.Is(err, ErrTooManyStreams) && errors.Is(err, ErrRefused):
			refused++
		case errors.Is(err, context.DeadlineExceeded):
			waited++
		default:
			t.Errorf("Open: %v", err)
		}
	}
	if refused != 1 || waited != 2 {
		t.Errorf("%d refused, %d waited for Accept; want 1 and 2", refused, waited)
	}
	// The two that waited were reset by their openers: Accept skips them, and they hold
	// neither a stream slot nor budget.
	testutil.WaitFor(t, func() bool { return s.NumStreams() == 0 && s.Buffered() == 0 }, "the server to forget the cancelled streams")
	actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if st, err := s.Accept(actx); err == nil {
		t.Errorf("Accept returned stream %d, reset while it waited", st.ID())
	}
}

// A refused stream hands its receive budget back at both ends.
func TestRefusalReturnsBudget(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	go func() {
		for {
			st, err := s.Accept(ctx)
			if err != nil {
				return
			}
			st.Refuse(CodeNotAllowed, "no")
		}
	}()
	for range 50 {
		if _, err := c.Open(ctx, "x"); !errors.Is(err, ErrNotAllowed) {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, func() bool { return s.Buffered() == 0 && c.Buffered() == 0 }, "budgets to return to zero (server %d, client %d)", s.Buffered(), c.Buffered())
}

func TestLocalStreamLimit(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, &Config{MaxStreams: 2}, nil)
	wg := echo(ctx, s)
	defer func() { c.Close(); s.Close(); wg.Wait() }()
	a, err1 := c.Open(ctx, "x")
	b, err2 := c.Open(ctx, "x")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := c.Open(ctx, "x"); !errors.Is(err, ErrTooManyStreams) {
		t.Errorf("third Open with MaxStreams 2: %v", err)
	}
	a.Close()
	b.Close()
	if err := roundTrip(ctx, c, 10, 1); err != nil {
		t.Errorf("after closing two: %v", err)
	}
}

func TestDeadlines(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, &Config{InitialWindow: MinWindow, MaxWindow: MinWindow})
	go func() {
		st, _ := s.Accept(ctx)
		st.Confirm() // never reads
	}()
	st, err := c.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past its deadline: %v", err)
	}
	st.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := st.Write(make([]byte, 4*MinWindow))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != MinWindow {
		t.Errorf("Write beyond the window past its deadline: %d, %v (window %d)", n, err, MinWindow)
	}
	st.Close()
}

func TestOpenCancelled(t *testing.T) {
	c, s, _, _ := pair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	accepted := make(chan *Stream, 1)
	go func() {
		st, err := s.Accept(testCtx(t)) // but never answers
		if err == nil {
			accepted <- st
		}
	}()
	if _, err := c.Open(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open never answered: %v", err)
	}
	st := <-accepted
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Errorf("accepted stream after the opener gave up: %v", err)
	}
	st.Close()
	testutil.WaitFor(t, func() bool { return s.Buffered() == 0 && c.Buffered() == 0 }, "budgets to return")
}

func TestSessionEndFailsStreams(t *testing.T) {
	ctx := testCtx(t)
	c, s, ct, _ := pair(t, nil, nil)
	wg := echo(ctx, s)
	st, err := c.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	ct.Abort()
	if _, err := st.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Read after the transport ended: %v", err)
	}
	<-c.Done()
	<-s.Done()
	wg.Wait()
	if _, err := c.Open(ctx, "x"); err == nil {
		t.Error("Open on an ended mux succeeded")
	}
}

// Every stream that ends, however, hands back its share of the receive budget.
func TestManyStreamsNoLeak(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	wg := echo(ctx, s)
	for i := range 3000 {
		var err error
		switch i % 3 {
		case 0:
			err = roundTrip(ctx, c, i%5000, uint64(i))
		case 1:
			var st *Stream
			if st, err = c.Open(ctx, "x"); err == nil {
				st.Write([]byte("abc"))
				st.Close() // reset with data in flight
			}
		case 2:
			var st *Stream
			if st, err = c.Open(ctx, "x"); err == nil {
				st.Reset(CodeFailure, "test")
			}
		}
		if err != nil {
			s.mu.Lock()
			for _, st := range s.streams {
				st.mu.Lock()
				t.Logf("server stream %d: fin %v/%v closed %v err %v confirmed %v buffered %d", st.id, st.finRecv, st.finSent, st.closed, st.err, st.confirmed, st.buffered)
				st.mu.Unlock()
				break
			}
			s.mu.Unlock()
			t.Log("client streams", c.NumStreams(), "queued to server", len(s.t.(*memTransport).in.msgs))
			t.Fatal(i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for (c.NumStreams() != 0 || s.NumStreams() != 0 || c.budget.Load() != 0 || s.budget.Load() != 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.NumStreams() != 0 || s.NumStreams() != 0 {
		t.Errorf("streams left: client %d, server %d", c.NumStreams(), s.NumStreams())
	}
	if c.budget.Load() != 0 || s.budget.Load() != 0 {
		t.Errorf("budget left: client %d, server %d", c.budget.Load(), s.budget.Load())
	}
	c.Close()
	s.Close()
	wg.Wait()
}

func TestWindowGrowsForAFastReader(t *testing.T) {
	ctx := testCtx(t)
	c, s, _, _ := pair(t, nil, nil)
	wg := echo(ctx, s)
	defer func() { c.Close(); s.Close(); wg.Wait() }()
	st, err := c.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	go func() { st.Write(make([]byte, 32<<20)); st.CloseWrite() }()
	if _, err := io.Copy(io.Discard, st); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	w := st.window
	st.mu.Unlock()
	if w <= c.cfg.InitialWindow {
		t.Errorf("window %d after 32 MiB read as fast as it came (initial %d)", w, c.cfg.InitialWindow)
	}
	st.Close()
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{InitialWindow: 100},
		{InitialWindow: 1 << 20, MaxWindow: 1 << 19},
		{MaxBuffered: 1000},
		{MaxStreams: -1},
	} {
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := (*Config)(nil).withDefaults(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// CopyTo delivers a stream to a socket exactly, small frames written by the reader itself and
// large ones by a pump, with no goroutine left while the stream is idle; done reports the end.
func TestCopyTo(t *testing.T) {
	ctx := testCtx(t)
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			c, s, _, _ := pair(t, nil, nil)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			out, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			in, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cs, ss := openPair(t, ctx, c, s)
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			g0 := runtime.NumGoroutine()
			ss.CopyTo(out, func(n int64, err error) { done <- result{n, err} })
			if g := runtime.NumGoroutine(); g != g0 {
				t.Errorf("%d goroutines for an idle CopyTo", g-g0)
			}
			read := make(chan []byte, 1)
			go func() {
				in.SetReadDeadline(time.Now().Add(20 * time.Second))
				got, _ := io.ReadAll(in)
				read <- got
			}()
			var want bytes.Buffer
			for i := range 300 {
				p := make([]byte, []int{1, 100, 5000, 70 << 10}[i%4])
				for j := range p {
					p[j] = byte(i + j)
				}
				want.Write(p)
				if _, err := cs.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			if reset {
				cs.Reset(CodeReset, "gone")
			} else {
				cs.CloseWrite()
			}
			r := <-done
			out.Close() // the socket's reader then sees the end
			if got := <-read; !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("socket got %d bytes, different from the %d sent", len(got), want.Len())
			}
			if r.n != int64(want.Len()) || reset != (r.err != nil) || reset && !errors.Is(r.err, ErrReset) {
				t.Errorf("done(%d, %v); sent %d", r.n, r.err, want.Len())
			}
			ss.Close()
			cs.Close()
		})
	}
}
