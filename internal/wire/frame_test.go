package wire

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// TestConstantsPinned ties the code to docs/PROTOCOL.md: changing any value here is a wire change.
func TestConstantsPinned(t *testing.T) {
	pins := []struct {
		name      string
		got, want int
	}{
		{"HeaderSize", HeaderSize, 5},
		{"LengthSize", LengthSize, 4},
		{"TypeSize", TypeSize, 1},
		{"TEXT", int(TypeText), 0x01},
		{"PING", int(TypePing), 0x02},
		{"PONG", int(TypePong), 0x03},
		{"DATA", int(TypeData), 0x04},
		{"ACK", int(TypeAck), 0x05},
		{"ERROR", int(TypeError), 0x06},
		{"SessionTypeFirst", int(SessionTypeFirst), 0x10},
		{"SessionTypeLast", int(SessionTypeLast), 0x3F},
		{"DefaultMaxPayload", DefaultMaxPayload, 16 << 20},
		{"MaxPayloadLimit", MaxPayloadLimit, 256 << 20},
		{"AckSize", AckSize, 17},
		{"MaxPingPayload", MaxPingPayload, 64},
		{"MaxErrorMessage", MaxErrorMessage, 1024},
		{"CodeProtocol", int(CodeProtocol), 0x0001},
		{"CodeFrameTooLarge", int(CodeFrameTooLarge), 0x0002},
		{"CodeUnknownType", int(CodeUnknownType), 0x0003},
		{"CodeTimeout", int(CodeTimeout), 0x0004},
		{"CodeShuttingDown", int(CodeShuttingDown), 0x0005},
		{"CodeInternal", int(CodeInternal), 0x0006},
		{"CodeUnknownSession", int(CodeUnknownSession), 0x0101},
		{"CodeBadToken", int(CodeBadToken), 0x0102},
		{"CodeTooManyPaths", int(CodeTooManyPaths), 0x0103},
		{"CodeTooManySessions", int(CodeTooManySessions), 0x0104},
		{"CodeInvalidChunk", int(CodeInvalidChunk), 0x0105},
		{"CodeOverBudget", int(CodeOverBudget), 0x0106},
		{"CodeBadOptions", int(CodeBadOptions), 0x0107},
		{"CodeSessionClosed", int(CodeSessionClosed), 0x0108},
		{"CodeUnauthorized", int(CodeUnauthorized), 0x0109},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %#x, docs/PROTOCOL.md says %#x", p.name, p.got, p.want)
		}
	}
	var h [HeaderSize]byte
	PutHeader(h[:], Header{Length: 0x01020304, Type: TypeData})
	if want := []byte{1, 2, 3, 4, 4}; !bytes.Equal(h[:], want) {
		t.Errorf("header bytes = % x, want % x", h, want)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{TypeText: "TEXT", TypePing: "PING", TypePong: "PONG",
		TypeData: "DATA", TypeAck: "ACK", TypeError: "ERROR", 0x7f: "Type(0x7f)", 0: "Type(0x00)"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", typ, got, want)
		}
	}
	if Type(0x7f).Known() || Type(0).Known() || !TypePing.Known() {
		t.Error("Known() wrong")
	}
	if CodeBadToken.String() != "BAD_TOKEN" || Code(0xffff).String() != "Code(0xffff)" {
		t.Error("Code.String wrong")
	}
}

type testFrame struct {
	typ     Type
	payload []byte
}

func sampleFrames(r *rand.Rand, n int) []testFrame {
	types := []Type{TypeText, TypePing, TypePong, TypeData, TypeAck, TypeError}
	out := make([]testFrame, n)
	for i := range out {
		size := 0
		switch r.IntN(4) {
		case 0:
		case 1:
			size = r.IntN(16)
		case 2:
			size = r.IntN(4096)
		case 3:
			size = r.IntN(200_000)
		}
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		out[i] = testFrame{types[r.IntN(len(types))], p}
	}
	return out
}

