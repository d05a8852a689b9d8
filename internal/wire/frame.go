// Package wire implements Braid's frame layer: the 5-byte frame header, the frame types, the
// limits that bound a frame before any payload is read, and the codecs for each type's payload.
//
// A frame on the wire is
//
//	| length u32 big-endian | type u8 | payload (length bytes) |
//
// where length counts the payload only. The normative description is docs/PROTOCOL.md; tests in
// this package pin the constants below to it.
//
// The wire layer knows nothing of sessions: it turns bytes into frames and back, and rejects
// anything malformed with an error that callers can match with errors.Is.
package wire

import (
	"encoding/binary"
	"fmt"
)

// Header layout. The header is a fixed 5 bytes: a 4-byte big-endian payload length then a 1-byte
// type.
const (
	LengthSize = 4                     // bytes of the length field
	TypeSize   = 1                     // bytes of the type field
	HeaderSize = LengthSize + TypeSize // bytes before the payload
)

// Frame size limits. A Reader is configured with a maximum payload length between 1 and
// MaxPayloadLimit; DefaultMaxPayload is what it uses when given 0.
const (
	DefaultMaxPayload = 16 << 20  // 16 MiB: room for the 4 MiB bench frames and 1 MiB chunks
	MaxPayloadLimit   = 256 << 20 // 256 MiB: the hard upper bound no configuration can exceed
)

// Type identifies what a frame's payload means.
type Type uint8

// Frame types of the base protocol (0x01–0x0F) and of the session layer (0x10–0x3F). Values 0x00
// and 0x40–0xFF are unassigned; receiving one is a protocol error.
const (
	TypeText  Type = 0x01 // UTF-8 text; answered with ACK
	TypePing  Type = 0x02 // latency probe; answered with PONG carrying the same payload
	TypePong  Type = 0x03 // answer to PING
	TypeData  Type = 0x04 // bulk bytes; answered with ACK
	TypeAck   Type = 0x05 // acknowledgement of a TEXT or DATA frame (see Ack)
	TypeError Type = 0x06 // a coded error; the sender closes the connection after it (see ErrorFrame)

	// SessionTypeFirst and SessionTypeLast bound the range reserved for the session layer's
	// control and chunk frames.
	SessionTypeFirst Type = 0x10
	SessionTypeLast  Type = 0x3F
)

var typeNames = map[Type]string{
	TypeText:  "TEXT",
	TypePing:  "PING",
	TypePong:  "PONG",
	TypeData:  "DATA",
	TypeAck:   "ACK",
	TypeError: "ERROR",
}

// String returns the type's protocol name, such as "PING", or "Type(0x7f)" for an unassigned value.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("Type(%#02x)", uint8(t))
}

// Known reports whether t is an assigned frame type.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// register adds a type name; the session-layer files call it from init so that every assigned
// type lives next to its codec.
func register(t Type, name string) {
	if t < SessionTypeFirst || t > SessionTypeLast {
		panic(fmt.Sprintf("wire: session type %#02x outside the reserved range", uint8(t)))
	}
	if _, dup := typeNames[t]; dup {
		panic(fmt.Sprintf("wire: type %#02x registered twice", uint8(t)))
	}
	typeNames[t] = name
}

// Header is the fixed-size prefix of every frame.
type Header struct {
	Length uint32 // payload length in bytes, not counting the header
	Type   Type
}

// PutHeader writes h into the first HeaderSize bytes of b.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b, h.Length)
	b[LengthSize] = byte(h.Type)
}

// ParseHeader decodes the first HeaderSize bytes of b. It does not validate the fields; see
// Reader for the checks applied on receive.
func ParseHeader(b []byte) Header {
	_ = b[HeaderSize-1]
	return Header{Length: binary.BigEndian.Uint32(b), Type: Type(b[LengthSize])}
}

// Frame is one decoded frame. A Frame returned by Reader.ReadFrame shares the Reader's buffer:
// its Payload is valid only until the next call to ReadFrame.
type Frame struct {
	Type    Type
	Payload []byte
}
