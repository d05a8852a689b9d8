package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// AckSize is the fixed payload length of an ACK frame.
const AckSize = 17

// Ack is the payload of an ACK frame: which frame it acknowledges and how many payload bytes were
// received. Seq numbers the TEXT and DATA frames of one connection from 1 in the order received,
// so a client can match each ACK to what it sent, and echo it in its own output.
//
//	| acked type u8 | seq u64 | bytes u64 |
type Ack struct {
	Acked Type
	Seq   uint64
	Bytes uint64
}

// AppendAck appends the encoding of a to b.
func AppendAck(b []byte, a Ack) []byte {
	b = append(b, byte(a.Acked))
	b = binary.BigEndian.AppendUint64(b, a.Seq)
	return binary.BigEndian.AppendUint64(b, a.Bytes)
}

// ParseAck decodes an ACK payload. The length must be exactly AckSize and the acknowledged type
// TEXT or DATA.
func ParseAck(p []byte) (Ack, error) {
	if len(p) != AckSize {
		return Ack{}, malformed(TypeAck, "length %d, want %d", len(p), AckSize)
	}
	a := Ack{Acked: Type(p[0]), Seq: binary.BigEndian.Uint64(p[1:]), Bytes: binary.BigEndian.Uint64(p[9:])}
	if a.Acked != TypeText && a.Acked != TypeData {
		return Ack{}, malformed(TypeAck, "acknowledges %s", a.Acked)
	}
	return a, nil
}

// MaxPingPayload bounds the payload of PING and PONG frames, which carry only a probe token.
const MaxPingPayload = 64

// Code is the reason carried by an ERROR frame. Codes 0x0001–0x00FF belong to the frame layer,
// 0x0100–0x01FF to the session layer; the rest are unassigned.
type Code uint16

// Error codes.
const (
	CodeProtocol      Code = 0x0001 // malformed or unexpected frame
	CodeFrameTooLarge Code = 0x0002 // declared length above the receiver's maximum
	CodeUnknownType   Code = 0x0003 // unassigned frame type
	CodeTimeout       Code = 0x0004 // idle or read deadline passed
	CodeShuttingDown  Code = 0x0005 // the peer is shutting down
	CodeInternal      Code = 0x0006 // the peer failed in a way that is not the sender's fault

	CodeUnknownSession  Code = 0x0101 // SESSION_ATTACH or chunk for a session that does not exist
	CodeBadToken        Code = 0x0102 // SESSION_ATTACH whose proof does not verify
	CodeTooManyPaths    Code = 0x0103 // the session already has its maximum number of paths
	CodeTooManySessions Code = 0x0104 // the server already has its maximum number of sessions
	CodeInvalidChunk    Code = 0x0105 // a CHUNK that breaks the chunking rules
	CodeOverBudget      Code = 0x0106 // the peer exceeded the session's memory budget
	CodeBadOptions      Code = 0x0107 // SESSION_NEW options outside the receiver's limits
	CodeSessionClosed   Code = 0x0108 // the session was closed or aborted
	CodeUnauthorized    Code = 0x0109 // SESSION_NEW from a client the server requires to authenticate
)

var codeNames = map[Code]string{
	CodeProtocol:        "PROTOCOL",
	CodeFrameTooLarge:   "FRAME_TOO_LARGE",
	CodeUnknownType:     "UNKNOWN_TYPE",
	CodeTimeout:         "TIMEOUT",
	CodeShuttingDown:    "SHUTTING_DOWN",
	CodeInternal:        "INTERNAL",
	CodeUnknownSession:  "UNKNOWN_SESSION",
	CodeBadToken:        "BAD_TOKEN",
	CodeTooManyPaths:    "TOO_MANY_PATHS",
	CodeTooManySessions: "TOO_MANY_SESSIONS",
	CodeInvalidChunk:    "INVALID_CHUNK",
	CodeOverBudget:      "OVER_BUDGET",
	CodeBadOptions:      "BAD_OPTIONS",
	CodeSessionClosed:   "SESSION_CLOSED",
	CodeUnauthorized:    "UNAUTHORIZED",
}

// String returns the code's protocol name, such as "FRAME_TOO_LARGE".
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("Code(%#04x)", uint16(c))
}

// MaxErrorMessage bounds the message text of an ERROR frame, in bytes.
const MaxErrorMessage = 1024

// ErrorFrame is the payload of an ERROR frame: a code and a human-readable reason.
//
//	| code u16 | message (UTF-8, at most MaxErrorMessage bytes) |
type ErrorFrame struct {
	Code    Code
	Message string
}

// AppendError appends the encoding of e to b, truncating the message to MaxErrorMessage bytes
// on a rune boundary.
func AppendError(b []byte, e ErrorFrame) []byte {
	msg := e.Message
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
		for len(msg) > 0 && !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(e.Code))
	return append(b, msg...)
}

// ParseError decodes an ERROR payload.
func ParseError(p []byte) (ErrorFrame, error) {
	if len(p) < 2 || len(p) > 2+MaxErrorMessage {
		return ErrorFrame{}, malformed(TypeError, "length %d, want 2..%d", len(p), 2+MaxErrorMessage)
	}
	msg := p[2:]
	if !utf8.Valid(msg) {
		return ErrorFrame{}, malformed(TypeError, "message is not UTF-8")
	}
	return ErrorFrame{Code: Code(binary.BigEndian.Uint16(p)), Message: string(msg)}, nil
}