func encodeAll(t testing.TB, frames []testFrame) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range frames {
		if err := w.Queue(f.typ, f.payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeAll(t *testing.T, r io.Reader, want []testFrame) {
	t.Helper()
	fr := NewReader(r, 0)
	for i, f := range want {
		got, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != f.typ || !bytes.Equal(got.Payload, f.payload) {
			t.Fatalf("frame %d: got %s/%d bytes, want %s/%d bytes", i, got.Type, len(got.Payload), f.typ, len(f.payload))
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

// randomSplitReader returns the stream in reads of random lengths, including many tiny ones.
type randomSplitReader struct {
	data []byte
	r    *rand.Rand
}

func (s *randomSplitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(s.data), 1+s.r.IntN(1+s.r.IntN(70000)))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func TestPartialReads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	frames := sampleFrames(rng, 60)
	stream := encodeAll(t, frames)
	readers := []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream) }},
		{"OneByteReader", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
		{"HalfReader", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
		{"DataErrReader", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) }},
		{"RandomSplit", func() io.Reader { return &randomSplitReader{stream, rand.New(rand.NewPCG(3, 4))} }},
	}
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) { decodeAll(t, rd.r(), frames) })
	}
}

// timeoutEveryOther is a stream that returns a timeout error before every second byte, as a
// connection whose read deadline keeps being used to interrupt its reader would.
type timeoutEveryOther struct {
	r    io.Reader
	next bool
}

var errTestTimeout = errors.New("test timeout")

func (t *timeoutEveryOther) Read(p []byte) (int, error) {
	if t.next = !t.next; t.next {
		return 0, errTestTimeout
	}
	return t.r.Read(p[:min(len(p), 1)])
}

// TestHeaderSurvivesTimeouts: a read error before a header is whole consumes nothing, so reading
// again after a timeout (an interrupted reader) decodes the same frames. Payloads are read only
// once their header is in, with no timeout in between here.
func TestHeaderSurvivesTimeouts(t *testing.T) {
	frames := sampleFrames(rand.New(rand.NewPCG(5, 6)), 40)
	stream := encodeAll(t, frames)
	src := &timeoutEveryOther{r: bytes.NewReader(stream)}
	r := NewReader(src, 0)
	timeouts := 0
	for i, want := range frames {
		var h Header
		for {
			var err error
			if h, err = r.ReadHeader(); err == nil {
				break
			}
			if !errors.Is(err, errTestTimeout) {
				t.Fatalf("frame %d: %v", i, err)
			}
			timeouts++
		}
		src.next = true // no timeout inside the payload
		p := make([]byte, h.Length)
		for n := 0; n < len(p); {
			m, err := r.br.Read(p[n:])
			if err != nil && !errors.Is(err, errTestTimeout) {
				t.Fatalf("frame %d payload: %v", i, err)
			}
			n += m
		}
		if h.Type != want.typ || !bytes.Equal(p, want.payload) {
			t.Fatalf("frame %d: got %v %x, want %v %x", i, h.Type, p, want.typ, want.payload)
		}
	}
	if timeouts < len(frames) {
		t.Fatalf("only %d timeouts for %d frames", timeouts, len(frames))
	}
}

// TestCoalescedFrames puts many small frames into one read: one Read call returns them all.
func TestCoalescedFrames(t *testing.T) {
	var frames []testFrame
	for i := range 100 {
		frames = append(frames, testFrame{TypePing, []byte{byte(i)}})
	}
	stream := encodeAll(t, frames)
	if len(stream) != 100*(HeaderSize+1) {
		t.Fatalf("stream is %d bytes", len(stream))
	}
	decodeAll(t, bytes.NewReader(stream), frames)
}

func TestReaderErrors(t *testing.T) {
	hdr := func(n uint32, typ Type) []byte {
		b := make([]byte, HeaderSize)
		PutHeader(b, Header{Length: n, Type: typ})
		return b
	}
	cases := []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"empty stream is clean EOF", nil, 0, io.EOF},
		{"truncated header", []byte{0, 0, 1}, 0, io.ErrUnexpectedEOF},
		{"header then EOF", hdr(10, TypeData), 0, io.ErrUnexpectedEOF},
		{"short payload", append(hdr(10, TypeData), 1, 2, 3), 0, io.ErrUnexpectedEOF},
		{"oversize", hdr(1001, TypeData), 1000, ErrFrameTooLarge},
		{"oversize beyond hard limit", hdr(MaxPayloadLimit+1, TypeData), 1 << 40, ErrFrameTooLarge},
		{"max uint32", hdr(0xffffffff, TypeText), 0, ErrFrameTooLarge},
		{"unknown type", hdr(0, 0x7f), 0, ErrUnknownType},
		{"type zero", hdr(0, 0), 0, ErrUnknownType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(c.input), c.max)
			_, err := r.ReadFrame()
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			rejected := errors.Is(c.want, ErrFrameTooLarge) || errors.Is(c.want, ErrUnknownType)
			if rejected && cap(r.buf) > 0 {
				t.Fatalf("allocated %d bytes for a rejected frame", cap(r.buf))
			}
		})
	}
}

