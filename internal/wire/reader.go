package wire

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultReadBufferSize is the size of a Reader's internal read buffer. It batches the small
// frames that arrive back to back into one read system call; large payloads bypass it.
const DefaultReadBufferSize = 32 << 10

// growStep bounds how far a payload buffer grows ahead of the bytes actually received, so that
// a peer announcing a large frame and then stalling costs at most this much memory beyond what it
// sent.
const growStep = 64 << 10

// Reader decodes frames from a byte stream. It reads each frame with exact-length reads, checks
// the header against its limits before reading or allocating the payload, and reuses one payload
// buffer across frames, so that steady-state reads do not allocate.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader // nil while released (Release)
	size  int           // br's buffer size
	src   *countingReader
	pre   prefixReader // what br reads: src, after what a released Reader's first read brought
	first [firstRead]byte
	max   int
	buf   []byte
}

// firstRead is how much a released Reader reads before it takes a buffer back.
const firstRead = 64

// prefixReader yields b, then reads r.
type prefixReader struct {
	b []byte
	r io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) > 0 {
		n := copy(b, p.b)
		p.b = p.b[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// bufPools holds released read buffers, one pool per buffer size.
var bufPools sync.Map // int → *sync.Pool of *bufio.Reader

func bufPool(size int) *sync.Pool {
	if p, ok := bufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := bufPools.LoadOrStore(size, &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, size) }})
	return p.(*sync.Pool)
}

// Release gives the Reader's internal buffer back to a pool if nothing is buffered, between
// frames, so that a connection waiting for its next frame for a long time (an idle one) holds no
// buffer. The next read takes one again once bytes have come: it first reads at most 64 bytes
// straight from the stream, then continues buffered.
func (r *Reader) Release() {
	if r.br == nil || r.br.Buffered() > 0 {
		return
	}
	r.br.Reset(nil)
	bufPool(r.size).Put(r.br)
	r.br = nil
}

// acquire gives a released Reader a buffer again, once a read of the stream has brought bytes: a
// read that fails before that (a deadline, the end of the stream) consumes nothing.
func (r *Reader) acquire() error {
	if r.br != nil {
		return nil
	}
	n, err := r.src.Read(r.first[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	// An error with the bytes (the end of the stream, say) comes again at the next read.
	r.pre.b = r.first[:n]
	br := bufPool(r.size).Get().(*bufio.Reader)
	br.Reset(&r.pre)
	r.br = br
	return nil
}

// countingReader counts the bytes read from the stream, for liveness checks by other goroutines.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// NewReader returns a Reader that rejects payloads longer than maxPayload bytes. A maxPayload of 0
// means DefaultMaxPayload; values above MaxPayloadLimit are clamped to it.
func NewReader(r io.Reader, maxPayload int) *Reader {
	return NewReaderSize(r, maxPayload, DefaultReadBufferSize)
}

// NewReaderSize is NewReader with an explicit internal buffer size.
func NewReaderSize(r io.Reader, maxPayload, bufSize int) *Reader {
	src := &countingReader{r: r}
	rd := &Reader{src: src, size: bufSize, max: ClampMaxPayload(maxPayload)}
	rd.pre.r = src
	rd.br = bufio.NewReaderSize(&rd.pre, bufSize)
	return rd
}

// ClampMaxPayload maps a configured maximum payload length to the one in force: 0 or less means
// DefaultMaxPayload, and nothing exceeds MaxPayloadLimit.
func ClampMaxPayload(n int) int {
	switch {
	case n <= 0:
		return DefaultMaxPayload
	case n > MaxPayloadLimit:
		return MaxPayloadLimit
	}
	return n
}

// BytesRead returns how many bytes the Reader has taken from the stream so far, including any
// still buffered. Unlike the Reader's other methods it is safe to call from any goroutine, so that
// a watchdog can tell a slow stream from a dead one even in the middle of a large frame.
func (r *Reader) BytesRead() int64 { return r.src.n.Load() }

// MaxPayload returns the largest payload the Reader accepts.
func (r *Reader) MaxPayload() int { return r.max }

// SetMaxPayload changes the largest payload the Reader accepts (n ≤ 0 means the default), for
// the frames it reads from now on: a server accepts only small frames before a connection has
// authenticated.
func (r *Reader) SetMaxPayload(n int) { r.max = ClampMaxPayload(n) }

// Wait blocks until at least one byte of the next frame is available, without consuming it. A
// server uses it to tell an idle connection (waiting here) from one with a frame in flight.
func (r *Reader) Wait() error {
	if err := r.acquire(); err != nil {
		return err
	}
	_, err := r.br.Peek(1)
	return err
}

// Buffered returns the number of bytes already read from the stream but not yet decoded.
func (r *Reader) Buffered() int {
	if r.br == nil {
		return 0
	}
	return r.br.Buffered()
}

// ReadFrame reads the next frame. At a clean end of stream between frames it returns io.EOF; a
// stream that ends inside a frame yields an error wrapping io.ErrUnexpectedEOF. A header whose
// length exceeds the maximum yields an error matching ErrFrameTooLarge, and an unassigned type one
// matching ErrUnknownType; in both cases no payload byte has been consumed.
//
// The returned Frame's Payload aliases the Reader's buffer and is valid only until the next call.
func (r *Reader) ReadFrame() (Frame, error) {
	h, err := r.ReadHeader()
	if err != nil {
		return Frame{}, err
	}
	p, err := r.ReadPayload(h)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Type: h.Type, Payload: p}, nil
}

// ReadPayload reads the payload of the frame whose header ReadHeader just returned. The result
// aliases the Reader's buffer and is valid only until the next read.
func (r *Reader) ReadPayload(h Header) ([]byte, error) {
	p, err := r.readPayload(int(h.Length))
	if err != nil {
		return nil, fmt.Errorf("wire: reading %s payload of %d bytes: %w", h.Type, h.Length, err)
	}
	return p, nil
}

// ReadHeader reads and validates the next header only. The caller must then consume exactly
// Length payload bytes with ReadPayload, or ReadFull and Discard, before the next header.
//
// A read error before the whole header has arrived consumes nothing: after a timeout (a read
// deadline used to interrupt a waiting reader) the next ReadHeader starts where this one did.
func (r *Reader) ReadHeader() (Header, error) {
	if err := r.acquire(); err != nil {
		return Header{}, err
	}
	b, err := r.br.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			return Header{}, fmt.Errorf("wire: truncated frame header: %w", io.ErrUnexpectedEOF)
		}
		return Header{}, err
	}
	h := ParseHeader(b)
	r.br.Discard(HeaderSize)
	if int64(h.Length) > int64(r.max) {
		return h, &TooLargeError{Length: h.Length, Max: r.max}
	}
	if !h.Type.Known() {
		return h, &UnknownTypeError{Type: h.Type}
	}
	return h, nil
}

