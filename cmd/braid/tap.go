package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/tap"
	"github.com/braidnet/braid/internal/wire"
)

// pathTap is what one session path carried, as recorded.
type pathTap struct {
	slot    int
	stream  []byte // every byte recorded
	payload []byte // the CHUNK or PIECE payloads in it, without frame or chunk headers
}

// sessionTaps returns the recordings of connections that were session paths, parsed, skipping
// the first skip connections. With TLS the frames cannot be parsed (which is the point): each
// recording is numbered in the order the server accepted it, and its payload is what its
// encrypted records carry (the ClientHello and the record headers are not the session's bytes,
// and would dominate the figures of a path that carried little).
func sessionTaps(l *tap.Listener, skip int, overTLS bool) []pathTap {
	var out []pathTap
	for i, tc := range l.Conns()[skip:] {
		stream := tc.Bytes()
		if overTLS {
			out = append(out, pathTap{slot: i, stream: stream, payload: encryptedRecords(stream)})
			continue
		}
		r := wire.NewReader(bytes.NewReader(stream), 0)
		t := pathTap{slot: -1, stream: stream}
		for {
			f, err := r.ReadFrame()
			if err != nil {
				break // the recording may end mid-frame
			}
			switch f.Type {
			case wire.TypeSessionNew:
				t.slot = 0
			case wire.TypeSessionAttach:
				if a, err := wire.ParseSessionAttach(f.Payload); err == nil {
					t.slot = int(a.Slot)
				}
			case wire.TypeChunk:
				t.payload = append(t.payload, f.Payload[wire.ChunkHeaderSize:]...)
			case wire.TypePiece:
				t.payload = append(t.payload, f.Payload[wire.PieceHeaderSize:]...)
			}
		}
		if t.slot >= 0 {
			out = append(out, t)
		}
	}
	return out
}

// TLS record framing (RFC 8446, 5.1): content type, legacy version, length. In TLS 1.3 every
// record after the hellos is application_data, the handshake's included.
const (
	tlsRecordHeader    = 5
	tlsApplicationData = 23
)

// encryptedRecords returns the contents of the application_data records in a recorded TLS
// stream, up to where the recording ends mid-record.
func encryptedRecords(stream []byte) []byte {
	var out []byte
	for len(stream) >= tlsRecordHeader {
		n := tlsRecordHeader + (int(stream[3])<<8 | int(stream[4]))
		if n > len(stream) {
			n = len(stream)
		}
		if stream[0] == tlsApplicationData {
			out = append(out, stream[tlsRecordHeader:n]...)
		}
		stream = stream[n:]
	}
	return out
}

// writeTapTable prints, per path, how random its payload bytes look (its whole stream, over TLS)
// and whether the demo's plaintext can be read in them.
func writeTapTable(w io.Writer, taps []pathTap, overTLS bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	slices.SortFunc(taps, func(a, b pathTap) int { return a.slot - b.slot })
	if overTLS {
		fmt.Fprintln(tw, "connection\trecorded\tof which encrypted\tchi-square\tplaintext visible\tfirst bytes")
	} else {
		fmt.Fprintln(tw, "slot\trecorded\tof which payload\tchi-square\tplaintext visible\tfirst payload bytes")
	}
	for _, t := range taps {
		head := t.payload[:min(len(t.payload), 16)]
		visible := bytes.Contains(t.stream, []byte("quick brown fox"))
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%v\t%s\n", t.slot, len(t.stream), len(t.payload), disperse.ChiSquare(t.payload), yesNo(visible), hex.EncodeToString(head))
	}
	tw.Flush()
	fmt.Fprintln(w, "(chi-square of the payload byte values against uniform: about 255 for random bytes, above 330 is not random at p = 0.001)")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
