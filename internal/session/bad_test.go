package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

func TestInvalidChunks(t *testing.T) {
	const cs = 4096
	cases := []struct {
		name   string
		frames [][]byte
	}{
		{"chunk id not below total", [][]byte{chunkFrame(0, 3, 3, 10)}},
		{"total zero", [][]byte{chunkFrame(0, 0, 0, 0)}},
		{"total beyond limit", [][]byte{chunkFrame(0, 0, 1<<30, cs)}},
		{"total changes within an item", [][]byte{chunkFrame(0, 0, 3, cs), chunkFrame(0, 1, 4, cs)}},
		{"payload larger than the chunk size", [][]byte{chunkFrame(0, 0, 1, cs+1)}},
		{"short middle chunk", [][]byte{chunkFrame(0, 0, 2, cs-1)}},
		{"no room for the chunk header", [][]byte{make([]byte, 15)}},
	}
	l, logs := startListener(t, nil)
	healthy := healthySession(t, l)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, acc := openRaw(t, l.Addr().String(), cs)
			s := acceptOne(t, l)
			for _, f := range c.frames {
				p.send(wire.TypeChunk, f)
			}
			p.expectError(wire.CodeInvalidChunk)
			if err := s.Err(); !errors.Is(err, ErrInvalidChunk) {
				t.Fatalf("session error %v, want ErrInvalidChunk", err)
			}
			testutil.WaitFor(t, func() bool {
				return strings.Contains(logs.String(), fmt.Sprintf("session=%x", acc.ID[:8])) && strings.Contains(logs.String(), "session aborted")
			}, "logged abort")
			healthy()
		})
	}
}

// TestMalformedControlFrames: a control frame whose payload does not parse aborts the session
// with PROTOCOL, and the session's error matches ErrProtocol; other sessions carry on.
func TestMalformedControlFrames(t *testing.T) {
	cases := []struct {
		name    string
		t       wire.Type
		payload []byte
	}{
		{"CHUNK_ACK cut short", wire.TypeChunkAck, []byte{1, 2, 3}},
		{"CREDIT of 3 bytes", wire.TypeCredit, []byte{0, 0, 1}},
		{"CLOSE of 9 bytes", wire.TypeClose, make([]byte, 9)},
		{"ERROR without a code", wire.TypeError, nil},
		{"PING too long", wire.TypePing, make([]byte, wire.MaxPingPayload+1)},
		{"unexpected SESSION_NEW", wire.TypeSessionNew, make([]byte, 8)},
	}
	l, _ := startListener(t, nil)
	healthy := healthySession(t, l)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := openRaw(t, l.Addr().String(), 4096)
			s := acceptOne(t, l)
			p.send(c.t, c.payload)
			p.expectError(wire.CodeProtocol)
			if err := s.Err(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("session error %v, want one matching ErrProtocol", err)
			}
			healthy()
		})
	}
	// A control frame announcing more than its type can hold is refused on its header, without
	// waiting for (or buffering) the payload.
	t.Run("CREDIT announcing 1 MiB", func(t *testing.T) {
		p, _ := openRaw(t, l.Addr().String(), 4096)
		s := acceptOne(t, l)
		var h [wire.HeaderSize]byte
		wire.PutHeader(h[:], wire.Header{Type: wire.TypeCredit, Length: 1 << 20})
		if _, err := p.conn.Write(h[:]); err != nil {
			t.Fatal(err)
		}
		p.expectError(wire.CodeProtocol)
		if err := s.Err(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("session error %v, want one matching ErrProtocol", err)
		}
		healthy()
	})
}

func TestOverBudget(t *testing.T) {
	l, _ := startListener(t, &Config{ChunkSize: 4096, SessionWindow: 64 << 10, MaxMessageSize: 16 << 10})
	healthy := healthySession(t, l)
	p, _ := openRaw(t, l.Addr().String(), 4096)
	s := acceptOne(t, l)
	// Items 1.. while item 0 never completes: each is charged until the window is gone.
	for i := uint64(1); i < 32; i++ {
		p.send(wire.TypeChunk, chunkFrame(i, 0, 2, 4096))
	}
	p.expectError(wire.CodeOverBudget)
	if err := s.Err(); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("session error %v", err)
	}
	healthy()
}

// testKeepAlive is the keepalive of tests in which a silent raw path must become replaceable.
const testKeepAlive = 50 * time.Millisecond