// TestLargeFrameExactlyAtLimit accepts a payload of exactly the maximum.
func TestLargeFrameExactlyAtLimit(t *testing.T) {
	p := bytes.Repeat([]byte("x"), 1000)
	stream := encodeAll(t, []testFrame{{TypeData, p}})
	f, err := NewReader(bytes.NewReader(stream), 1000).ReadFrame()
	if err != nil || len(f.Payload) != 1000 {
		t.Fatalf("got %d bytes, %v", len(f.Payload), err)
	}
}

// TestStalledLargeFrameAllocatesOnlyWhatArrived: a peer that announces 16 MiB and sends 10 bytes
// costs about growStep bytes, not 16 MiB.
func TestStalledLargeFrameAllocatesOnlyWhatArrived(t *testing.T) {
	b := make([]byte, HeaderSize, HeaderSize+10)
	PutHeader(b, Header{Length: 16 << 20, Type: TypeData})
	b = append(b, make([]byte, 10)...)
	r := NewReader(bytes.NewReader(b), 16<<20)
	if _, err := r.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if cap(r.buf) > growStep {
		t.Fatalf("buffer grew to %d bytes for 10 received", cap(r.buf))
	}
}

// shortWriter accepts at most n bytes per call and reports no error, like a misbehaving writer.
type shortWriter struct {
	buf   bytes.Buffer
	n     int
	calls int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	w.calls++
	p = p[:min(len(p), w.n)]
	return w.buf.Write(p)
}

func TestWriterShortWrites(t *testing.T) {
	frames := sampleFrames(rand.New(rand.NewPCG(5, 6)), 30)
	sw := &shortWriter{n: 7}
	w := NewWriter(sw)
	for _, f := range frames {
		if err := w.WriteFrame(f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	decodeAll(t, &sw.buf, frames)
}

type zeroWriter struct{}

func (zeroWriter) Write(p []byte) (int, error) { return 0, nil }

func TestWriterNoProgress(t *testing.T) {
	if err := NewWriter(zeroWriter{}).WriteFrame(TypePing, nil); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("err = %v, want io.ErrShortWrite", err)
	}
}

func TestWriterErrorPropagates(t *testing.T) {
	ew := NewWriter(errWriter{})
	if err := ew.WriteFrame(TypeData, make([]byte, 100_000)); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}

type errWriter struct{}

func (errWriter) Write(p []byte) (int, error) { return 0, errors.New("boom") }

func TestQueueSplitPayload(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	body := bytes.Repeat([]byte{0xab}, 100_000)
	if err := w.Queue(TypeData, []byte("head"), body); err != nil {
		t.Fatal(err)
	}
	if err := w.Queue(TypeText, []byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	decodeAll(t, &buf, []testFrame{{TypeData, append([]byte("head"), body...)}, {TypeText, []byte("ab")}})
}

func TestAckRoundTrip(t *testing.T) {
	a := Ack{Acked: TypeText, Seq: 42, Bytes: 1 << 40}
	b := AppendAck(nil, a)
	if len(b) != AckSize {
		t.Fatalf("encoded %d bytes", len(b))
	}
	got, err := ParseAck(b)
	if err != nil || got != a {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:16], append(b, 0), AppendAck(nil, Ack{Acked: TypePing})} {
		if _, err := ParseAck(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseAck(% x) err = %v", bad, err)
		}
	}
}

func TestErrorFrameRoundTrip(t *testing.T) {
	e := ErrorFrame{Code: CodeFrameTooLarge, Message: "too big"}
	got, err := ParseError(AppendError(nil, e))
	if err != nil || got != e {
		t.Fatalf("got %+v, %v", got, err)
	}
	long := ErrorFrame{Code: CodeProtocol, Message: strings.Repeat("é", MaxErrorMessage)}
	got, err = ParseError(AppendError(nil, long))
	if err != nil || len(got.Message) > MaxErrorMessage {
		t.Fatalf("long message: %d bytes, %v", len(got.Message), err)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1, 0xff}} {
		if _, err := ParseError(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseError(% x) err = %v", bad, err)
		}
	}
}

