//go:build !unix

package mux

import "io"

// source reads what a stream sends (ReadFrom) into buffers from bufpool of headerLen + at most
// limit bytes (see the Unix version, which waits for a socket to be readable before taking the
// buffer).
type source struct{ r io.Reader }

// newSource returns a source reading r.
func newSource(r io.Reader) *source { return &source{r: r} }

// read reads once.
func (s *source) read(limit int) ([]byte, int, error) { return readPlain(s.r, limit) }

// useSocket leaves the output to io.Writer here (the Unix version writes small frames to a
// socket directly).
func (o *output) useSocket(io.Writer) {}
