package wire

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// loopReader serves the same bytes forever, so a benchmark measures decoding, not I/O.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

var benchSizes = []int{64, 1 << 10, 64 << 10, 1 << 20}

func BenchmarkReadFrame(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			var one bytes.Buffer
			NewWriter(&one).WriteFrame(TypeData, make([]byte, size))
			r := NewReader(&loopReader{data: one.Bytes()}, 0)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadRaw is the baseline for BenchmarkReadFrame: the same bytes copied with
// io.ReadFull and no framing.
func BenchmarkReadRaw(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			src := &loopReader{data: make([]byte, size+HeaderSize)}
			buf := make([]byte, size+HeaderSize)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				io.ReadFull(src, buf)
			}
		})
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			w := NewWriter(io.Discard)
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(TypeData, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
