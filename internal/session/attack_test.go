package session

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// The attacks of issue 18, as tests: by default against an in-process server with the default
// limits; pointed at a running server (BRAID_ATTACK_ADDR and BRAID_ATTACK_FINGERPRINT, with
// BRAID_ATTACK_SESSIONS and BRAID_ATTACK_HOLD to shape them) they measure it, its RSS read from
// /proc meanwhile. Either way a legitimate client from another address must be served during the
// attack.

// TestAttackOneChunkPerSession: N sessions, each established with a PING and then sending only
// the last, 25-byte chunk of a 200-chunk item (50 MiB at 256 KiB chunks), held open.
func TestAttackOneChunkPerSession(t *testing.T) {
	at := attackTarget(t, 30, 1000)
	const chunk, total = 256 << 10, 200
	for i := range at.sessions {
		p := dialRawPinned(t, at.addr, at.fingerprint)
		p.tcp.SetDeadline(time.Time{})
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: chunk, Window: 1 << 20}))
		if f := p.recv(); f.Type != wire.TypeSessionAccept {
			t.Fatalf("session %d: answered %s", i, f.Type)
		}
		p.send(wire.TypePing, make([]byte, 8))
		p.readUntil(wire.TypePong, "the PONG")
		p.send(wire.TypeChunk, chunkFrame(0, total-1, total, 25))
	}
	t.Logf("%d sessions each holding one 25-byte chunk of a %d-chunk item", at.sessions, total)
	at.served(t)
	if at.local != nil {
		// Every session holds its one chunk, and nothing more.
		at.local.table.mu.Lock()
		held := 0
		for _, s := range at.local.table.byID {
			s.mu.Lock()
			held += s.reasm.Pending()
			s.mu.Unlock()
		}
		at.local.table.mu.Unlock()
		if held != at.sessions {
			t.Errorf("the server holds %d chunks for %d sessions of one chunk", held, at.sessions)
		}
	}
	at.hold(t)
}

// TestAttackSessionSquat: connections from one address each send SESSION_NEW and then nothing.
// The server holds at most MaxPendingSessionsPerIP of them (in process) and refuses the rest at
// once, while a client from another address is served.
func TestAttackSessionSquat(t *testing.T) {
	at := attackTarget(t, 100, 1100)
	accepted, refused := 0, 0
	for range at.sessions {
		p := dialRawPinned(t, at.addr, at.fingerprint)
		p.tcp.SetDeadline(time.Now().Add(at.holdFor + 30*time.Second))
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		if f := p.recv(); f.Type == wire.TypeSessionAccept {
			accepted++
		} else {
			refused++
			p.conn.Close()
		}
	}
	t.Logf("%d SESSION_NEW: %d accepted, %d refused", at.sessions, accepted, refused)
	if limit := DefaultConfig().MaxPendingSessionsPerIP; at.local != nil && accepted != limit {
		t.Errorf("%d squatting sessions accepted from one address, want MaxPendingSessionsPerIP (%d)", accepted, limit)
	}
	if refused == 0 {
		t.Error("no squatting session was refused")
	}
	at.served(t)
	at.hold(t)
}

// attack is where an attack test aims.
type attack struct {
	addr, fingerprint string
	local             *Listener // the in-process server, or nil
	sessions          int
	holdFor           time.Duration
}

// attackTarget returns the running server the environment names, or an in-process one with the
// default configuration; sessions is the attack's size (local or remote by default).
func attackTarget(t *testing.T, local, remote int) *attack {
	at := &attack{addr: os.Getenv("BRAID_ATTACK_ADDR"), fingerprint: os.Getenv("BRAID_ATTACK_FINGERPRINT"), sessions: local}
	if at.addr == "" || at.fingerprint == "" {
		at.local, _ = startListener(t, &Config{MaxPendingSessionsPerIP: DefaultConfig().MaxPendingSessionsPerIP})
		at.addr, at.fingerprint = at.local.Addr().String(), testFingerprint()
		go func() { // the server's application accepts what it is offered (Close aborts it all)
			for {
				if _, err := at.local.Accept(context.Background()); err != nil {
					return
				}
			}
		}()
	} else {
		at.sessions = remote
		at.holdFor = 10 * time.Second
	}
	if n, _ := strconv.Atoi(os.Getenv("BRAID_ATTACK_SESSIONS")); n > 0 {
		at.sessions = n
	}
	if d, _ := time.ParseDuration(os.Getenv("BRAID_ATTACK_HOLD")); d > 0 {
		at.holdFor = d
	}
	t.Setenv("BRAID_TEST_FINGERPRINT", at.fingerprint)
	return at
}

// served checks that a legitimate client from another address opens a session and gets a
// message through now, and logs how long that took.
func (at *attack) served(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := DialPaths(ctx, []PathSpec{{Local: "127.0.0.2", Remote: at.addr}}, &Config{ServerFingerprint: at.fingerprint})
	if err != nil {
		t.Fatalf("a legitimate client during the attack: %v", err)
	}
	defer c.Abort()
	if at.local != nil {
		// The in-process server acknowledges a message (a running braid serve would take it
		// for a transfer: the session alone is checked there).
		if err := c.Send(ctx, []byte("legitimate")); err != nil {
			t.Fatalf("a legitimate client's message: %v", err)
		}
		testutil.WaitFor(t, func() bool { return c.Stats().BytesAcked == uint64(len("legitimate")) }, "the message acknowledged")
	}
	t.Logf("a legitimate client was served in %v", time.Since(start).Round(time.Millisecond))
}

// hold keeps the attack's connections open for its hold time (a remote measurement's window).
func (at *attack) hold(t *testing.T) {
	if at.holdFor > 0 {
		t.Logf("holding for %v", at.holdFor)
		time.Sleep(at.holdFor)
	}
}
