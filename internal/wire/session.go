package wire

import (
	"encoding/binary"
)

// Session-layer frame types (docs/PROTOCOL.md, section 5).
const (
	TypeSessionNew    Type = 0x10 // client → server: open a session (SessionNew)
	TypeSessionAccept Type = 0x11 // server → client: the session's id, token and terms (SessionAccept)
	TypeSessionAttach Type = 0x12 // client → server: add this connection to a session (SessionAttach)
	TypeAttachOK      Type = 0x13 // server → client: the path's index (AttachOK)
	TypeChunk         Type = 0x20 // either: one chunk of an item (ChunkHeader + payload)
	TypeCredit        Type = 0x21 // either: flow-control credit (Credit)
	TypeClose         Type = 0x22 // either: no items after this count (Close)
	TypeChunkAck      Type = 0x23 // either: which chunks have arrived (ChunkAck)
	TypePiece         Type = 0x24 // either: one piece of a coded chunk (PieceHeader + piece)
)

func init() {
	register(TypeSessionNew, "SESSION_NEW")
	register(TypeSessionAccept, "SESSION_ACCEPT")
	register(TypeSessionAttach, "SESSION_ATTACH")
	register(TypeAttachOK, "ATTACH_OK")
	register(TypeChunk, "CHUNK")
	register(TypeCredit, "CREDIT")
	register(TypeClose, "CLOSE")
	register(TypeChunkAck, "CHUNK_ACK")
	register(TypePiece, "PIECE")
}

// Sizes of the session-layer payloads.
const (
	ProtocolVersion   = 2                    // the session-layer version carried in SESSION_NEW
	SessionIDSize     = 16                   // bytes of a session id
	TokenSize         = 16                   // bytes of a session token
	ProofSize         = 32                   // bytes of an attach proof
	MaxAuthToken      = 64                   // most bytes of the client token in SESSION_NEW
	SessionNewSize    = 17                   // without the client token
	SessionAcceptSize = 2*SessionIDSize + 16 // id, token, path index, max paths, chunk size, window
	SessionAttachSize = SessionIDSize + 2 + ProofSize
	AttachOKSize      = 2
	ChunkHeaderSize   = 24
	PieceHeaderSize   = ChunkHeaderSize + 8
	CreditSize        = 8
	CloseSize         = 8
)

// Dispersal modes carried in SessionNew.Mode.
const (
	ModePlain     uint8 = 0 // striping: each chunk on one path
	ModeRedundant uint8 = 1 // each chunk on every live path; the first copy to arrive is used
	ModeShamir    uint8 = 2 // each chunk becomes N Shamir shares (PIECE frames), any K recover it
	ModeErasure   uint8 = 3 // each chunk becomes N Reed–Solomon shards (PIECE frames), any K recover it
	ModeAONT      uint8 = 4 // each chunk is AONT-RS packaged, then cut into N Reed–Solomon shards (PIECE frames), any K recover it
)

// SessionID identifies a session; the server draws it from crypto/rand.
type SessionID [SessionIDSize]byte

// Token is the session token the server draws for each session. Without TLS it keys the attach
// proof; with TLS the first path's exported session key does.
type Token [TokenSize]byte

// Proof is what a connection presents to attach to a session (see "Attaching" in
// docs/PROTOCOL.md).
type Proof [ProofSize]byte

// SessionNew is the payload of SESSION_NEW: the terms the client asks for.
//
//	| version u8 | mode u8 | k u8 | n u8 | chunk size u32 | window u64 | token len u8 | token |
//
// K and N are the coded modes' threshold and piece count; they are zero for the others. The
// token (at most MaxAuthToken bytes, none if its length is 0) authenticates the client to a
// server that requires it.
type SessionNew struct {
	Version   uint8
	Mode      uint8
	K, N      uint8
	ChunkSize uint32 // bytes per chunk the client proposes
	Window    uint64 // bytes the client is prepared to buffer for the server (its receive budget)
	Token     []byte // the client's pre-shared token, or nil
}