// TestSteadyStateZeroAlloc: after warm-up, reading and writing frames allocates nothing.
func TestSteadyStateZeroAlloc(t *testing.T) {
	payload := make([]byte, 64<<10)
	var one bytes.Buffer
	NewWriter(&one).WriteFrame(TypeData, payload)
	frame := one.Bytes()
	src := bytes.NewReader(frame)
	r := NewReader(src, 0)
	w := NewWriter(io.Discard)
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		src.Reset(frame)
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(f.Type, f.Payload); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFrame(TypePing, payload[:8]); err != nil {
			t.Fatal(err)
		}
	})
	// Under the race detector sync.Pool drops a quarter of what it is given, and the Writer's
	// pending buffer goes through it at every flush.
	if allocs > 0 && !(raceEnabled && allocs <= 2) {
		t.Fatalf("%v allocations per frame, want 0", allocs)
	}
}

// TestQueueRetainedGathers: large bodies queued with QueueRetained are kept by reference and
// leave with the small frames around them, in order, at Flush.
func TestQueueRetainedGathers(t *testing.T) {
	for _, name := range []string{"buffer", "short writer"} {
		t.Run(name, func(t *testing.T) {
			var sink interface {
				io.Writer
				io.Reader
			} = &bytes.Buffer{}
			if name == "short writer" {
				sink = &shortWriter{n: 1000}
			}
			w := NewWriter(sink)
			big1 := bytes.Repeat([]byte{1}, 100_000)
			big2 := bytes.Repeat([]byte{2}, 70_000)
			want := []testFrame{
				{TypePing, []byte("a")},
				{TypeData, append([]byte("h1"), big1...)},
				{TypeText, []byte("between")},
				{TypeData, append([]byte("h2"), big2...)},
				{TypePong, nil},
			}
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(w.QueueRetained(TypePing, []byte("a"), nil))
			must(w.QueueRetained(TypeData, []byte("h1"), big1))
			must(w.QueueRetained(TypeText, nil, []byte("between")))
			must(w.QueueRetained(TypeData, []byte("h2"), big2))
			must(w.QueueRetained(TypePong, nil, nil))
			if got, want := w.Pending(), 5*HeaderSize+1+2+100_000+7+2+70_000; got != want {
				t.Fatalf("Pending = %d, want %d", got, want)
			}
			must(w.Flush())
			if w.Pending() != 0 {
				t.Fatal("not empty after Flush")
			}
			decodeAll(t, sink, want)
		})
	}
}

func (w *shortWriter) Read(p []byte) (int, error) { return w.buf.Read(p) }

// TestReadSome: ReadSome returns what one read brings (at least a byte), never more than asked,
// and an error matching io.ErrUnexpectedEOF once the stream ends.
func TestReadSome(t *testing.T) {
	stream := []byte("0123456789abcdef")
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), 0)
	var got []byte
	buf := make([]byte, 5)
	if n, err := r.ReadSome(buf[:0]); n != 0 || err != nil {
		t.Fatalf("ReadSome of nothing: %d, %v", n, err)
	}
	for len(got) < len(stream) {
		n, err := r.ReadSome(buf)
		if err != nil || n < 1 || n > len(buf) {
			t.Fatalf("ReadSome: %d, %v", n, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, stream) {
		t.Fatalf("read %q", got)
	}
	if n, err := r.ReadSome(buf); n != 0 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("at the end: %d, %v; want io.ErrUnexpectedEOF", n, err)
	}
}

