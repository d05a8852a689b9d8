package wire

import (
	"io"
	"net"

	"github.com/braidnet/braid/internal/bufpool"
)

// coalesceLimit is the largest payload a Writer copies into its pending buffer. Larger payloads
// are written in place by a vectored write, never copied.
const coalesceLimit = 32 << 10

// flushThreshold bounds what a Writer holds: queuing past it writes out what is pending.
const flushThreshold = 4 << 20

// Writer encodes frames onto a byte stream. Small frames are gathered in a pending buffer; large
// payloads are not copied but written in place, with the headers and small frames around them, in
// one vectored write (writev) when the underlying connection supports it.
//
// Queue writes a large payload at once, so the caller may reuse it when Queue returns;
// QueueRetained keeps it until Flush, so that many large frames leave in one system call.
//
// The pending buffer comes from bufpool when a frame is queued and goes back to it when Flush has
// written it, so that a Writer with nothing to write (an idle connection's) holds no buffer.
//
// A Writer is not safe for concurrent use; deadlines are the caller's to set on the connection.
type Writer struct {
	w       io.Writer
	batch   Batcher
	vector  bool      // w is a net.Conn, whose Write never returns short without an error
	pending []byte    // from bufpool while frames are queued; nil when the Writer holds none
	segs    []segment // what Flush writes, in order
	runFrom int       // start of the pending bytes not yet closed into a segment
	large   int       // bytes of retained large payloads
	bufs    net.Buffers
	vec     [][]byte
}

// segment is a run of pending bytes, or a retained large payload.
type segment struct {
	body     []byte
	from, to int
}

// Batcher is a writer that can gather several writes into one system call: Flush calls Hold
// before its writes and Release after them (a TLS connection writes each record separately).
type Batcher interface {
	Hold()
	Release() error
}

// NewWriter returns a Writer on w. If w is a Batcher, each Flush is one batch.
func NewWriter(w io.Writer) *Writer {
	_, isConn := w.(net.Conn)
	b, _ := w.(Batcher)
	return &Writer{w: w, batch: b, vector: isConn}
}

// pendingSize is the size of the pending buffer a Writer takes for its first frame.
const pendingSize = 4 << 10

// reserve makes sure the pending buffer has room for n more bytes: a buffer from bufpool if the
// Writer holds none, or the next size class up, the bytes moved over and the smaller buffer
// handed back, if it is full. (Growing it by append, as the first version did, left the grown
// buffer to the garbage collector after each flush, and the next flush grew another from 4 KiB:
// small frames queued back to back cost a tenth of their throughput.)
func (w *Writer) reserve(n int) {
	if w.pending == nil {
		w.pending = bufpool.Get(max(pendingSize, n))[:0]
		return
	}
	if cap(w.pending)-len(w.pending) >= n {
		return
	}
	bigger := bufpool.Get(max(2*cap(w.pending), len(w.pending)+n))[:len(w.pending)]
	copy(bigger, w.pending)
	bufpool.Put(w.pending)
	w.pending = bigger
}

// release hands the pending buffer back to bufpool once it has been written.
func (w *Writer) release() {
	if w.pending != nil {
		bufpool.Put(w.pending)
		w.pending = nil
	}
}

// WriteFrame writes one frame and flushes it, together with anything queued before it.
func (w *Writer) WriteFrame(t Type, payload []byte) error {
	if err := w.Queue(t, nil, payload); err != nil {
		return err
	}
	return w.Flush()
}

// Queue adds a frame whose payload is head followed by body (either may be empty), so that a
// payload made of a small encoded prefix and a large body is sent without copying the body. Small
// frames stay pending until Flush; a frame with a large body is written at once, with what is
// pending, so body may be reused when Queue returns.
func (w *Writer) Queue(t Type, head, body []byte) error {
	if err := w.QueueRetained(t, head, body); err != nil {
		return err
	}
	if len(body) > coalesceLimit {
		return w.Flush()
	}
	return nil
}

// QueueRetained is Queue without the immediate write: a large body is kept by reference until the
// next Flush (or a Queue that flushes), and must not change until then.
func (w *Writer) QueueRetained(t Type, head, body []byte) error {
	n := len(head) + len(body)
	if n > MaxPayloadLimit {
		return &TooLargeError{Length: uint32(min(n, 1<<32-1)), Max: MaxPayloadLimit}
	}
	var hdr [HeaderSize]byte
	PutHeader(hdr[:], Header{Length: uint32(n), Type: t})
	small := len(body) <= coalesceLimit // copied into the pending buffer, not retained
	copied := HeaderSize + len(head)
	if small {
		copied += len(body)
	}
	w.reserve(copied)
	w.pending = append(w.pending, hdr[:]...)
	w.pending = append(w.pending, head...)
	if small {
		w.pending = append(w.pending, body...)
	} else {
		w.closeRun()
		w.segs = append(w.segs, segment{body: body})
		w.large += len(body)
	}
	if w.Pending() >= flushThreshold {
		return w.Flush()
	}
	return nil
}

// closeRun ends the current run of pending bytes as a segment.
func (w *Writer) closeRun() {
	if w.runFrom < len(w.pending) {
		w.segs = append(w.segs, segment{from: w.runFrom, to: len(w.pending)})
		w.runFrom = len(w.pending)
	}
}

// Pending returns the number of bytes queued but not yet written.
func (w *Writer) Pending() int { return len(w.pending) + w.large }

// Flush writes every queued frame, in one vectored write where the connection allows.
func (w *Writer) Flush() (err error) {
	if w.Pending() == 0 {
		return nil
	}
	w.closeRun()
	defer w.release() // after the batch's Release, which writes it
	if w.batch != nil {
		w.batch.Hold()
		defer func() {
			if rerr := w.batch.Release(); err == nil {
				err = rerr
			}
		}()
	}
	if w.vector && len(w.segs) > 1 {
		w.vec = w.vec[:0]
		for _, s := range w.segs {
			w.vec = append(w.vec, w.bytes(s))
		}
		w.bufs = w.vec
		_, err = w.bufs.WriteTo(w.w)
		clear(w.vec)
	} else {
		for _, s := range w.segs {
			if err = writeAll(w.w, w.bytes(s)); err != nil {
				break
			}
		}
	}
	clear(w.segs)
	w.segs, w.runFrom, w.large = w.segs[:0], 0, 0
	return err
}

func (w *Writer) bytes(s segment) []byte {
	if s.body != nil {
		return s.body
	}
	return w.pending[s.from:s.to]
}

// writeAll writes p in full, continuing after short writes from writers that report them
// without an error.
func writeAll(w io.Writer, p []byte) error {
	for len(p) > 0 {
		n, err := w.Write(p)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}