func TestHandshakeErrors(t *testing.T) {
	l, _ := startListener(t, &Config{MaxPaths: 2, MaxSessions: 3, KeepAlive: testKeepAlive})
	healthy := healthySession(t, l) // uses 1 session of 3
	_, acc := openRaw(t, l.Addr().String(), 4096)
	raw := acceptOne(t, l)

	t.Run("unknown session id", func(t *testing.T) {
		p := dialRaw(t, l.Addr().String())
		bad := acc
		bad.ID[0] ^= 1
		p.send(wire.TypeSessionAttach, bad.attach(p, 0))
		p.expectError(wire.CodeUnknownSession)
	})
	t.Run("wrong proof", func(t *testing.T) {
		p := dialRaw(t, l.Addr().String())
		a := acc.attach(p, 1)
		a[len(a)-1] ^= 1
		p.send(wire.TypeSessionAttach, a)
		p.expectError(wire.CodeBadToken)
	})
	t.Run("slot out of range", func(t *testing.T) {
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypeSessionAttach, acc.attach(p, 2))
		p.expectError(wire.CodeBadOptions)
	})
	t.Run("same slot replaces only a silent path", func(t *testing.T) {
		// A client re-dials only a path it has lost; the server ends the old one in that slot,
		// but only once it too has stopped hearing from it.
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypeSessionAttach, acc.attach(p, 1))
		if f := p.recv(); f.Type != wire.TypeAttachOK {
			t.Fatalf("second path: %s", f.Type)
		}
		// Until the server has added it, the path holds a reservation, not its slot.
		testutil.WaitFor(t, func() bool { return len(raw.Stats().Paths) == 2 }, "second path added")
		early := dialRaw(t, l.Addr().String())
		early.send(wire.TypeSessionAttach, acc.attach(early, 1))
		early.expectError(wire.CodeTooManyPaths) // p was heard from just now
		time.Sleep(3 * testKeepAlive)            // p never writes
		q := dialRaw(t, l.Addr().String())
		q.send(wire.TypeSessionAttach, acc.attach(q, 1))
		if f := q.recv(); f.Type != wire.TypeAttachOK {
			t.Fatalf("replacing path: %s", f.Type)
		}
		p.expectClosed()
	})
	t.Run("attach before SESSION_NEW completes", func(t *testing.T) {
		// A session id the server has not issued yet cannot be attached to, whatever the token.
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypeSessionAttach, make([]byte, wire.SessionAttachSize))
		p.expectError(wire.CodeUnknownSession)
	})
	t.Run("chunk for no session", func(t *testing.T) {
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypeChunk, chunkFrame(0, 0, 1, 5))
		p.expectError(wire.CodeUnknownSession)
	})
	t.Run("bad options", func(t *testing.T) {
		for _, m := range []wire.SessionNew{
			{Version: wire.ProtocolVersion + 1, ChunkSize: 4096, Window: 1 << 20},
			{Version: wire.ProtocolVersion, Mode: 9, ChunkSize: 4096, Window: 1 << 20},
			{Version: wire.ProtocolVersion, ChunkSize: 100, Window: 1 << 20},
			{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 10},
		} {
			p := dialRaw(t, l.Addr().String())
			p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, m))
			p.expectError(wire.CodeBadOptions)
		}
	})
	t.Run("session frame after the first", func(t *testing.T) {
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypePing, nil)
		p.recv()
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		p.expectError(wire.CodeProtocol)
	})
	t.Run("too many sessions", func(t *testing.T) {
		// Earlier subtests closed raw paths, which ends their sessions; fill up to the limit.
		for l.Sessions() < 3 {
			openRaw(t, l.Addr().String(), 4096)
			acceptOne(t, l)
		}
		p := dialRaw(t, l.Addr().String())
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: 4096, Window: 1 << 20}))
		p.expectError(wire.CodeTooManySessions)
		// The client API reports it as a matchable error.
		if _, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 1})); !errors.Is(err, ErrTooManySessions) {
			t.Fatalf("Dial: %v", err)
		}
	})
	t.Run("handshake timeout", func(t *testing.T) {
		l2, _ := startListener(t, &Config{HandshakeTimeout: 200 * time.Millisecond})
		p := dialRaw(t, l2.Addr().String())
		p.expectError(wire.CodeTimeout)
	})
	healthy()
}

func TestDialErrorsAreMatchable(t *testing.T) {
	l, _ := startListener(t, &Config{MaxPaths: 2})
	if _, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 3})); !errors.Is(err, ErrTooManyPaths) {
		t.Fatalf("Dial with too many paths: %v", err)
	}
	if _, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{MaxMessageSize: 1 << 30})); err == nil {
		t.Fatal("window smaller than twice the largest message accepted")
	}
}