// readPayload reads exactly n bytes into the reusable buffer. When the buffer must grow it grows
// in steps as bytes arrive rather than all at once, so memory follows what the peer actually sent.
func (r *Reader) readPayload(n int) ([]byte, error) {
	if n == 0 {
		return r.buf[:0], nil
	}
	if err := r.acquire(); err != nil {
		return nil, unexpected(err)
	}
	if n <= cap(r.buf) {
		r.buf = r.buf[:n]
		if _, err := io.ReadFull(r.br, r.buf); err != nil {
			return nil, unexpected(err)
		}
		return r.buf, nil
	}
	buf := r.buf[:0]
	for len(buf) < n {
		next := min(n, max(2*cap(buf), len(buf)+growStep))
		if next > cap(buf) {
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r.br, buf[len(buf):next])
		buf = buf[:len(buf)+m]
		if err != nil {
			r.buf = buf[:0]
			return nil, unexpected(err)
		}
	}
	r.buf = buf
	return buf, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadFull reads exactly len(p) bytes of the current frame's payload into p. With ReadHeader it
// lets a receiver decode a payload's fixed prefix and then place the rest straight into its final
// destination, without an intermediate buffer. The caller must consume exactly the header's Length
// bytes, in any mix of ReadFull and Discard, before the next ReadHeader.
func (r *Reader) ReadFull(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := r.acquire(); err != nil {
		return fmt.Errorf("wire: reading payload: %w", unexpected(err))
	}
	if _, err := io.ReadFull(r.br, p); err != nil {
		return fmt.Errorf("wire: reading payload: %w", unexpected(err))
	}
	return nil
}

// ReadSome reads at most len(p) bytes of the current frame's payload into p, at least one unless
// it fails: what is buffered, else what one read of the connection brings. A caller that must
// look up between reads (whether a payload is still wanted) loops on it instead of ReadFull,
// making no more reads of the connection than ReadFull would.
func (r *Reader) ReadSome(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := r.acquire(); err != nil {
		return 0, fmt.Errorf("wire: reading payload: %w", unexpected(err))
	}
	n, err := r.br.Read(p)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return 0, fmt.Errorf("wire: reading payload: %w", unexpected(err))
}

// Discard skips n bytes of the current frame's payload without storing them, using no memory
// beyond the Reader's fixed read buffer however large the frame.
func (r *Reader) Discard(n int) error {
	if n == 0 {
		return nil
	}
	if err := r.acquire(); err != nil {
		return fmt.Errorf("wire: discarding payload: %w", unexpected(err))
	}
	if _, err := r.br.Discard(n); err != nil {
		return fmt.Errorf("wire: discarding payload: %w", unexpected(err))
	}
	return nil
}
