package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/tap"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

func modeTweak(mode string) func(*Config) { return func(c *Config) { c.Mode = mode } }

// TestModesExact: every dispersal mode delivers messages both ways exactly, in order, and spreads
// them over every path; in the coded modes every path carries one piece of every chunk.
func TestModesExact(t *testing.T) {
	for _, mode := range []string{"plain", "redundant", "shamir:2/2", "shamir:2/3", "shamir:3/5", "erasure:2/3", "erasure:3/5", "aont:2/2", "aont:2/3", "aont:3/5"} {
		t.Run(mode, func(t *testing.T) {
			m, _ := disperse.Parse(mode)
			paths := 3
			if m.Coded() {
				paths = m.N
			}
			f := newFaultSetup(t, paths, modeTweak(mode))
			if f.client.Stats().Mode != mode || f.server.Stats().Mode != mode {
				t.Fatalf("modes %s / %s, want %s", f.client.Stats().Mode, f.server.Stats().Mode, mode)
			}
			cerr, serr := f.run(t, 20, -1, nil)
			if cerr != nil || serr != nil {
				t.Fatalf("client: %v; server: %v", cerr, serr)
			}
			f.closeBoth(t)
			for _, s := range []*Session{f.client, f.server} {
				// A loaded machine can have a path re-dialed: its slot then has two entries,
				// judged together.
				stats := bySlot(s.Stats().Paths)
				if len(stats) != paths {
					t.Fatalf("%d slots, want %d: %+v", len(stats), paths, s.Stats().Paths)
				}
				for _, p := range stats {
					// A redundant copy, or a piece beyond the K needed, acknowledged (by way of
					// other paths) before its turn to be written is dropped, so such a path
					// may send none in one direction; and in plain mode the adaptive scheduler
					// may leave a path that looked slower (its RTT inflated by a loaded
					// machine) unused in one direction for a transfer this short.
					idle := p.ChunksSent == 0 || p.ChunksReceived == 0
					if m.Kind == disperse.Redundant || m.Kind == disperse.Plain || m.Coded() && m.N > m.K {
						idle = p.ChunksSent == 0 && p.ChunksReceived == 0
					}
					if idle {
						t.Errorf("path %d (slot %d) idle: %+v", p.Index, p.Slot, p)
					}
				}
				if m.Coded() && m.K == m.N {
					// Every chunk's pieces go one to each slot, so each path sends as many.
					// (With N > K a piece that became unnecessary before it was written is
					// skipped.) Unless a retransmission timeout, which a loaded machine can set
					// off, had some pieces sent again: a piece still queued when it fires is
					// then written once, but counted as sent again.
					resent := uint64(0)
					for _, p := range stats {
						resent += p.ChunksResent
					}
					for _, p := range stats[1:] {
						if diff := int64(p.ChunksSent) - int64(stats[0].ChunksSent); resent == 0 && (diff > 5 || diff < -5) {
							t.Errorf("slot %d sent %d pieces, slot %d %d", p.Slot, p.ChunksSent, stats[0].Slot, stats[0].ChunksSent)
						}
					}
					if resent > 0 {
						t.Logf("%d pieces sent again: pieces per slot not compared", resent)
					}
				}
			}
			// Every byte written was acknowledged: nothing is left counted in flight.
			for _, s := range []*Session{f.client, f.server} {
				s.mu.Lock()
				for _, p := range s.paths {
					if n := p.inflight.Load(); n != 0 {
						t.Errorf("path %d: %d bytes still counted in flight after Close", p.index, n)
					}
				}
				s.mu.Unlock()
			}
			if n := f.server.Stats().IntegrityFailures + f.client.Stats().IntegrityFailures; n != 0 {
				t.Errorf("%d integrity failures on clean paths", n)
			}
		})
	}
}

