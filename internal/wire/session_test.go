package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSessionConstantsPinned ties the session-layer codecs to docs/PROTOCOL.md, section 5:
// changing any value here is a wire change.
func TestSessionConstantsPinned(t *testing.T) {
	pins := []struct {
		name      string
		got, want int
	}{
		{"SESSION_NEW", int(TypeSessionNew), 0x10},
		{"SESSION_ACCEPT", int(TypeSessionAccept), 0x11},
		{"SESSION_ATTACH", int(TypeSessionAttach), 0x12},
		{"ATTACH_OK", int(TypeAttachOK), 0x13},
		{"CHUNK", int(TypeChunk), 0x20},
		{"CREDIT", int(TypeCredit), 0x21},
		{"CLOSE", int(TypeClose), 0x22},
		{"ProtocolVersion", ProtocolVersion, 2},
		{"SessionIDSize", SessionIDSize, 16},
		{"TokenSize", TokenSize, 16},
		{"SessionNewSize", SessionNewSize, 17},
		{"ProofSize", ProofSize, 32},
		{"MaxAuthToken", MaxAuthToken, 64},
		{"SessionAcceptSize", SessionAcceptSize, 48},
		{"SessionAttachSize", SessionAttachSize, 50},
		{"TypePiece", int(TypePiece), 0x24},
		{"PieceHeaderSize", PieceHeaderSize, 32},
		{"AttachOKSize", AttachOKSize, 2},
		{"ChunkHeaderSize", ChunkHeaderSize, 24},
		{"TypeChunkAck", int(TypeChunkAck), 0x23},
		{"MaxAckRanges", MaxAckRanges, 64},
		{"CreditSize", CreditSize, 8},
		{"CloseSize", CloseSize, 8},
		{"ModePlain", int(ModePlain), 0},
		{"ModeRedundant", int(ModeRedundant), 1},
		{"ModeShamir", int(ModeShamir), 2},
		{"ModeErasure", int(ModeErasure), 3},
		{"ModeAONT", int(ModeAONT), 4},
		{"len(SessionID)", len(SessionID{}), 16},
		{"len(Token)", len(Token{}), 16},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %#x, docs/PROTOCOL.md says %#x", p.name, p.got, p.want)
		}
	}
	for typ, want := range map[Type]string{
		TypeSessionNew: "SESSION_NEW", TypeSessionAccept: "SESSION_ACCEPT", TypeSessionAttach: "SESSION_ATTACH",
		TypeAttachOK: "ATTACH_OK", TypeChunk: "CHUNK", TypeCredit: "CREDIT", TypeClose: "CLOSE",
		TypeChunkAck: "CHUNK_ACK", TypePiece: "PIECE",
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%#02x).String() = %q, want %q", uint8(typ), got, want)
		}
		if !typ.Known() {
			t.Errorf("%s not Known", want)
		}
		if typ < SessionTypeFirst || typ > SessionTypeLast {
			t.Errorf("%s = %#02x outside the session range", want, uint8(typ))
		}
	}
	for _, typ := range []Type{0x14, 0x1f, 0x25, 0x3f} {
		if typ.Known() {
			t.Errorf("unassigned session-range type %#02x is Known", uint8(typ))
		}
	}
}

func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestSessionLayouts pins the exact bytes of every encoding.
func TestSessionLayouts(t *testing.T) {
	var id SessionID
	var tok Token
	copy(id[:], seq(0xa0, 16))
	copy(tok[:], seq(0xc0, 16))
	var proof Proof
	copy(proof[:], seq(0xd0, 32))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"SessionNew",
			AppendSessionNew(nil, SessionNew{Version: 1, Mode: ModePlain, ChunkSize: 0x01020304, Window: 0x1112131415161718}),
			[]byte{1, 0, 0, 0, 1, 2, 3, 4, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0}},
		{"SessionNew mode",
			AppendSessionNew(nil, SessionNew{Version: 0xfe, Mode: 0x7f, K: 2, N: 3}),
			[]byte{0xfe, 0x7f, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"SessionNew token",
			AppendSessionNew(nil, SessionNew{Version: 2, Token: []byte("tok")}),
			[]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 't', 'o', 'k'}},
		{"SessionAccept",
			AppendSessionAccept(nil, SessionAccept{ID: id, Token: tok, PathIndex: 0x0102, MaxPaths: 0x0304, ChunkSize: 0x05060708, Window: 0x090a0b0c0d0e0f10}),
			cat(seq(0xa0, 16), seq(0xc0, 16), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x10})},
		{"SessionAttach",
			AppendSessionAttach(nil, SessionAttach{ID: id, Slot: 0x0102, Proof: proof}),
			cat(seq(0xa0, 16), []byte{1, 2}, seq(0xd0, 32))},
		{"PieceHeader",
			AppendPieceHeader(nil, PieceHeader{ChunkHeader: ChunkHeader{Item: 0x0102030405060708, Chunk: 0x090a0b0c, Total: 0x0d0e0f10, Seq: 0x1112131415161718}, Index: 0x19, Length: 0x1d1e1f20}),
			cat(seq(1, 24), []byte{0x19, 0, 0, 0}, seq(0x1d, 4))},
		{"AttachOK", AppendAttachOK(nil, 0xbeef), []byte{0xbe, 0xef}},
		{"ChunkHeader",
			AppendChunkHeader(nil, ChunkHeader{Item: 0x0102030405060708, Chunk: 0x090a0b0c, Total: 0x0d0e0f10, Seq: 0x1112131415161718}),
			seq(1, 24)},
		{"ChunkAck",
			AppendChunkAck(nil, ChunkAck{Cum: 0x0102030405060708, Ranges: []SeqRange{{From: 0x0a0b0c0d0e0f1011, To: 0x1213141516171819}}}),
			cat(seq(1, 8), []byte{0, 1}, seq(0x0a, 16))},
		{"Uint64", AppendUint64(nil, 0x0102030405060708), seq(1, 8)},
		{"append keeps prefix", AppendAttachOK([]byte{0x55}, 7), []byte{0x55, 0, 7}},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s = % x, want % x", c.name, c.got, c.want)
		}
	}
}