// AppendSessionNew appends the encoding of m to b. A token longer than MaxAuthToken is cut to it.
func AppendSessionNew(b []byte, m SessionNew) []byte {
	b = append(b, m.Version, m.Mode, m.K, m.N)
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = binary.BigEndian.AppendUint64(b, m.Window)
	tok := m.Token[:min(len(m.Token), MaxAuthToken)]
	b = append(b, uint8(len(tok)))
	return append(b, tok...)
}

// ParseSessionNew decodes a SESSION_NEW payload. Whether the mode and its K and N are acceptable
// is the server's to judge. The token aliases p.
func ParseSessionNew(p []byte) (SessionNew, error) {
	if len(p) < SessionNewSize {
		return SessionNew{}, malformed(TypeSessionNew, "length %d, want at least %d", len(p), SessionNewSize)
	}
	n := int(p[16])
	if n > MaxAuthToken || len(p) != SessionNewSize+n {
		return SessionNew{}, malformed(TypeSessionNew, "length %d with a %d-byte token (at most %d)", len(p), n, MaxAuthToken)
	}
	m := SessionNew{Version: p[0], Mode: p[1], K: p[2], N: p[3], ChunkSize: binary.BigEndian.Uint32(p[4:]), Window: binary.BigEndian.Uint64(p[8:])}
	if n > 0 {
		m.Token = p[SessionNewSize:]
	}
	return m, nil
}

// SessionAccept is the payload of SESSION_ACCEPT: the session's identity and the terms in force.
//
//	| session id [16] | token [16] | path index u16 | max paths u16 | chunk size u32 | window u64 |
type SessionAccept struct {
	ID        SessionID
	Token     Token
	PathIndex uint16 // index of the connection that carried SESSION_NEW (always 0)
	MaxPaths  uint16 // paths the server allows in this session
	ChunkSize uint32 // bytes per chunk, for both directions
	Window    uint64 // bytes the server is prepared to buffer for the client
}

// AppendSessionAccept appends the encoding of a to b.
func AppendSessionAccept(b []byte, a SessionAccept) []byte {
	b = append(b, a.ID[:]...)
	b = append(b, a.Token[:]...)
	b = binary.BigEndian.AppendUint16(b, a.PathIndex)
	b = binary.BigEndian.AppendUint16(b, a.MaxPaths)
	b = binary.BigEndian.AppendUint32(b, a.ChunkSize)
	return binary.BigEndian.AppendUint64(b, a.Window)
}

// ParseSessionAccept decodes a SESSION_ACCEPT payload.
func ParseSessionAccept(p []byte) (SessionAccept, error) {
	if len(p) != SessionAcceptSize {
		return SessionAccept{}, malformed(TypeSessionAccept, "length %d, want %d", len(p), SessionAcceptSize)
	}
	var a SessionAccept
	copy(a.ID[:], p)
	copy(a.Token[:], p[16:])
	a.PathIndex = binary.BigEndian.Uint16(p[32:])
	a.MaxPaths = binary.BigEndian.Uint16(p[34:])
	a.ChunkSize = binary.BigEndian.Uint32(p[36:])
	a.Window = binary.BigEndian.Uint64(p[40:])
	return a, nil
}

// SessionAttach is the payload of SESSION_ATTACH.
//
//	| session id [16] | slot u16 | proof [32] |
//
// Slot is the path's place in the client's list of paths (the first, which sent SESSION_NEW, is
// slot 0). A re-dialed path attaches with the slot of the one it replaces; coded modes send piece
// j of every chunk only on the path in slot j. Proof shows the right to join: an HMAC of id and
// slot keyed by the session key, and, with TLS, bound to this connection.
type SessionAttach struct {
	ID    SessionID
	Slot  uint16
	Proof Proof
}

// AppendSessionAttach appends the encoding of a to b.
func AppendSessionAttach(b []byte, a SessionAttach) []byte {
	b = append(b, a.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, a.Slot)
	return append(b, a.Proof[:]...)
}

