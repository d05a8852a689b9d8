package mux

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// muxGoroutines counts the goroutines, other than the caller, running mux code: methods of
// the mux's types anywhere on their stack (a reader run, a goroutine sending the queue, a
// stream's reader or writer).
func muxGoroutines() int { return testutil.GoroutinesIn("braid/mux.(*") }

// waitMuxGoroutines waits up to a few seconds for the mux's goroutines to number want.
func waitMuxGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := muxGoroutines()
	for n != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		n = muxGoroutines()
	}
	return n
}

// setReadLinger sets readLinger to d for the test.
func setReadLinger(t *testing.T, d time.Duration) {
	old := readLinger
	readLinger = d
	t.Cleanup(func() { readLinger = old })
}

// readyPair is pair over a transport with AfterReady; the server serves its streams with
// Handler (an echo), so that nothing of the test waits in Accept either.
func readyPair(t *testing.T) (c, s *Mux, served *sync.WaitGroup) {
	t.Helper()
	setReadLinger(t, 20*time.Millisecond)
	served = &sync.WaitGroup{}
	t.Cleanup(served.Wait) // after the muxes' Close (cleanups run last first)
	scfg := &Config{Handler: func(st *Stream) {
		served.Add(1)
		go func() {
			defer served.Done()
			echoStream(st)
		}()
	}}
	c, s, _, _ = pairOver(t, nil, scfg, func(m *memTransport) Transport { return readyTransport{m} })
	return c, s, served
}

// An idle mux over a transport with AfterReady holds no goroutine at either end: its reader's
// run ends after the linger and the next starts when a message comes; nothing waits to write.
// Streams opened after each idle spell are served byte-exact, and Close ends a mux whose reader
// waits that way (Close waits for the mux's goroutines: it would hang on a miscount).
func TestIdleMuxHoldsNoGoroutine(t *testing.T) {
	ctx := testCtx(t)
	c, s, served := readyPair(t)
	for round := range 3 {
		if n := waitMuxGoroutines(0); n != 0 {
			t.Fatalf("round %d: %d mux goroutines while idle, want 0", round, n)
		}
		for i := range 4 {
			if err := roundTrip(ctx, c, 1000*i+round, uint64(round*10+i)); err != nil {
				t.Fatalf("round %d, stream %d: %v", round, i, err)
			}
		}
	}
	served.Wait()
	if n := waitMuxGoroutines(0); n != 0 {
		t.Fatalf("%d mux goroutines while idle after the streams, want 0", n)
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of an idle mux did not return")
	}
	if _, err := s.Accept(ctx); err == nil {
		t.Error("Accept after the end returned a stream")
	}
}

// With Handler set, every stream the peer opens goes to it, none to Accept; Accept returns only
// the mux's end. AfterDone runs once the mux has ended, with Err set.
func TestHandlerAndAfterDone(t *testing.T) {
	ctx := testCtx(t)
	var handled atomic.Int32
	c, s, ct, _ := pair(t, nil, &Config{Handler: func(st *Stream) {
		handled.Add(1)
		go st.Refuse(CodeNotAllowed, "test")
	}})
	for range 3 {
		if _, err := c.Open(ctx, "x"); err == nil {
			t.Fatal("the handler refused the stream, Open succeeded")
		}
	}
	if got := handled.Load(); got != 3 {
		t.Errorf("handler saw %d streams, want 3", got)
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := s.Accept(context.Background())
		accepted <- err
	}()
	ended := make(chan error, 1)
	s.AfterDone(func() { ended <- s.Err() })
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned (%v) while the mux runs", err)
	case <-time.After(50 * time.Millisecond):
	}
	ct.Close() // the client's transport ends: the server's mux sees io.EOF
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("AfterDone saw Err %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AfterDone did not run after the mux ended")
	}
	if err := <-accepted; err == nil {
		t.Error("Accept returned no error at the mux's end")
	}
}

// A reader run that lingers out before the peer's HELLO has come leaves the next run still
// expecting it: a server that answers late (a burst of sessions) is no protocol violation.
func TestLateHelloAfterLinger(t *testing.T) {
	ctx := testCtx(t)
	setReadLinger(t, 5*time.Millisecond)
	ct, st := memPair()
	c, err := Client(readyTransport{ct}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer ct.Abort()
	time.Sleep(50 * time.Millisecond) // several of the client's reader runs end meanwhile
	s, err := Server(readyTransport{st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wg := echo(ctx, s)
	defer wg.Wait()
	if err := roundTrip(ctx, c, 1000, 1); err != nil {
		t.Fatalf("after a late HELLO: %v (client mux: %v)", err, c.Err())
	}
	c.Close()
	s.Close()
}

// stallingReady is a readyTransport whose second AfterReady finds a message already there (so
// the next reader run starts at once) and then stalls its caller, so that the run it started
// handles the message and waits again before the caller goes on.
type stallingReady struct {
	readyTransport
	calls atomic.Int32
	peer  *memTransport
}

func (t *stallingReady) AfterReady(f func()) (stop func() bool) {
	if t.calls.Add(1) != 2 {
		return t.readyTransport.AfterReady(f)
	}
	t.peer.Send(context.Background(), appendOpen(nil, 4, "late"))
	stop = t.readyTransport.AfterReady(f)
	time.Sleep(50 * time.Millisecond)
	return stop
}

// A reader run whose next run started, and waited again, before the first stored its stop must
// not store a spent one over the live one: fail would call it, never give the waiting run's
// count back, and Close would wait for ever (found by review).
func TestCloseAfterOverlappingWaits(t *testing.T) {
	setReadLinger(t, 2*time.Millisecond)
	ct, st := memPair()
	defer ct.Abort()
	c, err := Client(&stallingReady{readyTransport: readyTransport{ct}, peer: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(context.Background(), appendHello(nil, 64<<10)) // the peer's side, by hand
	time.Sleep(30 * time.Millisecond)                       // the first run waits (call 1)
	st.Send(context.Background(), appendOpen(nil, 2, "x"))  // the second run, which waits (call 2)
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}
