package mux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestWireConstantsPinned pins every constant docs/PROTOCOL.md section 7 states: changing one
// here without the document (or the reverse) must fail.
func TestWireConstantsPinned(t *testing.T) {
	ints := []struct {
		name      string
		got, want int
	}{
		{"header size", headerLen, 9},
		{"HELLO body size", helloLen, 9},
		{"Version", Version, 1},
		{"MaxTarget", MaxTarget, 512},
		{"MaxReason", MaxReason, 256},
		{"MaxData", MaxData, 262144},
		{"MinWindow", MinWindow, 16384},
		{"MaxWindowLimit", MaxWindowLimit, 1073741824},
		{"HELLO", int(typeHello), 0x01},
		{"OPEN", int(typeOpen), 0x02},
		{"REPLY", int(typeReply), 0x03},
		{"DATA", int(typeData), 0x04},
		{"WINDOW", int(typeWindow), 0x05},
		{"FIN", int(typeFin), 0x06},
		{"RST", int(typeRst), 0x07},
		{"OK", int(CodeOK), 0},
		{"FAILURE", int(CodeFailure), 1},
		{"NOT_ALLOWED", int(CodeNotAllowed), 2},
		{"REFUSED", int(CodeRefused), 3},
		{"NET_UNREACHABLE", int(CodeNetUnreachable), 4},
		{"HOST_UNREACHABLE", int(CodeHostUnreachable), 5},
		{"NOT_FOUND", int(CodeNotFound), 6},
		{"TIMEOUT", int(CodeTimeout), 7},
		{"TOO_MANY_STREAMS", int(CodeTooManyStreams), 8},
		{"RESET", int(CodeReset), 9},
		{"CANCEL", int(CodeCancel), 10},
		{"NO_TARGET", int(CodeNoTarget), 11},
	}
	for _, c := range ints {
		if c.got != c.want {
			t.Errorf("%s = %d, PROTOCOL.md says %d", c.name, c.got, c.want)
		}
	}
	if helloMagic != "BMUX" {
		t.Errorf("HELLO magic %q, PROTOCOL.md says BMUX", helloMagic)
	}
	def, err := (*Config)(nil).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	defaults := []struct {
		name      string
		got, want int64
	}{
		{"InitialWindow", int64(def.InitialWindow), 64 << 10},
		{"MaxWindow", int64(def.MaxWindow), 16 << 20},
		{"MaxBuffered", def.MaxBuffered, 128 << 20},
		{"MaxStreams", int64(def.MaxStreams), 1024},
		{"MessageSize", int64(def.MessageSize), 256 << 10},
	}
	for _, c := range defaults {
		if c.got != c.want {
			t.Errorf("default %s = %d, PROTOCOL.md says %d", c.name, c.got, c.want)
		}
	}
	// The HELLO a default mux sends, byte for byte as in the document's example.
	want := []byte{0x01, 0, 0, 0, 0, 0, 0, 0, 9, 'B', 'M', 'U', 'X', 1, 0, 1, 0, 0}
	if got := appendHello(nil, 64<<10); !bytes.Equal(got, want) {
		t.Errorf("HELLO % x, want % x", got, want)
	}
}

func frameOf(t frameType, stream uint32, body []byte) []byte {
	return append(appendHeader(nil, t, stream, len(body)), body...)
}

