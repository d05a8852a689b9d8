package session

import (
	"errors"

	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// The engine reports the frame protocol's sentinels (an ERROR frame's code stands for the same
// error whichever product sent it), plus three of its own. Package braid re-exports all of them.
var (
	ErrFrameTooLarge   = frame.ErrFrameTooLarge
	ErrUnknownType     = frame.ErrUnknownType
	ErrProtocol        = frame.ErrProtocol
	ErrTimeout         = frame.ErrTimeout
	ErrShuttingDown    = frame.ErrShuttingDown
	ErrInternal        = frame.ErrInternal
	ErrServerClosed    = frame.ErrServerClosed
	ErrUnknownSession  = frame.ErrUnknownSession
	ErrBadToken        = frame.ErrBadToken
	ErrTooManyPaths    = frame.ErrTooManyPaths
	ErrTooManySessions = frame.ErrTooManySessions
	ErrInvalidChunk    = frame.ErrInvalidChunk
	ErrOverBudget      = frame.ErrOverBudget
	ErrBadOptions      = frame.ErrBadOptions
	ErrSessionClosed   = frame.ErrSessionClosed
	ErrUnauthorized    = frame.ErrUnauthorized

	// ErrMessageTooLarge: a message above MaxMessageSize, or above half the peer's window.
	ErrMessageTooLarge = errors.New("braid: message too large")
	// ErrPathLost: a path failed in a way that may have lost data, so the session cannot go on.
	ErrPathLost = errors.New("braid: path lost")
	// ErrUndelivered: Close could not confirm that the peer received everything sent — the
	// linger expired, the session was lost or aborted, or the peer closed first.
	ErrUndelivered = errors.New("braid: data not delivered")

	// ErrTLS: a path's TLS handshake failed (the peer's certificate was not trusted, no key
	// exchange or version was acceptable to both, the peer does not speak TLS, ...).
	ErrTLS = errors.New("braid: TLS handshake failed")
	// ErrFingerprint: the server's key is not the one pinned (ServerFingerprint).
	ErrFingerprint = secure.ErrFingerprint
	// ErrNotPostQuantum: a path agreed a classical key exchange where RequirePostQuantum demands
	// X25519MLKEM768.
	ErrNotPostQuantum = secure.ErrClassical
)

// RemoteError is an ERROR frame received from the peer.
type RemoteError = frame.RemoteError

// remoteError turns a received ERROR frame into a RemoteError.
func remoteError(e wire.ErrorFrame) *RemoteError {
	return &RemoteError{Code: frame.Code(e.Code), Message: e.Message}
}

// codeFor chooses the ERROR code that describes err to the peer.
func codeFor(err error) wire.Code { return wire.Code(frame.CodeFor(err)) }

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool { return frame.IsTimeout(err) }
