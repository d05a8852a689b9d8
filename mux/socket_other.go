//go:build !unix

package mux

import "io"

// readInto reads once from r into a buffer from bufpool of headerLen + at most limit bytes (see
// the Linux version, which waits for a socket to be readable before taking the buffer).
func readInto(r io.Reader, limit int) ([]byte, int, error) { return readPlain(r, limit) }