// ParseSessionAttach decodes a SESSION_ATTACH payload.
func ParseSessionAttach(p []byte) (SessionAttach, error) {
	if len(p) != SessionAttachSize {
		return SessionAttach{}, malformed(TypeSessionAttach, "length %d, want %d", len(p), SessionAttachSize)
	}
	var a SessionAttach
	copy(a.ID[:], p)
	a.Slot = binary.BigEndian.Uint16(p[16:])
	copy(a.Proof[:], p[18:])
	return a, nil
}

// AppendAttachOK appends an ATTACH_OK payload: | path index u16 |.
func AppendAttachOK(b []byte, index uint16) []byte { return binary.BigEndian.AppendUint16(b, index) }

// ParseAttachOK decodes an ATTACH_OK payload.
func ParseAttachOK(p []byte) (uint16, error) {
	if len(p) != AttachOKSize {
		return 0, malformed(TypeAttachOK, "length %d, want %d", len(p), AttachOKSize)
	}
	return binary.BigEndian.Uint16(p), nil
}

// ChunkHeader is the fixed prefix of a CHUNK payload; the chunk's bytes follow it.
//
//	| item id u64 | chunk id u32 | total chunks u32 | seq u64 | payload ... |
//
// Seq numbers the chunks of one direction of a session from 0 in the order they are first sent;
// a retransmitted chunk keeps its seq, so that CHUNK_ACK can name chunks compactly.
type ChunkHeader struct {
	Item  uint64
	Chunk uint32
	Total uint32
	Seq   uint64
}

// AppendChunkHeader appends the encoding of h to b.
func AppendChunkHeader(b []byte, h ChunkHeader) []byte {
	b = binary.BigEndian.AppendUint64(b, h.Item)
	b = binary.BigEndian.AppendUint32(b, h.Chunk)
	b = binary.BigEndian.AppendUint32(b, h.Total)
	return binary.BigEndian.AppendUint64(b, h.Seq)
}

// ParseChunkHeader decodes the first ChunkHeaderSize bytes of a CHUNK payload. It checks only the
// encoding; the chunking rules are the session's to enforce, since they depend on its terms.
func ParseChunkHeader(p []byte) (ChunkHeader, error) {
	if len(p) < ChunkHeaderSize {
		return ChunkHeader{}, malformed(TypeChunk, "length %d, want at least %d", len(p), ChunkHeaderSize)
	}
	return ChunkHeader{Item: binary.BigEndian.Uint64(p), Chunk: binary.BigEndian.Uint32(p[8:]),
		Total: binary.BigEndian.Uint32(p[12:]), Seq: binary.BigEndian.Uint64(p[16:])}, nil
}

// PieceHeader is the fixed prefix of a PIECE payload; the piece's bytes follow it. A piece is one
// of the N pieces a coded mode makes of a chunk (a Shamir share or a Reed–Solomon shard, each with
// its part of the chunk's integrity key; or, in aont, a Reed–Solomon shard of the chunk's
// all-or-nothing package).
//
//	| item id u64 | chunk id u32 | total chunks u32 | seq u64 | index u8 | reserved [3] | length u32 | piece ... |
//
// The first four fields are the chunk's, as in CHUNK. Index is the piece's number, 0..N−1, which
// is also the slot of the only path allowed to carry it; Length is the chunk's payload length,
// from which the piece's length follows.
type PieceHeader struct {
	ChunkHeader
	Index  uint8
	Length uint32
}