func randSessionID(r *rand.Rand) (id SessionID) {
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

func TestSessionRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		sn := SessionNew{Version: uint8(r.Uint32()), Mode: uint8(r.Uint32()), K: uint8(r.Uint32()), N: uint8(r.Uint32()), ChunkSize: r.Uint32(), Window: r.Uint64()}
		if n := r.IntN(MaxAuthToken + 1); n > 0 {
			sn.Token = make([]byte, n)
			for i := range sn.Token {
				sn.Token[i] = byte(r.Uint32())
			}
		}
		b := AppendSessionNew(nil, sn)
		if got, err := ParseSessionNew(b); err != nil || !reflect.DeepEqual(got, sn) || len(b) != SessionNewSize+len(sn.Token) {
			t.Fatalf("SessionNew %+v: got %+v, %v (%d bytes)", sn, got, err, len(b))
		}

		sa := SessionAccept{ID: randSessionID(r), Token: Token(randSessionID(r)), PathIndex: uint16(r.Uint32()),
			MaxPaths: uint16(r.Uint32()), ChunkSize: r.Uint32(), Window: r.Uint64()}
		b = AppendSessionAccept(nil, sa)
		if got, err := ParseSessionAccept(b); err != nil || got != sa || len(b) != SessionAcceptSize {
			t.Fatalf("SessionAccept %+v: got %+v, %v (%d bytes)", sa, got, err, len(b))
		}

		at := SessionAttach{ID: randSessionID(r), Slot: uint16(r.Uint32())}
		for i := range at.Proof {
			at.Proof[i] = byte(r.Uint32())
		}
		b = AppendSessionAttach(nil, at)
		if got, err := ParseSessionAttach(b); err != nil || got != at || len(b) != SessionAttachSize {
			t.Fatalf("SessionAttach %+v: got %+v, %v (%d bytes)", at, got, err, len(b))
		}

		idx := uint16(r.Uint32())
		b = AppendAttachOK(nil, idx)
		if got, err := ParseAttachOK(b); err != nil || got != idx || len(b) != AttachOKSize {
			t.Fatalf("AttachOK %d: got %d, %v (%d bytes)", idx, got, err, len(b))
		}

		h := ChunkHeader{Item: r.Uint64(), Chunk: r.Uint32(), Total: r.Uint32(), Seq: r.Uint64()}
		b = AppendChunkHeader(nil, h)
		if got, err := ParseChunkHeader(b); err != nil || got != h || len(b) != ChunkHeaderSize {
			t.Fatalf("ChunkHeader %+v: got %+v, %v (%d bytes)", h, got, err, len(b))
		}
		ph := PieceHeader{ChunkHeader: h, Index: uint8(r.Uint32()), Length: r.Uint32()}
		b = AppendPieceHeader(nil, ph)
		if got, err := ParsePieceHeader(append(b, "piece"...)); err != nil || got != ph || len(b) != PieceHeaderSize {
			t.Fatalf("PieceHeader %+v: got %+v, %v (%d bytes)", ph, got, err, len(b))
		}
		b = AppendChunkHeader(nil, h)
		// The payload follows the header; ParseChunkHeader reads only the prefix.
		if got, err := ParseChunkHeader(append(b, "payload"...)); err != nil || got != h {
			t.Fatalf("ChunkHeader with payload: got %+v, %v", got, err)
		}

		v := r.Uint64()
		b = AppendUint64(nil, v)
		for _, typ := range []Type{TypeCredit, TypeClose} {
			if got, err := ParseUint64(typ, b); err != nil || got != v || len(b) != 8 {
				t.Fatalf("%s %d: got %d, %v (%d bytes)", typ, v, got, err, len(b))
			}
		}
	}
}

