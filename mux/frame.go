package mux

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// A mux frame, several of which may share one session message:
//
//	| type u8 | stream u32 BE | length u32 BE | body (length bytes) |
//
// docs/PROTOCOL.md section 7 is the normative description; the constants below are pinned by
// TestWireConstantsPinned.
const (
	headerLen = 9

	// MaxTarget is the longest target ("host:port") an OPEN may carry, bytes.
	MaxTarget = 512
	// MaxReason is the longest reason text a REPLY or RST may carry, bytes.
	MaxReason = 256
	// MaxData is the largest DATA body, bytes.
	MaxData = 256 << 10

	// helloMagic opens the HELLO body, so that a server can tell a mux session from any other use
	// of a session by its first message.
	helloMagic = "BMUX"
	// Version is the mux protocol version sent in HELLO.
	Version  = 1
	helloLen = len(helloMagic) + 1 + 4
)

// frameType is a mux frame's type byte.
type frameType uint8

const (
	typeHello  frameType = 0x01 // stream 0: magic, version, initial per-stream window
	typeOpen   frameType = 0x02 // open a stream to a target
	typeReply  frameType = 0x03 // answer to OPEN: code, reason
	typeData   frameType = 0x04 // stream bytes
	typeWindow frameType = 0x05 // more receive window for a stream: increment u32
	typeFin    frameType = 0x06 // the sender will send no more data on the stream
	typeRst    frameType = 0x07 // the stream is aborted in both directions: code, reason
)

func (t frameType) String() string {
	switch t {
	case typeHello:
		return "HELLO"
	case typeOpen:
		return "OPEN"
	case typeReply:
		return "REPLY"
	case typeData:
		return "DATA"
	case typeWindow:
		return "WINDOW"
	case typeFin:
		return "FIN"
	case typeRst:
		return "RST"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// frame is one decoded frame; body aliases the message it came from.
type frame struct {
	typ    frameType
	stream uint32
	body   []byte
}

// appendHeader appends a frame header announcing a body of n bytes.
func appendHeader(b []byte, t frameType, stream uint32, n int) []byte {
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint32(b, stream)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// frameBodyLen returns the body length announced by the frame header at the start of b.
func frameBodyLen(b []byte) uint32 { return binary.BigEndian.Uint32(b[5:9]) }

func putHeader(b []byte, t frameType, stream uint32, n int) {
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:5], stream)
	binary.BigEndian.PutUint32(b[5:9], uint32(n))
}

func appendHello(b []byte, window uint32) []byte {
	b = appendHeader(b, typeHello, 0, helloLen)
	b = append(b, helloMagic...)
	b = append(b, Version)
	return binary.BigEndian.AppendUint32(b, window)
}

func appendOpen(b []byte, stream uint32, target string) []byte {
	b = appendHeader(b, typeOpen, stream, len(target))
	return append(b, target...)
}

// appendCoded appends a REPLY or RST: code u8, then reason text.
func appendCoded(b []byte, t frameType, stream uint32, code Code, reason string) []byte {
	if len(reason) > MaxReason {
		reason = reason[:MaxReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b = appendHeader(b, t, stream, 1+len(reason))
	b = append(b, byte(code))
	return append(b, reason...)
}

func appendWindow(b []byte, stream uint32, inc uint32) []byte {
	b = appendHeader(b, typeWindow, stream, 4)
	return binary.BigEndian.AppendUint32(b, inc)
}

// next decodes the frame at the start of msg and returns it with the rest of msg. It checks
// everything that can be checked without stream state: the length against the message, each
// type's body size and form.
func next(msg []byte) (frame, []byte, error) {
	if len(msg) < headerLen {
		return frame{}, nil, protoErr("truncated frame header (%d bytes)", len(msg))
	}
	f := frame{typ: frameType(msg[0]), stream: binary.BigEndian.Uint32(msg[1:5])}
	n := binary.BigEndian.Uint32(msg[5:9])
	if uint64(n) > uint64(len(msg)-headerLen) {
		return frame{}, nil, protoErr("%v frame announces %d bytes, message holds %d", f.typ, n, len(msg)-headerLen)
	}
	f.body = msg[headerLen : headerLen+int(n)]
	rest := msg[headerLen+int(n):]
	if (f.typ == typeHello) != (f.stream == 0) {
		return frame{}, nil, protoErr("%v frame on stream %d", f.typ, f.stream)
	}
	switch f.typ {
	case typeHello:
		if len(f.body) != helloLen || string(f.body[:4]) != helloMagic {
			return frame{}, nil, protoErr("not a mux HELLO")
		}
		if f.body[4] != Version {
			return frame{}, nil, protoErr("mux version %d, want %d", f.body[4], Version)
		}
		if w := binary.BigEndian.Uint32(f.body[5:]); w < MinWindow || w > MaxWindowLimit {
			return frame{}, nil, protoErr("HELLO window %d outside [%d, %d]", w, MinWindow, MaxWindowLimit)
		}
	case typeOpen:
		if len(f.body) > MaxTarget || !utf8.Valid(f.body) {
			return frame{}, nil, protoErr("OPEN target of %d bytes is not valid (at most %d bytes of UTF-8)", len(f.body), MaxTarget)
		}
	case typeReply, typeRst:
		if len(f.body) < 1 || len(f.body) > 1+MaxReason || !utf8.Valid(f.body[1:]) {
			return frame{}, nil, protoErr("%v body of %d bytes is not a code and a reason", f.typ, len(f.body))
		}
		if f.typ == typeReply && Code(f.body[0]) == CodeOK && len(f.body) != 1 {
			return frame{}, nil, protoErr("successful REPLY with a reason")
		}
		if f.typ == typeRst && Code(f.body[0]) == CodeOK {
			return frame{}, nil, protoErr("RST with code OK")
		}
	case typeData:
		if len(f.body) == 0 || len(f.body) > MaxData {
			return frame{}, nil, protoErr("DATA of %d bytes (1 to %d)", len(f.body), MaxData)
		}
	case typeWindow:
		if len(f.body) != 4 || binary.BigEndian.Uint32(f.body) == 0 {
			return frame{}, nil, protoErr("WINDOW body is not a nonzero u32")
		}
	case typeFin:
		if len(f.body) != 0 {
			return frame{}, nil, protoErr("FIN with a body")
		}
	default:
		return frame{}, nil, protoErr("unknown frame type 0x%02x", uint8(f.typ))
	}
	return f, rest, nil
}

func (f frame) code() Code        { return Code(f.body[0]) }
func (f frame) reason() string    { return string(f.body[1:]) }
func (f frame) increment() uint32 { return binary.BigEndian.Uint32(f.body) }
func (f frame) window() uint32    { return binary.BigEndian.Uint32(f.body[5:]) }