// bySlot sums the counters of the paths that served each slot (a re-dialed path takes its
// predecessor's slot), in slot order.
func bySlot(paths []PathStats) []PathStats {
	var out []PathStats
	for _, p := range paths {
		i := slices.IndexFunc(out, func(q PathStats) bool { return q.Slot == p.Slot })
		if i < 0 {
			out = append(out, PathStats{Index: p.Index, Slot: p.Slot})
			i = len(out) - 1
		}
		out[i].ChunksSent += p.ChunksSent
		out[i].ChunksReceived += p.ChunksReceived
		out[i].ChunksResent += p.ChunksResent
	}
	slices.SortFunc(out, func(a, b PathStats) int { return a.Slot - b.Slot })
	return out
}

// pieceBodies parses a recorded stream and returns the bytes of its PIECE and CHUNK payloads
// (without their headers), each seq once (a retransmission repeats the same bytes, which would
// skew a test of how random they look), and the frame types seen.
func pieceBodies(t *testing.T, stream []byte) ([]byte, map[wire.Type]int) {
	t.Helper()
	r := wire.NewReader(bytes.NewReader(stream), 0)
	var body []byte
	types := map[wire.Type]int{}
	seen := map[uint64]bool{}
	for {
		f, err := r.ReadFrame()
		if err != nil {
			break // the recording may end mid-frame
		}
		types[f.Type]++
		var hdr int
		switch f.Type {
		case wire.TypePiece:
			hdr = wire.PieceHeaderSize
		case wire.TypeChunk:
			hdr = wire.ChunkHeaderSize
		default:
			continue
		}
		ch, err := wire.ParseChunkHeader(f.Payload[:wire.ChunkHeaderSize])
		if err != nil {
			t.Fatal(err)
		}
		if !seen[ch.Seq] {
			seen[ch.Seq] = true
			body = append(body, f.Payload[hdr:]...)
		}
	}
	return body, types
}

