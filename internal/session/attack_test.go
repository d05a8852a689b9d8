package session

import (
	"context"
	"errors"
	"net"
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
		// Every session holds its one chunk, and nothing more — once the legitimate client's
		// session, aborted as served returned, has ended at the server with its message.
		held := func() int {
			at.local.table.mu.Lock()
			defer at.local.table.mu.Unlock()
			n := 0
			for _, s := range at.local.table.byID {
				s.mu.Lock()
				n += s.reasm.Pending()
				s.mu.Unlock()
			}
			return n
		}
		testutil.WaitFor(t, func() bool { return held() == at.sessions }, "the server to hold one chunk per attacking session")
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

// TestHandshakeFloodKeepsEstablished: established sessions are not pushed out by a flood of
// half-open handshakes from one address — connections that never start TLS (up to
// MaxHandshakesPerIP, the rest closed at accept) and SESSION_NEW squatters (up to
// MaxPendingSessionsPerIP, the rest refused TOO_MANY_SESSIONS). They exchange messages during
// the flood, and are all still held after it; once the squatters have timed out, a new client
// is served.
func TestHandshakeFloodKeepsEstablished(t *testing.T) {
	const established = 4
	l, _ := startListener(t, &Config{MaxSessions: 2 * established, MaxHandshakes: 16, MaxHandshakesPerIP: 8,
		MaxPendingSessionsPerIP: established, HandshakeTimeout: time.Second})
	addr := l.Addr().String()
	var clients, servers []*Session
	for range established {
		c, s := dialTo(t, l, &Config{Paths: 2})
		echoOnce(t, c, s)
		clients, servers = append(clients, c), append(servers, s)
	}
	// Squatters: SESSION_NEW and silence, accepted up to the pending limit, the rest refused.
	squatting := 0
	for range 2 * established {
		p := dialRaw(t, addr)
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		switch f := p.recv(); f.Type {
		case wire.TypeSessionAccept:
			squatting++
		case wire.TypeError:
			if e, _ := wire.ParseError(f.Payload); e.Code != wire.CodeTooManySessions {
				t.Fatalf("squatter refused with %s, want %s", e.Code, wire.CodeTooManySessions)
			}
		default:
			t.Fatalf("squatter answered %s", f.Type)
		}
	}
	if squatting != established {
		t.Errorf("%d squatting sessions accepted, want MaxPendingSessionsPerIP (%d)", squatting, established)
	}
	// MaxSessions is reached (the established and the squatters): a new client is refused with
	// an error it can match, not left to time out.
	if _, err := Dial(context.Background(), addr, pinned(&Config{Paths: 2})); !errors.Is(err, ErrTooManySessions) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Dial at MaxSessions: %v, want ErrTooManySessions", err)
	}
	// Connections that send nothing: each holds a handshake slot until HandshakeTimeout, and
	// those beyond MaxHandshakesPerIP are closed at accept.
	var silent []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// During the flood every established session still carries messages both ways.
	for i := range clients {
		echoOnce(t, clients[i], servers[i])
		echoOnce(t, servers[i], clients[i])
	}
	// After it the squatters are gone, the established sessions are not, and a new client is served.
	testutil.WaitFor(t, func() bool { return l.Sessions() == established }, "the squatters to time out (%d sessions)", l.Sessions())
	for _, c := range silent {
		c.Close()
	}
	// Their handshake slots are freed once the server has read their end: until then a new
	// connection from this address is still one too many.
	testutil.WaitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.pending == 0
	}, "the silent connections' handshake slots to be freed")
	for i, s := range servers {
		if err := s.Err(); err != nil {
			t.Fatalf("established session %d ended: %v", i, err)
		}
	}
	c, err := Dial(context.Background(), addr, pinned(&Config{Paths: 2}))
	if err != nil {
		t.Fatalf("a new client after the flood: %v", err)
	}
	defer c.Abort()
	// (Accept would hand out the squatters' ended sessions first: the acknowledgement shows
	// that the server's side of this one takes messages.)
	if err := c.Send(context.Background(), []byte("after the flood")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return c.Stats().BytesAcked == uint64(len("after the flood")) }, "the message acknowledged")
}