func TestDecode(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	hello := appendHello(nil, MinWindow)
	for _, c := range []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"hello", hello, true},
		{"hello on a stream", frameOf(typeHello, 1, hello[headerLen:]), false},
		{"hello wrong magic", frameOf(typeHello, 0, append([]byte("XMUX"), hello[headerLen+4:]...)), false},
		{"hello version 2", frameOf(typeHello, 0, append([]byte("BMUX\x02"), u32(MinWindow)...)), false},
		{"hello small window", appendHello(nil, MinWindow-1), false},
		{"hello huge window", appendHello(nil, MaxWindowLimit+1), false},
		{"hello short", frameOf(typeHello, 0, hello[headerLen:len(hello)-1]), false},
		{"open", appendOpen(nil, 1, "example.com:443"), true},
		{"open empty target", appendOpen(nil, 1, ""), true},
		{"open on stream 0", appendOpen(nil, 0, "x:1"), false},
		{"open long target", appendOpen(nil, 1, strings.Repeat("a", MaxTarget+1)), false},
		{"open not utf-8", appendOpen(nil, 1, "\xff:1"), false},
		{"reply ok", appendCoded(nil, typeReply, 1, CodeOK, ""), true},
		{"reply ok with reason", frameOf(typeReply, 1, []byte{0, 'x'}), false},
		{"reply refused", appendCoded(nil, typeReply, 1, CodeRefused, "dial tcp: refused"), true},
		{"reply empty", frameOf(typeReply, 1, nil), false},
		{"reply long reason", frameOf(typeReply, 1, append([]byte{1}, strings.Repeat("r", MaxReason+1)...)), false},
		{"reason cut to fit", appendCoded(nil, typeReply, 1, CodeFailure, strings.Repeat("é", MaxReason)), true},
		{"data", frameOf(typeData, 3, []byte("abc")), true},
		{"data empty", frameOf(typeData, 3, nil), false},
		{"data largest", frameOf(typeData, 3, make([]byte, MaxData)), true},
		{"data too large", frameOf(typeData, 3, make([]byte, MaxData+1)), false},
		{"window", appendWindow(nil, 3, 100), true},
		{"window zero", appendWindow(nil, 3, 0), false},
		{"window short", frameOf(typeWindow, 3, []byte{0, 0, 1}), false},
		{"fin", frameOf(typeFin, 3, nil), true},
		{"fin with body", frameOf(typeFin, 3, []byte{0}), false},
		{"rst", appendCoded(nil, typeRst, 3, CodeReset, ""), true},
		{"rst ok", appendCoded(nil, typeRst, 3, CodeOK, ""), false},
		{"unknown type", frameOf(0x08, 3, nil), false},
		{"type 0", frameOf(0x00, 3, nil), false},
		{"truncated header", hello[:headerLen-1], false},
		{"length beyond message", hello[:len(hello)-1], false},
	} {
		f, rest, err := next(c.msg)
		switch {
		case c.ok && (err != nil || len(rest) != 0):
			t.Errorf("%s: %v (rest %d bytes)", c.name, err, len(rest))
		case !c.ok && err == nil:
			t.Errorf("%s: decoded as %v on stream %d", c.name, f.typ, f.stream)
		case !c.ok && !errors.Is(err, ErrProtocol):
			t.Errorf("%s: %v is not ErrProtocol", c.name, err)
		}
	}
	// Several frames in one message.
	msg := appendWindow(appendOpen(nil, 1, "a:1"), 1, 5)
	f1, rest, err := next(msg)
	f2, rest2, err2 := next(rest)
	if err != nil || err2 != nil || f1.typ != typeOpen || f2.typ != typeWindow || f2.increment() != 5 || len(rest2) != 0 {
		t.Errorf("two frames: %v %v %v %v", f1.typ, f2.typ, err, err2)
	}
}

func TestFrameBoundary(t *testing.T) {
	var b []byte
	for range 10 {
		b = appendWindow(b, 1, 1) // 13 bytes each
	}
	for _, c := range []struct{ limit, want int }{{13, 13}, {25, 13}, {26, 26}, {1000, 130}, {1, 13}} {
		if got := frameBoundary(b, c.limit); got != c.want {
			t.Errorf("frameBoundary(limit %d) = %d, want %d", c.limit, got, c.want)
		}
	}
}

// FuzzFrameDecode: the decoder never panics, never reads beyond the message, and accepts only
// frames that encode back to the same bytes.
func FuzzFrameDecode(f *testing.F) {
	f.Add(appendHello(nil, 64<<10))
	f.Add(appendOpen(nil, 1, "example.com:80"))
	f.Add(appendCoded(nil, typeReply, 2, CodeNotAllowed, "no"))
	f.Add(frameOf(typeData, 3, []byte("hello")))
	f.Add(appendWindow(appendOpen(nil, 5, ""), 5, 1<<20))
	f.Add(frameOf(typeFin, 7, nil))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rest := msg
		for len(rest) > 0 {
			fr, r, err := next(rest)
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is not ErrProtocol", err)
				}
				return
			}
			used := len(rest) - len(r)
			if got := frameOf(fr.typ, fr.stream, fr.body); !bytes.Equal(got, rest[:used]) {
				t.Fatalf("re-encoded % x, read % x", got, rest[:used])
			}
			if fr.typ == typeHello && (fr.window() < MinWindow || fr.window() > MaxWindowLimit) {
				t.Fatalf("HELLO window %d accepted", fr.window())
			}
			rest = r
		}
	})
}
