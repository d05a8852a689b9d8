package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzReader: any byte sequence decodes to frames or an error, never a panic, and the payload
// buffer never exceeds the configured maximum. Odd maxima release the read buffer after every
// frame (Release) and read the input a byte at a time, which must change nothing.
func FuzzReader(f *testing.F) {
	var seed bytes.Buffer
	w := NewWriter(&seed)
	w.WriteFrame(TypeText, []byte("hello"))
	w.WriteFrame(TypePing, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	w.WriteFrame(TypeAck, AppendAck(nil, Ack{Acked: TypeData, Seq: 1, Bytes: 9}))
	f.Add(seed.Bytes(), uint16(64))
	f.Add([]byte{0, 0, 0, 0, 1}, uint16(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4}, uint16(100))
	f.Add([]byte{0, 0, 1, 0, 0x7f}, uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		limit := int(max) + 1
		release := max%2 == 1
		var src io.Reader = bytes.NewReader(data)
		if release {
			src = iotest.OneByteReader(src)
		}
		r := NewReader(src, limit)
		consumed := 0
		for {
			if release {
				r.Release()
			}
			fr, err := r.ReadFrame()
			if cap(r.buf) > limit {
				t.Fatalf("buffer capacity %d above maximum %d", cap(r.buf), limit)
			}
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrUnknownType) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if len(fr.Payload) > limit || !fr.Type.Known() {
				t.Fatalf("accepted %s with %d bytes", fr.Type, len(fr.Payload))
			}
			consumed += HeaderSize + len(fr.Payload)
			if consumed > len(data) {
				t.Fatalf("decoded %d bytes from %d", consumed, len(data))
			}
			// Re-encoding the frame reproduces the bytes it came from.
			var out bytes.Buffer
			NewWriter(&out).WriteFrame(fr.Type, fr.Payload)
			if !bytes.Equal(out.Bytes(), data[consumed-HeaderSize-len(fr.Payload):consumed]) {
				t.Fatal("re-encoding differs from input")
			}
			switch fr.Type {
			case TypeAck:
				if a, err := ParseAck(fr.Payload); err == nil && !bytes.Equal(AppendAck(nil, a), fr.Payload) {
					t.Fatal("ACK round trip differs")
				}
			case TypeError:
				if e, err := ParseError(fr.Payload); err == nil && !bytes.Equal(AppendError(nil, e), fr.Payload) {
					t.Fatal("ERROR round trip differs")
				}
			}
		}
	})
}
