//go:build !linux

package mux

import "io"

// waitReadable returns at once where sockets cannot be polled without a read: the reader takes
// a full-size buffer.
func waitReadable(io.Reader) (int, error) { return -1, nil }