// TestReaderRelease: a Reader that gives its buffer back between frames reads the same frames,
// counts the same bytes, holds no buffer while released, and a read that fails before any byte
// has come (a deadline) consumes nothing.
func TestReaderRelease(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	var want []Frame
	for i := range 40 {
		p := bytes.Repeat([]byte{byte(i)}, i*i*7) // up to ~11 KiB: some frames outgrow the buffer
		w.WriteFrame(TypeData, p)
		want = append(want, Frame{Type: TypeData, Payload: p})
	}
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"timeouts": func(r io.Reader) io.Reader { return &stallOnce{r: r} },
	} {
		t.Run(name, func(t *testing.T) {
			src := wrap(bytes.NewReader(stream.Bytes()))
			r := NewReaderSize(src, 0, 4<<10)
			timeouts, stalled := 0, -1
			for i := 0; i < len(want); {
				if r.Buffered() == 0 {
					r.Release()
					if r.br != nil {
						t.Fatal("released Reader still holds its buffer")
					}
					if s, ok := src.(*stallOnce); ok && i%3 == 0 && stalled < i {
						s.stall, stalled = true, i // the released Reader's first read times out
					}
				}
				before := r.BytesRead()
				f, err := r.ReadFrame()
				if errors.Is(err, iotest.ErrTimeout) {
					timeouts++
					if r.BytesRead() != before {
						t.Fatalf("a failed read consumed %d bytes", r.BytesRead()-before)
					}
					continue
				}
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.Type != want[i].Type || !bytes.Equal(f.Payload, want[i].Payload) {
					t.Fatalf("frame %d differs", i)
				}
				i++
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want EOF", err)
			}
			if r.BytesRead() != int64(stream.Len()) {
				t.Fatalf("counted %d bytes of %d", r.BytesRead(), stream.Len())
			}
			if name == "timeouts" && timeouts == 0 {
				t.Fatal("no read timed out: the case tests nothing")
			}
		})
	}
}

// stallOnce fails its next read with iotest.ErrTimeout, without reading, when stall is set.
type stallOnce struct {
	r     io.Reader
	stall bool
}

func (s *stallOnce) Read(p []byte) (int, error) {
	if s.stall {
		s.stall = false
		return 0, iotest.ErrTimeout
	}
	return s.r.Read(p)
}

// TestReaderReleaseKeepsBuffered: Release does nothing while bytes are buffered.
func TestReaderReleaseKeepsBuffered(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	w.WriteFrame(TypeText, []byte("one"))
	w.WriteFrame(TypeText, []byte("two"))
	r := NewReader(bytes.NewReader(stream.Bytes()), 0)
	if f, err := r.ReadFrame(); err != nil || string(f.Payload) != "one" {
		t.Fatalf("%q, %v", f.Payload, err)
	}
	r.Release()
	if r.br == nil {
		t.Fatal("released with a frame buffered")
	}
	if f, err := r.ReadFrame(); err != nil || string(f.Payload) != "two" {
		t.Fatalf("%q, %v", f.Payload, err)
	}
}

// TestWriterHoldsNoBufferWhenFlushed: a Writer gives its pending buffer back once it has
// written it.
func TestWriterHoldsNoBufferWhenFlushed(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Queue(TypePing, make([]byte, 8), nil)
	if w.pending == nil || w.Pending() != HeaderSize+8 {
		t.Fatalf("queued frame: buffer %v, %d pending", w.pending != nil, w.Pending())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.pending != nil || out.Len() != HeaderSize+8 {
		t.Fatalf("after Flush: pending buffer of %d bytes, wrote %d", cap(w.pending), out.Len())
	}
}

// TestWriterSmallFramesBackToBack: many small frames queued before one Flush grow the pending
// buffer through bufpool's size classes, every byte in order, and a Writer that does it again
// and again allocates nothing once the pool holds the sizes it needs. (Growing the buffer by
// append left each grown buffer to the garbage collector: the single-path protocol's 4 KiB
// frames ran at a tenth of their throughput, 20 KiB allocated per frame.)
func TestWriterSmallFramesBackToBack(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	payload := make([]byte, 4<<10)
	round := func() {
		for i := range 256 { // 1 MiB of frames, below flushThreshold: one flush
			payload[0] = byte(i)
			if err := w.Queue(TypeData, nil, payload); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	round()
	r := NewReader(bytes.NewReader(out.Bytes()), MaxPayloadLimit)
	for i := range 256 {
		f, err := r.ReadFrame()
		if err != nil || f.Type != TypeData || len(f.Payload) != len(payload) || f.Payload[0] != byte(i) {
			t.Fatalf("frame %d: %v %d bytes, first %d, %v", i, f.Type, len(f.Payload), f.Payload[0], err)
		}
	}
	limit := 0.5 // sync.Pool may drop a buffer across a GC
	if raceEnabled {
		limit = 20 // the race detector's sync.Pool drops items at random
	}
	if allocs := testing.AllocsPerRun(20, func() { out.Reset(); round() }); allocs > limit {
		t.Errorf("%v allocations per 256 frames", allocs)
	}
}
