package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// peerHarness drives one Mux as a state machine: the fuzzer plays the peer (messages handed to
// the mux's frame handler directly, on the fuzzing goroutine) and the application (Accept,
// Confirm, Read, Write, Close, … with deadlines in the past, so that nothing blocks). After
// every step it checks the receive budget's invariants.
type peerHarness struct {
	t       *testing.T
	m       *Mux
	out     *memTransport // what the mux sends, drained and ignored
	streams []*Stream     // every stream the application has held
	peerIDs []uint32      // ids the peer has opened or may name
}

// check asserts the mux's budget accounting. A stream settles its share under its own lock, and
// a stream's pump (CopyTo) may do so on its own goroutine while this looks, so the sum over the
// streams is compared with the mux's counts only when those did not move during the look; a
// look that saw them move is made again.
func (h *peerHarness) check() {
	h.t.Helper()
	for try := 0; ; try++ {
		b, g := h.m.budget.Load(), h.m.grown.Load()
		if b < 0 || b > h.m.cfg.MaxBuffered {
			h.t.Fatalf("budget %d outside [0, %d]", b, h.m.cfg.MaxBuffered)
		}
		sum, grown := h.streamShares()
		if b != h.m.budget.Load() || g != h.m.grown.Load() {
			if try < 1000 {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			h.t.Fatalf("the budget kept moving for 1000 looks")
		}
		if sum != b {
			h.t.Fatalf("streams hold %d bytes of budget, the mux counts %d", sum, b)
		}
		if grown != g || g > h.m.cfg.MaxBuffered/2 {
			h.t.Fatalf("streams have grown by %d, the mux counts %d (at most %d)", grown, g, h.m.cfg.MaxBuffered/2)
		}
		return
	}
}

// streamShares returns the budget the streams hold and their windows' growth, every byte of
// budget belonging to a stream: the open ones and those the application holds. It checks each
// stream's own accounting on the way.
func (h *peerHarness) streamShares() (sum, grown int64) {
	seen := map[*Stream]bool{}
	add := func(s *Stream) {
		if seen[s] {
			return
		}
		seen[s] = true
		s.mu.Lock()
		defer s.mu.Unlock()
		sum += s.charged
		grown += s.grown
		if s.buffered < 0 || int64(s.buffered) > s.charged && !s.closed {
			h.t.Fatalf("stream %d: buffered %d, charged %d", s.id, s.buffered, s.charged)
		}
		if s.err == nil && !s.finRecv && !s.closed && s.buffered+s.recvWindow+s.credit != s.window {
			h.t.Fatalf("stream %d: buffered %d + window left %d + credit %d != window %d", s.id, s.buffered, s.recvWindow, s.credit, s.window)
		}
	}
	h.m.mu.Lock()
	open := make([]*Stream, 0, len(h.m.streams))
	for _, s := range h.m.streams {
		open = append(open, s)
	}
	h.m.mu.Unlock()
	for _, s := range open {
		add(s)
	}
	for _, s := range h.streams {
		add(s)
	}
	return sum, grown
}

func (h *peerHarness) pickStream(b byte) *Stream {
	if len(h.streams) == 0 {
		return nil
	}
	return h.streams[int(b)%len(h.streams)]
}

func (h *peerHarness) pickID(b byte) uint32 {
	if len(h.peerIDs) == 0 || b&0x80 != 0 {
		return uint32(b & 0x7f) // sometimes an arbitrary id
	}
	return h.peerIDs[int(b)%len(h.peerIDs)]
}

// FuzzMuxPeer runs arbitrary peer frames and application calls against a server Mux: it must
// never panic or deadlock, report only protocol errors, keep its budget accounting exact, and
// hand every byte of budget back once everything is closed.
func FuzzMuxPeer(f *testing.F) {
	f.Add([]byte{0, 2, 1, 4, 2, 0, 10, 5, 0, 3, 0, 6, 0, 7, 0, 8, 0})
	f.Add([]byte{0, 2, 1, 4, 2, 0, 200, 3, 0, 9, 0, 4, 2, 1, 5, 1, 1, 3, 0, 11, 0, 10, 1})
	f.Add([]byte{12, 0, 13, 0, 4, 3, 1, 8, 5, 0, 1, 5})
	f.Add([]byte{1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzMuxPeer stuck on % x", ops)) })
		defer watchdog.Stop()
		in, out := memPair()
		m, err := Server(in, &Config{InitialWindow: MinWindow, MaxWindow: 4 * MinWindow, MaxBuffered: 8 * MinWindow,
			MaxStreams: 4, MessageSize: 4 << 10, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		h := &peerHarness{t: t, m: m, out: out}
		defer func() {
			for _, s := range h.streams {
				s.Close()
			}
			m.Close()
			in.Abort()
			h.check()
			if b := m.budget.Load(); b != 0 {
				t.Fatalf("budget %d after closing everything", b)
			}
		}()
		past := time.Now().Add(-time.Second)
		done, cancel := context.WithCancel(context.Background())
		cancel()
		first := true
		handle := func(msg []byte) bool {
			_, err := m.handle(msg, first)
			first = false
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrNotMux) {
					t.Fatalf("handle: %v is not a protocol error", err)
				}
				m.fail(err)
				return false
			}
			return true
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			var msg []byte
			switch op % 15 {
			case 0:
				msg = appendHello(nil, MinWindow+uint32(arg)*64)
			case 1: // raw bytes: the rest of the input as one message
				msg = ops[i+1:]
				i = len(ops)
			case 2:
				id := 2*uint32(arg&0x3f) + 1
				h.peerIDs = append(h.peerIDs, id)
				msg = appendOpen(nil, id, "t:1")
			case 3:
				msg = appendHeader(nil, typeData, h.pickID(arg), int(arg)*97%1000+1)
				msg = append(msg, make([]byte, int(arg)*97%1000+1)...)
			case 4:
				msg = appendWindow(nil, h.pickID(arg), uint32(arg)*1000+1)
			case 5:
				msg = appendHeader(nil, typeFin, h.pickID(arg), 0)
			case 6:
				msg = appendCoded(nil, typeRst, h.pickID(arg), CodeReset, "r")
			case 7:
				msg = appendCoded(nil, typeReply, h.pickID(arg), Code(arg%3), "")
			case 8: // the application accepts, if a stream is waiting
				if s, err := m.Accept(done); err == nil {
					h.streams = append(h.streams, s)
				}
			case 9:
				if s := h.pickStream(arg); s != nil {
					if arg&1 == 0 {
						s.Confirm()
					} else {
						s.Refuse(Code(arg%12), "no")
					}
				}
			case 10:
				if s := h.pickStream(arg); s != nil {
					s.SetReadDeadline(past)
					if arg&1 == 0 {
						s.Read(make([]byte, int(arg)*31))
					} else {
						s.WriteTo(io.Discard)
					}
				}
			case 11:
				if s := h.pickStream(arg); s != nil {
					s.SetWriteDeadline(past)
					s.Write(make([]byte, int(arg)*131))
				}
			case 12:
				if s := h.pickStream(arg); s != nil {
					switch arg % 3 {
					case 0:
						s.CloseWrite()
					case 1:
						s.Close()
					case 2:
						s.Reset(CodeCancel, "app")
					}
				}
			case 14: // the application copies a stream out
				if s := h.pickStream(arg); s != nil {
					s.mu.Lock()
					started := s.out != nil
					s.mu.Unlock()
					if !started {
						s.CopyTo(io.Discard, func(int64, error) {})
					}
				}
			case 13: // the application opens a stream (the peer may then REPLY to it)
				if s, err := m.newLocal("o:1"); err == nil {
					if m.t.Send(context.Background(), appendOpen(nil, s.id, "o:1")) == nil {
						h.streams = append(h.streams, s)
						h.peerIDs = append(h.peerIDs, s.id)
					}
				}
			}
			if msg != nil && !handle(msg) {
				h.check()
				return
			}
			h.check()
		}
	})
}