func TestSessionWrongLengths(t *testing.T) {
	parsers := []struct {
		name  string
		size  int
		exact bool // false: longer inputs are accepted (CHUNK carries its payload after the header)
		parse func([]byte) error
	}{
		{"SessionAccept", SessionAcceptSize, true, func(p []byte) error { _, err := ParseSessionAccept(p); return err }},
		{"SessionAttach", SessionAttachSize, true, func(p []byte) error { _, err := ParseSessionAttach(p); return err }},
		{"AttachOK", AttachOKSize, true, func(p []byte) error { _, err := ParseAttachOK(p); return err }},
		{"ChunkHeader", ChunkHeaderSize, false, func(p []byte) error { _, err := ParseChunkHeader(p); return err }},
		{"PieceHeader", PieceHeaderSize, false, func(p []byte) error { _, err := ParsePieceHeader(p); return err }},
		{"Credit", CreditSize, true, func(p []byte) error { _, err := ParseUint64(TypeCredit, p); return err }},
		{"Close", CloseSize, true, func(p []byte) error { _, err := ParseUint64(TypeClose, p); return err }},
	}
	for _, p := range parsers {
		if err := p.parse(make([]byte, p.size)); err != nil {
			t.Errorf("%s: %d zero bytes rejected: %v", p.name, p.size, err)
		}
		for _, n := range []int{0, 1, p.size - 1, p.size + 1, 2 * p.size, 100} {
			err := p.parse(make([]byte, n))
			if n > p.size && !p.exact {
				if err != nil {
					t.Errorf("%s: %d bytes rejected: %v", p.name, n, err)
				}
				continue
			}
			if n == p.size {
				continue
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %d bytes: err = %v, want ErrMalformed", p.name, n, err)
			}
		}
		if err := p.parse(nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: nil: err = %v, want ErrMalformed", p.name, err)
		}
	}
	// The error names the frame type it was parsing.
	if _, err := ParseUint64(TypeClose, nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("CLOSE")) {
		t.Errorf("ParseUint64(CLOSE) error %v does not name CLOSE", err)
	}
}

// TestSessionNewLengths: SESSION_NEW is 17 bytes and then exactly the token its length byte
// announces, at most MaxAuthToken.
func TestSessionNewLengths(t *testing.T) {
	withToken := func(declared, actual int) []byte {
		p := make([]byte, SessionNewSize+actual)
		p[16] = byte(declared)
		return p
	}
	for _, c := range []struct {
		name string
		p    []byte
		ok   bool
	}{
		{"no token", withToken(0, 0), true},
		{"token", withToken(5, 5), true},
		{"longest token", withToken(MaxAuthToken, MaxAuthToken), true},
		{"nil", nil, false},
		{"short", make([]byte, SessionNewSize-1), false},
		{"v1 length", make([]byte, 16), false},
		{"token too long", withToken(MaxAuthToken+1, MaxAuthToken+1), false},
		{"token truncated", withToken(5, 4), false},
		{"trailing bytes", withToken(5, 6), false},
		{"length byte 255", withToken(255, 0), false},
	} {
		_, err := ParseSessionNew(c.p)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", c.name, err)
		}
	}
	if got := len(AppendSessionNew(nil, SessionNew{Token: make([]byte, 100)})); got != SessionNewSize+MaxAuthToken {
		t.Errorf("a 100-byte token encodes to %d bytes, want it cut to %d", got, SessionNewSize+MaxAuthToken)
	}
}

func TestPieceHeaderReservedRejected(t *testing.T) {
	good := AppendPieceHeader(nil, PieceHeader{ChunkHeader: ChunkHeader{Total: 1}, Index: 2, Length: 100})
	for _, i := range []int{25, 26, 27} {
		for _, v := range []byte{1, 0x80, 0xff} {
			bad := bytes.Clone(good)
			bad[i] = v
			if _, err := ParsePieceHeader(bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("reserved byte %d = %#x: err = %v, want ErrMalformed", i, v, err)
			}
		}
	}
	if _, err := ParsePieceHeader(good); err != nil {
		t.Fatal(err)
	}
}

