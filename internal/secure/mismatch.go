package secure

import (
	"errors"
	"io"
	"syscall"
)

// A client and a server that disagree on TLS (one of them insecure) see each other close the
// connection. These name the cause where it shows.

// PlainClientHint is added to the error of a plain (insecure) client whose server closed the
// connection at its first frame, as a TLS server does.
const PlainClientHint = "if it speaks TLS, the client must too, not insecure"

// ClosedByPeer reports whether err is the peer closing or resetting the connection.
func ClosedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// LooksLikeTLS reports whether b, the first bytes of a connection, begin a TLS handshake
// record (content type 22, version 3.x): a TLS client, where plain frames were expected.
func LooksLikeTLS(b []byte) bool { return len(b) >= 3 && b[0] == 0x16 && b[1] == 0x03 }
