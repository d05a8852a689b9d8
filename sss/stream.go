package sss

import (
	"errors"
	"fmt"
	"io"
)

// ErrClosed is returned by SplitWriter.Write after Close.
var ErrClosed = errors.New("sss: split writer is closed")

// SplitWriter splits everything written to it and writes share i to
// writer i: after n bytes have been written, each writer has received
// exactly n share bytes, so the writers' outputs are ordinary shares (for
// example gfsplit-compatible files). Bytes are independent, so the stream
// may be cut into Write calls of any sizes.
//
// A SplitWriter is not safe for concurrent use.
type SplitWriter struct {
	s      *Splitter
	ws     []io.Writer
	outs   [][]byte // per-share output buffers, one block each
	dst    [][]byte // scratch headers into outs
	err    error
	closed bool
}

// NewSplitWriter returns a SplitWriter with threshold k writing the share
// for xs[i] to ws[i]. A nil xs means 1, 2, …, len(ws). Options are as for
// NewSplitter. It fails with ErrInvalidX if len(xs) ≠ len(ws) or a
// coordinate is bad, and with ErrInvalidThreshold unless
// 2 ≤ k ≤ len(ws) ≤ 255.
func NewSplitWriter(ws []io.Writer, k int, xs []byte, opts ...Option) (*SplitWriter, error) {
	if xs == nil {
		if err := checkThreshold(k, len(ws)); err != nil {
			return nil, err
		}
		xs = seqXs(len(ws))
	}
	if len(xs) != len(ws) {
		return nil, fmt.Errorf("%w: %d coordinates for %d writers", ErrInvalidX, len(xs), len(ws))
	}
	s, err := NewSplitter(k, xs, opts...)
	if err != nil {
		return nil, err
	}
	w := &SplitWriter{s: s, ws: append([]io.Writer(nil), ws...)}
	block := s.plan.block
	backing := make([]byte, len(ws)*block)
	w.outs = make([][]byte, len(ws))
	for i := range w.outs {
		w.outs[i] = backing[i*block : (i+1)*block : (i+1)*block]
	}
	w.dst = make([][]byte, len(ws))
	return w, nil
}

// Write splits p and writes the resulting share bytes to every writer.
// It returns the number of bytes of p whose shares were written to all
// writers. After an error from a writer, every later Write returns that
// error.
func (w *SplitWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	done := 0
	for done < len(p) {
		c := min(len(p)-done, len(w.outs[0]))
		for i := range w.dst {
			w.dst[i] = w.outs[i][:c]
		}
		if err := w.s.Split(w.dst, p[done:done+c]); err != nil {
			w.err = err
			return done, err
		}
		for i, out := range w.dst {
			n, err := w.ws[i].Write(out)
			if err == nil && n != len(out) {
				err = io.ErrShortWrite
			}
			if err != nil {
				w.err = fmt.Errorf("sss: writing share %d (x=%d): %w", i, w.s.plan.xs[i], err)
				return done, w.err
			}
		}
		done += c
	}
	return done, nil
}

// Close wipes the writer's buffers and makes further writes fail. It does
// not close the underlying writers. It returns the first write error, if
// any.
func (w *SplitWriter) Close() error {
	if !w.closed {
		w.closed = true
		for _, o := range w.outs {
			clear(o[:cap(o)])
		}
		clear(w.dst)
	}
	return w.err
}

// CombineReader reads shares from several readers in lockstep and yields
// the recovered secret.
//
// A CombineReader is not safe for concurrent use.
type CombineReader struct {
	c    *Combiner
	rs   []io.Reader
	bufs [][]byte
	ys   [][]byte
	err  error // sticky: io.EOF once the shares end, or a failure
}

// combineBlock is how many bytes a CombineReader reads from each share
// reader at a time.
const combineBlock = 32 << 10

// NewCombineReader returns a reader recovering the secret from share
// streams: rs[i] yields the Y bytes of the share at xs[i]. All shares are
// interpolated, so as with Combine the caller must supply at least the
// threshold number of them. The readers are read one after another (not
// concurrently) in blocks, with io.ReadFull. It fails with
// ErrTooFewShares for fewer than two readers and with ErrInvalidX if
// len(xs) ≠ len(rs) or a coordinate is bad.
func NewCombineReader(rs []io.Reader, xs []byte) (*CombineReader, error) {
	if len(xs) != len(rs) {
		return nil, fmt.Errorf("%w: %d coordinates for %d readers", ErrInvalidX, len(xs), len(rs))
	}
	c, err := NewCombiner(0, xs)
	if err != nil {
		return nil, err
	}
	r := &CombineReader{c: c, rs: append([]io.Reader(nil), rs...)}
	backing := make([]byte, len(rs)*combineBlock)
	r.bufs = make([][]byte, len(rs))
	for i := range r.bufs {
		r.bufs[i] = backing[i*combineBlock : (i+1)*combineBlock : (i+1)*combineBlock]
	}
	r.ys = make([][]byte, len(rs))
	return r, nil
}

// Read fills p with recovered secret bytes. It returns io.EOF when all
// share streams end together, an error wrapping ErrShareLength when they
// end at different lengths, and any other reader error as is (wrapped).
func (r *CombineReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := min(len(p), combineBlock)
	got := -1
	short := false
	for i, rd := range r.rs {
		n, err := io.ReadFull(rd, r.bufs[i][:want])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			short = true
		case err != nil:
			r.err = fmt.Errorf("sss: reading share %d (x=%d): %w", i, r.c.xs[i], err)
			return 0, r.err
		}
		if got >= 0 && n != got {
			r.err = fmt.Errorf("%w: share streams end at different lengths", ErrShareLength)
			return 0, r.err
		}
		got = n
		r.ys[i] = r.bufs[i][:n]
	}
	if short {
		r.err = io.EOF
	}
	if got == 0 {
		return 0, r.err
	}
	if err := r.c.Combine(p[:got], r.ys); err != nil {
		r.err = err
		return 0, err
	}
	return got, nil
}
