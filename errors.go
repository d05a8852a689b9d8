package braid

import (
	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/session"
)

// Errors callers branch on. Each is matched with errors.Is both when Braid detects the condition
// locally and when the peer reports it in an ERROR frame (a *frame.RemoteError); they are the
// same values as package frame's, so either package's sentinel matches.
var (
	// ErrFrameTooLarge: a frame's declared length exceeds the receiver's maximum.
	ErrFrameTooLarge = frame.ErrFrameTooLarge
	// ErrUnknownType: a frame's type is not assigned.
	ErrUnknownType = frame.ErrUnknownType
	// ErrProtocol: a frame was malformed or not allowed at that point of the conversation.
	ErrProtocol = frame.ErrProtocol
	// ErrTimeout: the peer let an idle, read or handshake deadline pass.
	ErrTimeout = frame.ErrTimeout
	// ErrShuttingDown: the peer is shutting down.
	ErrShuttingDown = frame.ErrShuttingDown
	// ErrInternal: the peer failed for a reason that is not the sender's fault.
	ErrInternal = frame.ErrInternal
	// ErrServerClosed is returned by Listener.Accept after Close or Shutdown.
	ErrServerClosed = frame.ErrServerClosed
	// ErrUnknownSession: no session has the given id.
	ErrUnknownSession = frame.ErrUnknownSession
	// ErrBadToken: a path's attach proof does not verify: it has no right to join the session.
	ErrBadToken = frame.ErrBadToken
	// ErrTooManyPaths: the session already has its maximum number of paths.
	ErrTooManyPaths = frame.ErrTooManyPaths
	// ErrTooManySessions: the server already has its maximum number of sessions.
	ErrTooManySessions = frame.ErrTooManySessions
	// ErrInvalidChunk: a chunk broke the chunking rules.
	ErrInvalidChunk = frame.ErrInvalidChunk
	// ErrOverBudget: the peer exceeded the session's memory budget.
	ErrOverBudget = frame.ErrOverBudget
	// ErrBadOptions: a Config that Validate rejects, or session options outside the peer's
	// limits.
	ErrBadOptions = frame.ErrBadOptions
	// ErrSessionClosed: the session was closed or aborted.
	ErrSessionClosed = frame.ErrSessionClosed
	// ErrMessageTooLarge: a message above MaxMessageSize, or above half the peer's window.
	ErrMessageTooLarge = session.ErrMessageTooLarge
	// ErrPathLost: a path failed in a way that may have lost data, so the session cannot go on.
	ErrPathLost = session.ErrPathLost
	// ErrUndelivered: Close could not confirm that the peer received everything sent — the
	// linger expired, the session was lost or aborted, or the peer closed first.
	ErrUndelivered = session.ErrUndelivered
	// ErrUnauthorized: the server accepts only authenticated clients (Config.AuthorizedClients,
	// a client certificate chain it verifies, or Config.Token) and this one was not.
	ErrUnauthorized = frame.ErrUnauthorized
	// ErrTLS: a path's TLS handshake failed: the peer's certificate was not trusted, the two
	// ends share no acceptable version or key exchange, or the peer does not speak TLS.
	ErrTLS = session.ErrTLS
	// ErrFingerprint: the server's key is not the one Config.ServerFingerprint pins.
	ErrFingerprint = session.ErrFingerprint
	// ErrNotPostQuantum: a path agreed a classical key exchange although
	// Config.RequirePostQuantum demands X25519MLKEM768.
	ErrNotPostQuantum = session.ErrNotPostQuantum
)
