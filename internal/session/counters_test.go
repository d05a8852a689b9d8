package session

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// TestDialWithPathDownAtStart: a path that cannot be reached when the session is dialed (its
// proxy resets every connection) does not fail Dial; the session runs on the others and the
// path joins once it can be reached. When it is the first path, the session opens on the next.
func TestDialWithPathDownAtStart(t *testing.T) {
	for _, down := range []int{0, 2} {
		t.Run(map[int]string{0: "first", 2: "last"}[down], func(t *testing.T) {
			testutil.CheckLeaks(t)
			logs := &testutil.SyncBuffer{}
			cfg := faultConfig(logs)
			l, _ := startListener(t, faultConfig(&testutil.SyncBuffer{}))
			var specs []PathSpec
			var proxies []*faultproxy.Proxy
			for range 3 {
				p, err := faultproxy.New(l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				proxies = append(proxies, p)
				specs = append(specs, PathSpec{Remote: p.Addr()})
			}
			proxies[down].Cut()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := DialPaths(ctx, specs, pinned(cfg))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			s := acceptOne(t, l)
			defer s.Abort()
			if st := c.Stats(); livePathCount(st) != 2 || st.PathsDown != 1 || st.PathsUp != 2 {
				t.Fatalf("after Dial: %d live paths, %d down, %d up; want 2, 1, 2", livePathCount(st), st.PathsDown, st.PathsUp)
			}
			if !strings.Contains(logs.String(), "path down at the start") {
				t.Errorf("no warning logged:\n%s", logs)
			}
			msg := bytes.Repeat([]byte("x"), 300<<10)
			if err := c.Send(ctx, msg); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Receive(ctx); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("receive: %d bytes, %v", len(got), err)
			}
			testutil.WaitFor(t, func() bool { return c.Stats().RedialFailures > 0 }, "a re-dial to fail")
			proxies[down].Restore()
			testutil.WaitFor(t, func() bool { return livePathCount(c.Stats()) == 3 }, "the path down at the start to join")
			// At least the one that brought the path in (on a loaded machine a fresh path may be
			// judged silent and re-dialed once more).
			if st := c.Stats(); st.Redials < 1 {
				t.Errorf("redials %d, want at least 1", st.Redials)
			}
		})
	}
}

// TestDialMinPaths: with fewer reachable paths than MinPaths, Dial fails and says why; a
// server's refusal on a path fails Dial whatever MinPaths says.
func TestDialMinPaths(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, nil)
	p, err := faultproxy.New(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Cut()
	specs := []PathSpec{{Remote: l.Addr().String()}, {Remote: p.Addr()}, {Remote: l.Addr().String()}}
	_, err = DialPaths(context.Background(), specs, pinned(&Config{MinPaths: 3, HandshakeTimeout: 5 * time.Second}))
	if err == nil || !strings.Contains(err.Error(), "2 of 3 paths attached, MinPaths is 3") {
		t.Fatalf("Dial: %v", err)
	}
	if _, err := DialPaths(context.Background(), specs[:2], pinned(&Config{MinPaths: 3})); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("MinPaths above the paths given: %v", err)
	}
	// Every spec unreachable (a reset at connect or during TLS): Dial fails with why.
	_, err = DialPaths(context.Background(), []PathSpec{{Remote: p.Addr()}, {Remote: p.Addr()}}, pinned(nil))
	if err == nil || !strings.Contains(err.Error(), p.Addr()) || !unreachable(err) {
		t.Fatalf("Dial with every path down: %v", err)
	}
	// A wrong fingerprint on the first path is not "down": Dial fails at once.
	_, err = DialPaths(context.Background(), specs, &Config{ServerFingerprint: "SHA256:" + strings.Repeat("A", 43)})
	if !errors.Is(err, ErrFingerprint) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
}

func livePathCount(st Stats) int {
	n := 0
	for _, p := range st.Paths {
		if p.Live {
			n++
		}
	}
	return n
}

// TestSessionCounters: a path reset mid-transfer shows in the counters: chunks sent again on the
// others, a path down and re-dialed; every byte sent is acknowledged once.
func TestSessionCounters(t *testing.T) {
	f := newFaultSetup(t, 3, nil)
	cerr, serr := f.run(t, 30, 8, func() { f.proxies[1].Reset() })
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	expectLog(t, f.clientLogs, "path re-dialed")
	f.closeBoth(t)
	st := f.client.Stats()
	var resent, acked, sent uint64
	for _, p := range st.Paths {
		resent += p.ChunksResent
		acked += p.BytesAcked
		sent += p.BytesSent
		if p.ChunksResent == 0 && p.BytesResent != 0 || p.BytesAcked > p.BytesSent {
			t.Errorf("path %d: %+v", p.Index, p)
		}
	}
	if st.PathsDown < 1 || st.Redials < 1 || st.PathsUp < 4 {
		t.Errorf("paths down %d, re-dialed %d, up %d", st.PathsDown, st.Redials, st.PathsUp)
	}
	if resent == 0 {
		t.Error("no chunk counted as sent again after the reset")
	}
	// Each message byte is acknowledged once; on the paths, a chunk written twice counts where
	// it was acknowledged.
	if st.BytesAcked == 0 || acked > st.BytesAcked || sent < st.BytesAcked {
		t.Errorf("session acknowledged %d bytes; the paths %d, sent %d", st.BytesAcked, acked, sent)
	}
	// The server received what the client's session counts as acknowledged.
	var received uint64
	for _, p := range f.server.Stats().Paths {
		received += p.BytesReceived
	}
	if received < st.BytesAcked {
		t.Errorf("server received %d chunk bytes, client counts %d acknowledged", received, st.BytesAcked)
	}
}

// TestListenerStats: what a Listener opened and refused, by reason.
func TestListenerStats(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, serving(&Config{Token: "sesame"}))
	ctx := context.Background()
	c, err := Dial(ctx, l.Addr().String(), pinned(&Config{Paths: 2, Token: "sesame", ChunkSize: 4 << 10}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	defer s.Abort()
	if _, err := Dial(ctx, l.Addr().String(), pinned(&Config{Paths: 1})); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	if _, err := Dial(ctx, l.Addr().String(), &Config{Paths: 1, ServerFingerprint: "SHA256:" + strings.Repeat("A", 43)}); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
	// A session ended for an invalid chunk counts its code.
	p, _ := openRawWith(t, l.Addr().String(), wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20, Token: []byte("sesame")})
	bad := acceptOne(t, l)
	defer bad.Abort()
	p.send(wire.TypeChunk, chunkFrame(0, 3, 3, 10))
	p.expectError(wire.CodeInvalidChunk)
	var st ListenerStats
	testutil.WaitFor(t, func() bool {
		st = l.Stats()
		return st.Refused["tls_handshake"] == 1 && st.Refused["invalid_chunk"] == 1
	}, "the refusals to be counted")
	if st.SessionsOpened != 2 || st.SessionsRefused != 1 || st.Refused["unauthorized"] != 1 || st.Sessions < 1 {
		t.Fatalf("listener stats %+v", st)
	}
}
