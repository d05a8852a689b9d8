package frame

import "github.com/braidnet/braid/internal/wire"

// Type is the type byte of a frame (see docs/PROTOCOL.md, "Frame types").
type Type uint8

// Frame types of the base protocol. The session layer's types (0x10–0x3F) are described in
// docs/PROTOCOL.md; a Server answers them with an ERROR frame.
const (
	TypeText  = Type(wire.TypeText)  // UTF-8 text; answered with ACK
	TypePing  = Type(wire.TypePing)  // latency probe; answered with PONG carrying the same payload
	TypePong  = Type(wire.TypePong)  // answer to PING
	TypeData  = Type(wire.TypeData)  // bulk bytes; answered with ACK
	TypeAck   = Type(wire.TypeAck)   // acknowledgement of a TEXT or DATA frame (see Ack)
	TypeError = Type(wire.TypeError) // a coded error; the sender closes the connection after it
)

// String returns the type's protocol name, such as "PING".
func (t Type) String() string { return wire.Type(t).String() }

// Ack is the server's acknowledgement of a TEXT or DATA frame: the acknowledged type, the frame's
// sequence number on the connection (TEXT and DATA frames counted from 1) and the payload bytes
// the server received.
type Ack struct {
	Acked Type
	Seq   uint64
	Bytes uint64
}

func ackFromWire(a wire.Ack) Ack { return Ack{Acked: Type(a.Acked), Seq: a.Seq, Bytes: a.Bytes} }
