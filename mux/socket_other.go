//go:build !unix

package mux

import (
	"io"
	"syscall"
)

// source reads what a stream sends (ReadFrom) into buffers from bufpool of headerLen + at most
// limit bytes (see the Unix version, which waits for a socket to be readable before taking the
// buffer).
type source struct{ r io.Reader }

// newSource returns a source reading r.
func newSource(r io.Reader) *source { return &source{r: r} }

// read reads once.
func (s *source) read(limit int) ([]byte, int, error) { return readPlain(s.r, limit) }

// socketOf finds no socket here: reads and writes go through io.Reader and io.Writer (the Unix
// version reads and writes sockets directly when they are ready).
func socketOf(any) syscall.RawConn { return nil }

// writeFD is never called here: socketOf finds no socket.
func (o *output) writeFD(uintptr) bool { return true }