// sendOneWay sends msgs from a client dialed with cfg to the listener l and checks that they
// arrive intact.
func sendOneWay(t *testing.T, l *Listener, cfg *Config, msgs [][]byte) (*Session, *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, l.Addr().String(), pinned(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Abort)
	s := acceptOne(t, l)
	t.Cleanup(s.Abort)
	errc := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := c.Send(ctx, m); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.Close()
	}()
	for i, want := range msgs {
		got, err := s.Receive(ctx)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := s.Receive(ctx); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestShamirPathLooksRandom: in shamir:2/3 and aont:2/3 the bytes each path carries, for plaintexts as
// structured as can be (all zeros, a repeated text), are indistinguishable from uniform by a
// chi-square test over byte values and contain no piece of the plaintext. The same test on a plain
// session finds the plaintext, so it can fail.
func TestShamirPathLooksRandom(t *testing.T) {
	text := bytes.Repeat([]byte("attack at dawn; "), 1<<18) // 4 MiB
	zeros := make([]byte, 4<<20)
	for _, c := range []struct {
		mode   string
		secret bool
	}{{"shamir:2/3", true}, {"aont:2/3", true}, {"plain", false}} {
		t.Run(c.mode, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// Without TLS, which would hide everything from the tap: this is the dispersal's
			// own secrecy.
			tl := &tap.Listener{Listener: ln, Limit: 16 << 20}
			l, err := NewListener(tl, &Config{Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			sendOneWay(t, l, &Config{Mode: c.mode, Paths: 3, Insecure: true}, [][]byte{zeros, text})
			taps := tl.Conns()
			if len(taps) != 3 {
				t.Fatalf("%d connections, want 3", len(taps))
			}
			for i, tc := range taps {
				stream := tc.Bytes()
				body, types := pieceBodies(t, stream)
				leaks := bytes.Contains(stream, []byte("attack at dawn")) || bytes.Contains(stream, make([]byte, 32))
				x := disperse.ChiSquare(body)
				t.Logf("path %d: %d bytes, %d of payload, frames %v, chi-square %.0f, plaintext seen %v", i, len(stream), len(body), types, x, leaks)
				if !c.secret {
					if !leaks || x < 1000 {
						t.Errorf("plain path %d: plaintext not found (chi-square %.0f): the test is blind", i, x)
					}
					continue
				}
				if types[wire.TypeChunk] != 0 || types[wire.TypePiece] == 0 {
					t.Errorf("path %d carried frames %v", i, types)
				}
				// 255 degrees of freedom: p = 1e-6 at about 380.
				if x > 380 {
					t.Errorf("path %d: chi-square %.0f over %d payload bytes: not uniform", i, x, len(body))
				}
				if leaks {
					t.Errorf("path %d carries plaintext", i)
				}
			}
		})
	}
}

// TestCodedSurvivesCut: shamir:2/3, erasure:2/3 and aont:2/3 deliver exactly with one path cut mid-transfer
// and kept down: the other two slots carry enough pieces, and no piece moves to another slot (the
// receiver checks every piece against its path's slot and would end the session).
func TestCodedSurvivesCut(t *testing.T) {
	for _, mode := range []string{"shamir:2/3", "erasure:2/3", "aont:2/3"} {
		t.Run(mode, func(t *testing.T) {
			f := newFaultSetup(t, 3, modeTweak(mode))
			cerr, serr := f.run(t, 30, 8, func() { f.proxies[1].Cut() })
			if cerr != nil || serr != nil {
				t.Fatalf("client: %v; server: %v", cerr, serr)
			}
			expectLog(t, f.clientLogs, "path down")
			f.proxies[1].Restore()
			f.closeBoth(t)
		})
	}
}

// TestShamirWaitsForSlot: with shamir:3/3 and one path down nothing more can be rebuilt, and the
// session waits — sending no piece of the lost slot elsewhere — until the path is re-dialed.
func TestShamirWaitsForSlot(t *testing.T) {
	f := newFaultSetup(t, 3, modeTweak("shamir:3/3"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 40
	var received atomic.Int32
	cut := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		g := newMessageGen(9, 256<<10)
		for i := range n {
			if i == 10 {
				f.proxies[2].Cut()
				close(cut)
			}
			if err := f.client.Send(ctx, g.next()); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	done := make(chan error, 1)
	go func() {
		g := newMessageGen(9, 256<<10)
		for i := range n {
			got, err := f.server.Receive(ctx)
			if err != nil {
				done <- err
				return
			}
			if !bytes.Equal(got, g.next()) {
				done <- fmt.Errorf("message %d corrupted", i)
				return
			}
			received.Add(1)
		}
		done <- nil
	}()
	<-cut
	expectLog(t, f.clientLogs, "path down")
	time.Sleep(500 * time.Millisecond) // what was complete before the cut drains
	before := received.Load()
	time.Sleep(time.Second)
	if after := received.Load(); after != before || after == n {
		t.Fatalf("received %d messages, then %d, with a slot of shamir:3/3 down: want a stall", before, after)
	}
	f.proxies[2].Restore()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	expectLog(t, f.clientLogs, "path re-dialed")
	f.closeBoth(t)
}

// corruptListener flips one bit in the body of the nth PIECE frame that any of its connections
// reads — a corruption that TCP's checksum missed, or an active attacker on one path.
type corruptListener struct {
	net.Listener
	nth  int
	done atomic.Bool
}

type corruptConn struct {
	net.Conn
	l      *corruptListener
	hdr    [wire.HeaderSize]byte
	hdrN   int   // header bytes seen of the current frame
	left   int64 // body bytes left of the current frame
	offset int64 // body offset of the current frame
	piece  bool  // the current frame is a PIECE
	pieces int
}

func (l *corruptListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corruptConn{Conn: c, l: l}, nil
}

func (c *corruptConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for i := 0; i < n; {
		if c.left == 0 {
			c.hdr[c.hdrN] = p[i]
			c.hdrN++
			i++
			if c.hdrN == wire.HeaderSize {
				c.hdrN = 0
				c.left = int64(binary.BigEndian.Uint32(c.hdr[:4]))
				c.offset = 0
				c.piece = wire.Type(c.hdr[4]) == wire.TypePiece
				if c.piece {
					c.pieces++
				}
			}
			continue
		}
		step := int(min(c.left, int64(n-i)))
		// One bit, in the piece's bytes (past its 32-byte header), of the nth piece.
		if target := int64(wire.PieceHeaderSize + 100); c.piece && c.pieces == c.l.nth && c.offset <= target && target < c.offset+int64(step) &&
			c.l.done.CompareAndSwap(false, true) {
			p[i+int(target-c.offset)] ^= 0x10
		}
		c.offset += int64(step)
		c.left -= int64(step)
		i += step
	}
	return n, err
}

// TestCorruptedPieceNeverDelivered: a bit flipped in one piece is detected by the integrity tag
// and never delivered: the message arrives exact, rebuilt from other pieces (N > K) or from the
// pieces sent again after the retransmission timeout (N = K); the failure is counted and logged.
func TestCorruptedPieceNeverDelivered(t *testing.T) {
	for _, c := range []struct {
		mode     string
		detected bool // N = K: the bad piece is always among the K used
	}{{"shamir:2/2", true}, {"shamir:3/3", true}, {"erasure:2/2", true}, {"aont:2/2", true}, {"shamir:2/3", false}, {"erasure:3/5", false}, {"aont:2/3", false}} {
		t.Run(c.mode, func(t *testing.T) {
			testutil.CheckLeaks(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// Without TLS, whose record MAC would catch the corruption first: this is the coded
			// modes' own integrity check (TestCorruptTLSRecord covers TLS).
			cl := &corruptListener{Listener: ln, nth: 3}
			logs := &testutil.SyncBuffer{}
			scfg := faultConfig(logs)
			scfg.Insecure = true
			l, err := NewListener(cl, scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cfg := faultConfig(&testutil.SyncBuffer{})
			cfg.Mode = c.mode
			cfg.Insecure = true
			var msgs [][]byte
			g := newMessageGen(3, 1<<20)
			for range 8 {
				msgs = append(msgs, g.next())
			}
			_, s := sendOneWay(t, l, cfg, msgs)
			if !cl.done.Load() {
				t.Fatal("no piece was corrupted")
			}
			failures := s.Stats().IntegrityFailures
			t.Logf("%d integrity failures", failures)
			if c.detected && failures == 0 {
				t.Fatal("the corrupted piece was not detected")
			}
			if failures > 0 {
				expectLog(t, logs, "integrity check failed")
			}
		})
	}
}

// TestCodedModeRules: a peer breaking the coded modes' rules ends its session with a matchable
// error, and other sessions go on.
func TestCodedModeRules(t *testing.T) {
	l, _ := startListener(t, nil)
	healthy := healthySession(t, l)
	open := func(t *testing.T, mode disperse.Mode) (*rawPath, *Session) {
		p := dialRaw(t, l.Addr().String())
		m, k, n := mode.Wire()
		p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, Mode: m, K: k, N: n, ChunkSize: 4096, Window: 1 << 24}))
		if f := p.recv(); f.Type != wire.TypeSessionAccept {
			t.Fatalf("got %s", f.Type)
		}
		return p, acceptOne(t, l)
	}
	shamir := disperse.Mode{Kind: disperse.Shamir, K: 2, N: 3}
	piece := func(idx uint8, length, n int) []byte {
		b := wire.AppendPieceHeader(nil, wire.PieceHeader{ChunkHeader: wire.ChunkHeader{Total: 1}, Index: idx, Length: uint32(length)})
		return append(b, make([]byte, n)...)
	}
	cases := []struct {
		name  string
		mode  disperse.Mode
		typ   wire.Type
		frame []byte
		code  wire.Code
		err   error
	}{
		{"piece in a plain session", disperse.Mode{}, wire.TypePiece, piece(0, 10, shamir.PieceSize(10)), wire.CodeProtocol, ErrProtocol},
		{"chunk in a coded session", shamir, wire.TypeChunk, chunkFrame(0, 0, 1, 10), wire.CodeProtocol, ErrProtocol},
		{"piece for another slot", shamir, wire.TypePiece, piece(1, 10, shamir.PieceSize(10)), wire.CodeProtocol, ErrProtocol},
		{"piece number beyond N", shamir, wire.TypePiece, piece(3, 10, shamir.PieceSize(10)), wire.CodeInvalidChunk, ErrInvalidChunk},
		{"piece of the wrong length", shamir, wire.TypePiece, piece(0, 10, shamir.PieceSize(10)+1), wire.CodeInvalidChunk, ErrInvalidChunk},
		{"chunk longer than the chunk size", shamir, wire.TypePiece, piece(0, 5000, shamir.PieceSize(5000)), wire.CodeInvalidChunk, ErrInvalidChunk},
		{"no room for the piece header", shamir, wire.TypePiece, make([]byte, 20), wire.CodeInvalidChunk, ErrInvalidChunk},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, s := open(t, c.mode)
			p.send(c.typ, c.frame)
			p.expectError(c.code)
			if err := s.Err(); !errors.Is(err, c.err) {
				t.Fatalf("session error %v, want %v", err, c.err)
			}
			healthy()
		})
	}
	t.Run("bad mode", func(t *testing.T) {
		for _, b := range [][3]uint8{{2, 1, 3}, {2, 3, 2}, {9, 0, 0}, {0, 2, 3}, {2, 2, 17}} {
			p := dialRaw(t, l.Addr().String())
			p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, wire.SessionNew{Version: wire.ProtocolVersion, Mode: b[0], K: b[1], N: b[2], ChunkSize: 4096, Window: 1 << 24}))
			p.expectError(wire.CodeBadOptions)
		}
		healthy()
	})
}

