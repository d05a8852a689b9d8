package wire

import (
	"io"
	"net"
)

// coalesceLimit is the largest payload a Writer copies into its pending buffer. Larger payloads
// are written in place with one vectored write, header and pending frames included.
const coalesceLimit = 32 << 10

// flushThreshold bounds the pending buffer: queuing past it writes out what is pending.
const flushThreshold = 256 << 10

// Writer encodes frames onto a byte stream. Small frames are gathered in a pending buffer and
// written together by Flush; a large payload is written with the pending bytes and its header in
// one vectored write (writev) without being copied. Either way a frame never costs more than one
// write call when the underlying connection supports vectored writes.
//
// A Writer is not safe for concurrent use; deadlines are the caller's to set on the connection.
type Writer struct {
	w       io.Writer
	vector  bool // w is a net.Conn, whose Write never returns short without an error
	pending []byte
	vec     [3][]byte
	bufs    net.Buffers
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	_, isConn := w.(net.Conn)
	return &Writer{w: w, vector: isConn, pending: make([]byte, 0, 4<<10)}
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
// frames stay pending until Flush; a large one is written at once.
func (w *Writer) Queue(t Type, head, body []byte) error {
	n := len(head) + len(body)
	if n > MaxPayloadLimit {
		return &TooLargeError{Length: uint32(min(n, 1<<32-1)), Max: MaxPayloadLimit}
	}
	var hdr [HeaderSize]byte
	PutHeader(hdr[:], Header{Length: uint32(n), Type: t})
	w.pending = append(w.pending, hdr[:]...)
	w.pending = append(w.pending, head...)
	if len(body) <= coalesceLimit {
		w.pending = append(w.pending, body...)
		if len(w.pending) >= flushThreshold {
			return w.Flush()
		}
		return nil
	}
	err := w.write(w.pending, body)
	w.pending = w.pending[:0]
	return err
}

// Pending returns the number of bytes queued but not yet written.
func (w *Writer) Pending() int { return len(w.pending) }

// Flush writes every queued frame.
func (w *Writer) Flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.write(w.pending, nil)
	w.pending = w.pending[:0]
	return err
}

func (w *Writer) write(a, b []byte) error {
	if w.vector && len(b) > 0 {
		w.vec[0], w.vec[1] = a, b
		w.bufs = w.vec[:2]
		_, err := w.bufs.WriteTo(w.w)
		w.vec[0], w.vec[1] = nil, nil
		return err
	}
	if err := writeAll(w.w, a); err != nil {
		return err
	}
	return writeAll(w.w, b)
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
