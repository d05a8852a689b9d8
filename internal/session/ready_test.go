package session

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// readyProbe counts the runs of an AfterReady function and lets a test wait for the next.
type readyProbe struct{ ran chan struct{} }

func newReadyProbe() *readyProbe { return &readyProbe{ran: make(chan struct{}, 8)} }

func (r *readyProbe) f() { r.ran <- struct{}{} }

// expect waits for one run; none must come if !want (within a short look).
func (r *readyProbe) expect(t *testing.T, want bool, why string) {
	t.Helper()
	wait := 10 * time.Second
	if !want {
		wait = 50 * time.Millisecond
	}
	select {
	case <-r.ran:
		if !want {
			t.Fatalf("%s: the function ran", why)
		}
	case <-time.After(wait):
		if want {
			t.Fatalf("%s: the function did not run", why)
		}
	}
}

// TestAfterReady: the function runs once a Receive would not wait — a message complete (at once
// if one is already), the peer's Close, this end's Close or an abort — and only once per call;
// stopped before then, it never runs. After each run Receive returns without waiting.
func TestAfterReady(t *testing.T) {
	noWait, cancel := context.WithCancel(context.Background())
	cancel() // a Receive that would wait fails at once
	ctx, stopAll := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopAll()

	c, s := dialPair(t, &Config{Paths: 2}, &Config{Paths: 2})
	r := newReadyProbe()
	s.AfterReady(r.f)
	r.expect(t, false, "nothing sent")
	for i, msg := range [][]byte{[]byte("one"), make([]byte, 3<<20)} {
		if err := c.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		r.expect(t, true, "a message sent")
		got, err := s.Receive(noWait)
		if err != nil || len(got) != len(msg) {
			t.Fatalf("message %d: %d bytes, %v after the run", i, len(got), err)
		}
		r.expect(t, false, "a second run for one call")
		s.AfterReady(r.f)
		r.expect(t, false, "after the message was taken")
	}
	// Already ready: at once.
	if err := c.Send(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, true, "the call waiting")
	r2 := newReadyProbe()
	s.AfterReady(r2.f)
	r2.expect(t, true, "a message already waiting")
	if got, err := s.Receive(noWait); err != nil || string(got) != "two" {
		t.Fatalf("got %q, %v", got, err)
	}

	// Stopped: never runs, and stop says so once.
	stop := s.AfterReady(r.f)
	if !stop() || stop() {
		t.Fatal("stop before the run: want true, then false")
	}
	if err := c.Send(ctx, []byte("three")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, false, "stopped")
	if got, err := s.Receive(ctx); err != nil || string(got) != "three" {
		t.Fatalf("got %q, %v", got, err)
	}
	s.mu.Lock()
	left := len(s.readyFuncs)
	s.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d functions left waiting", left)
	}
	ran := s.AfterReady(r.f)
	if err := c.Send(ctx, []byte("four")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, true, "a message")
	if ran() {
		t.Fatal("stop after the run reported true")
	}
	if _, err := s.Receive(noWait); err != nil {
		t.Fatal(err)
	}

	// The peer's Close: Receive returns io.EOF at once.
	s.AfterReady(r.f)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	r.expect(t, true, "the peer closing")
	if _, err := s.Receive(noWait); err != io.EOF {
		t.Fatalf("after the peer's Close: %v, want io.EOF", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	s.AfterReady(r.f)
	r.expect(t, true, "a closed session")

	// This end's Close and an abort.
	for _, end := range []func(*Session){func(s *Session) { go s.Close() }, (*Session).Abort} {
		c, s := dialPair(t, nil, nil)
		c.AfterReady(r.f)
		r.expect(t, false, "an open session")
		end(c)
		r.expect(t, true, "the session ending")
		if _, err := c.Receive(noWait); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Receive after the end: %v", err)
		}
		_ = s
	}
}

// TestAfterReadyNoReclaimWait: a server that takes a request's header in an AfterReady step, asks
// for its body, waits in Receive for it and answers, hears the next header at once. The body's Receive
// was handed its path's read role and returned; with nobody reading, the path's reader must read
// on when the step waits again with AfterReady, not at its reclaim timer (2 ms later, each time).
func TestAfterReadyNoReclaimWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &Config{Paths: 1}
	c, s := dialPair(t, cfg, cfg)
	served := make(chan error, 1)
	var step func()
	step = func() {
		hdr, err := s.Receive(ctx)
		if err == nil {
			err = s.Send(ctx, []byte("go on"))
		}
		if err == nil {
			var body []byte
			if body, err = s.Receive(ctx); err == nil { // waits: the body comes after "go on"
				err = s.Send(ctx, append(hdr, body...))
			}
		}
		if err != nil {
			served <- err
			return
		}
		s.AfterReady(step)
	}
	s.AfterReady(step)
	const n = 60
	for i := range n {
		for _, m := range []string{"header", "body"} {
			if err := c.Send(ctx, []byte(m)); err != nil {
				t.Fatal(err)
			}
			want := "go on"
			if m == "body" {
				want = "headerbody"
			}
			if got, err := c.Receive(ctx); err != nil || string(got) != want {
				t.Fatalf("request %d: %q, %v", i, got, err)
			}
		}
	}
	var reclaims uint64
	s.mu.Lock()
	for _, e := range s.paths {
		if e != nil {
			reclaims += e.timerReclaims.Load()
		}
	}
	s.mu.Unlock()
	t.Logf("%d of %d requests waited for the reclaim timer", reclaims, n)
	if reclaims > n/4 {
		t.Errorf("%d of %d requests waited for the reclaim timer", reclaims, n)
	}
	select {
	case err := <-served:
		t.Fatal(err)
	default:
	}
}