// AppendPieceHeader appends the encoding of h to b.
func AppendPieceHeader(b []byte, h PieceHeader) []byte {
	b = AppendChunkHeader(b, h.ChunkHeader)
	b = append(b, h.Index, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// ParsePieceHeader decodes the first PieceHeaderSize bytes of a PIECE payload. Reserved bytes must
// be zero; the session checks the rest against its terms.
func ParsePieceHeader(p []byte) (PieceHeader, error) {
	if len(p) < PieceHeaderSize {
		return PieceHeader{}, malformed(TypePiece, "length %d, want at least %d", len(p), PieceHeaderSize)
	}
	if p[25] != 0 || p[26] != 0 || p[27] != 0 {
		return PieceHeader{}, malformed(TypePiece, "reserved bytes not zero")
	}
	ch, _ := ParseChunkHeader(p)
	return PieceHeader{ChunkHeader: ch, Index: p[24], Length: binary.BigEndian.Uint32(p[28:])}, nil
}

// MaxAckRanges bounds the ranges one CHUNK_ACK carries; later ranges wait for a later ACK.
const MaxAckRanges = 64

// MaxChunkAckSize is the largest CHUNK_ACK payload: the cumulative point, the count and
// MaxAckRanges ranges.
const MaxChunkAckSize = 10 + 16*MaxAckRanges

// MaxPathControlPayload returns the largest payload a control frame of type t may carry on a
// session path once the session is open, and false for a type that has no place there (data
// frames and handshake frames included). A reader checks a header against it before reading
// the payload, so that a peer cannot make it buffer MaxFrameSize for a CREDIT.
func MaxPathControlPayload(t Type) (int, bool) {
	switch t {
	case TypePing, TypePong:
		return MaxPingPayload, true
	case TypeChunkAck:
		return MaxChunkAckSize, true
	case TypeCredit:
		return CreditSize, true
	case TypeClose:
		return CloseSize, true
	case TypeError:
		return 2 + MaxErrorMessage, true
	}
	return 0, false
}

// SeqRange is the chunk sequence numbers From up to, not including, To.
type SeqRange struct{ From, To uint64 }

// ChunkAck is the payload of CHUNK_ACK: every chunk with seq below Cum has arrived, and so has
// every chunk in Ranges (ascending, disjoint, above Cum, not adjacent to it or to each other).
//
//	| cum u64 | count u16 | count × (from u64 | to u64) |
type ChunkAck struct {
	Cum    uint64
	Ranges []SeqRange
}

// AppendChunkAck appends the encoding of a to b.
func AppendChunkAck(b []byte, a ChunkAck) []byte {
	b = binary.BigEndian.AppendUint64(b, a.Cum)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Ranges)))
	for _, r := range a.Ranges {
		b = binary.BigEndian.AppendUint64(b, r.From)
		b = binary.BigEndian.AppendUint64(b, r.To)
	}
	return b
}

// ParseChunkAck decodes a CHUNK_ACK payload into a, reusing a.Ranges' storage. The ranges must be
// non-empty, ascending, disjoint and non-adjacent, all above Cum, and at most MaxAckRanges.
func ParseChunkAck(p []byte, a *ChunkAck) error {
	if len(p) < 10 {
		return malformed(TypeChunkAck, "length %d, want at least 10", len(p))
	}
	a.Cum = binary.BigEndian.Uint64(p)
	n := int(binary.BigEndian.Uint16(p[8:]))
	if n > MaxAckRanges || len(p) != 10+16*n {
		return malformed(TypeChunkAck, "%d ranges in %d bytes", n, len(p))
	}
	a.Ranges = a.Ranges[:0]
	prev := a.Cum
	for i := range n {
		r := SeqRange{From: binary.BigEndian.Uint64(p[10+16*i:]), To: binary.BigEndian.Uint64(p[18+16*i:])}
		if r.From <= prev || r.To <= r.From {
			return malformed(TypeChunkAck, "range %d [%d, %d) not above %d", i, r.From, r.To, prev)
		}
		a.Ranges = append(a.Ranges, r)
		prev = r.To
	}
	return nil
}

// AppendUint64 appends the 8-byte payload of CREDIT and CLOSE frames.
func AppendUint64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// ParseUint64 decodes the payload of a CREDIT or CLOSE frame of type t.
func ParseUint64(t Type, p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, malformed(t, "length %d, want 8", len(p))
	}
	return binary.BigEndian.Uint64(p), nil
}