// TestModeConfig: Mode is validated, and a coded mode fixes the number of paths.
func TestModeConfig(t *testing.T) {
	for _, bad := range []string{"stripes", "shamir:1/2", "shamir:3"} {
		if err := (&Config{Mode: bad}).Validate(); !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), "Mode") {
			t.Errorf("Mode %q: %v", bad, err)
		}
	}
	c, err := (&Config{Mode: "shamir:2/3"}).withDefaults()
	if err != nil || c.Paths != 3 {
		t.Fatalf("shamir:2/3 defaults: %+v %v", c, err)
	}
	if err := (&Config{Mode: "shamir:2/3", Paths: 4}).Validate(); !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), "needs 3 paths") {
		t.Errorf("shamir:2/3 with 4 paths: %v", err)
	}
	// The default window grows to hold the pieces of two largest messages.
	if c.SessionWindow < 2*(16<<20)*2 {
		t.Errorf("shamir:2/3 window %d", c.SessionWindow)
	}
	if _, err := DialPaths(context.Background(), []PathSpec{{Remote: "127.0.0.1:1"}}, pinned(&Config{Mode: "erasure:2/3"})); !errors.Is(err, ErrBadOptions) {
		t.Errorf("erasure:2/3 over one path: %v", err)
	}
}

// TestCloseWhileWaitingForSlot: Close while Send waits for a slot of shamir:3/3 to come back ends
// gracefully once it does: the message under way either completes or (if none of it was placed)
// is taken back, and the peer reads every message sent, then end of stream.
func TestCloseWhileWaitingForSlot(t *testing.T) {
	f := newFaultSetup(t, 3, modeTweak("shamir:3/3"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sent atomic.Int32
	sendDone := make(chan error, 1)
	go func() {
		msg := make([]byte, 200<<10)
		for {
			if err := f.client.Send(ctx, msg); err != nil {
				sendDone <- err
				return
			}
			sent.Add(1)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	f.proxies[2].Cut()
	expectLog(t, f.clientLogs, "path down")
	time.Sleep(300 * time.Millisecond) // Send is now waiting for slot 2
	f.proxies[2].Restore()
	start := time.Now()
	if err := f.client.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Close took %v", el)
	}
	if err := <-sendDone; !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	n := 0
	for {
		_, err := f.server.Receive(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v (want them all, then EOF)", n, err)
		}
		n++
	}
	if n < int(sent.Load()) {
		t.Fatalf("received %d messages, %d were sent", n, sent.Load())
	}
	if strings.Contains(f.clientLogs.String(), "linger expired") {
		t.Fatalf("Close aborted:\n%s", f.clientLogs.String())
	}
}