// FuzzSessionFrames: every session parser either rejects its input with ErrMalformed or accepts
// something that re-encodes to exactly the bytes it read; none panics.
func FuzzSessionFrames(f *testing.F) {
	var id SessionID
	copy(id[:], "0123456789abcdef")
	f.Add(AppendSessionNew(nil, SessionNew{Version: 2, ChunkSize: 1 << 16, Window: 1 << 24}))
	f.Add(AppendSessionNew(nil, SessionNew{Version: 2, ChunkSize: 1 << 16, Window: 1 << 24, Token: []byte("secret")}))
	f.Add([]byte{2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1})
	f.Add(AppendSessionAccept(nil, SessionAccept{ID: id, Token: Token(id), MaxPaths: 8, ChunkSize: 1 << 16, Window: 1 << 24}))
	f.Add(AppendSessionAttach(nil, SessionAttach{ID: id, Slot: 3, Proof: Proof(append(id[:], id[:]...))}))
	f.Add(AppendAttachOK(nil, 3))
	f.Add(append(AppendChunkHeader(nil, ChunkHeader{Item: 7, Chunk: 1, Total: 2, Seq: 9}), "payload"...))
	f.Add(AppendChunkAck(nil, ChunkAck{Cum: 5, Ranges: []SeqRange{{7, 9}, {12, 20}}}))
	f.Add(append(AppendPieceHeader(nil, PieceHeader{ChunkHeader: ChunkHeader{Item: 7, Chunk: 1, Total: 2, Seq: 9}, Index: 2, Length: 5}), "piece"...))
	f.Add(AppendUint64(nil, 1<<40))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		check := func(name string, err error, enc func() []byte, want []byte) {
			t.Helper()
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: error %v does not wrap ErrMalformed", name, err)
				}
				return
			}
			if got := enc(); !bytes.Equal(got, want) {
				t.Fatalf("%s: % x re-encodes as % x", name, want, got)
			}
		}
		sn, err := ParseSessionNew(p)
		check("SessionNew", err, func() []byte { return AppendSessionNew(nil, sn) }, p)
		sa, err := ParseSessionAccept(p)
		check("SessionAccept", err, func() []byte { return AppendSessionAccept(nil, sa) }, p)
		at, err := ParseSessionAttach(p)
		check("SessionAttach", err, func() []byte { return AppendSessionAttach(nil, at) }, p)
		ok, err := ParseAttachOK(p)
		check("AttachOK", err, func() []byte { return AppendAttachOK(nil, ok) }, p)
		h, err := ParseChunkHeader(p)
		if err == nil && len(p) < ChunkHeaderSize {
			t.Fatalf("ChunkHeader accepted %d bytes", len(p))
		}
		check("ChunkHeader", err, func() []byte { return AppendChunkHeader(nil, h) }, p[:min(len(p), ChunkHeaderSize)])
		ph, err := ParsePieceHeader(p)
		check("PieceHeader", err, func() []byte { return AppendPieceHeader(nil, ph) }, p[:min(len(p), PieceHeaderSize)])
		for _, typ := range []Type{TypeCredit, TypeClose} {
			v, err := ParseUint64(typ, p)
			check(typ.String(), err, func() []byte { return AppendUint64(nil, v) }, p)
		}
		var ca ChunkAck
		err = ParseChunkAck(p, &ca)
		check("ChunkAck", err, func() []byte { return AppendChunkAck(nil, ca) }, p)
		if err == nil {
			prev := ca.Cum
			for _, r := range ca.Ranges {
				if r.From <= prev || r.To <= r.From {
					t.Fatalf("accepted range %v after %d", r, prev)
				}
				prev = r.To
			}
		}
	})
}

func TestChunkAckRejects(t *testing.T) {
	enc := func(cum uint64, rs ...SeqRange) []byte { return AppendChunkAck(nil, ChunkAck{Cum: cum, Ranges: rs}) }
	cases := map[string][]byte{
		"short":               {0, 0, 0},
		"count beyond length": append(enc(1), 0),
		"range at cum":        enc(5, SeqRange{5, 7}),
		"empty range":         enc(5, SeqRange{7, 7}),
		"adjacent ranges":     enc(5, SeqRange{7, 9}, SeqRange{9, 11}),
		"descending":          enc(5, SeqRange{20, 30}, SeqRange{7, 9}),
		"too many": func() []byte {
			var rs []SeqRange
			for i := range uint64(MaxAckRanges + 1) {
				rs = append(rs, SeqRange{10 + 3*i, 11 + 3*i})
			}
			return enc(0, rs...)
		}(),
	}
	for name, p := range cases {
		var a ChunkAck
		if err := ParseChunkAck(p, &a); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	var a ChunkAck
	if err := ParseChunkAck(enc(3, SeqRange{5, 6}, SeqRange{8, 100}), &a); err != nil || a.Cum != 3 || len(a.Ranges) != 2 {
		t.Fatalf("%+v %v", a, err)
	}
}
