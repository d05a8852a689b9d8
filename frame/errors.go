package frame

import (
	"errors"
	"fmt"

	"github.com/braidnet/braid/internal/wire"
)

// Code is the reason code carried by an ERROR frame (see docs/PROTOCOL.md, "Error codes"). Codes
// 0x0001–0x00FF belong to the frame layer, 0x0100–0x01FF to the session layer; the session
// package braid uses the same values.
type Code uint16

// Error codes.
const (
	CodeProtocol        = Code(wire.CodeProtocol)        // malformed or unexpected frame
	CodeFrameTooLarge   = Code(wire.CodeFrameTooLarge)   // declared length above the receiver's maximum
	CodeUnknownType     = Code(wire.CodeUnknownType)     // unassigned frame type
	CodeTimeout         = Code(wire.CodeTimeout)         // idle or read deadline passed
	CodeShuttingDown    = Code(wire.CodeShuttingDown)    // the peer is shutting down
	CodeInternal        = Code(wire.CodeInternal)        // the peer failed in a way that is not the sender's fault
	CodeUnknownSession  = Code(wire.CodeUnknownSession)  // SESSION_ATTACH or chunk for a session that does not exist
	CodeBadToken        = Code(wire.CodeBadToken)        // SESSION_ATTACH whose proof does not verify
	CodeTooManyPaths    = Code(wire.CodeTooManyPaths)    // the session already has its maximum number of paths
	CodeTooManySessions = Code(wire.CodeTooManySessions) // the server already has its maximum number of sessions
	CodeInvalidChunk    = Code(wire.CodeInvalidChunk)    // a CHUNK that breaks the chunking rules
	CodeOverBudget      = Code(wire.CodeOverBudget)      // the peer exceeded the session's memory budget
	CodeBadOptions      = Code(wire.CodeBadOptions)      // SESSION_NEW options outside the receiver's limits
	CodeSessionClosed   = Code(wire.CodeSessionClosed)   // the session was closed or aborted
	CodeUnauthorized    = Code(wire.CodeUnauthorized)    // a client the server requires to authenticate did not
)

// String returns the code's protocol name, such as "FRAME_TOO_LARGE".
func (c Code) String() string { return wire.Code(c).String() }

// Errors callers branch on, one per ERROR code (and two for a closed Server or Client). Each is
// matched with errors.Is both when the condition is detected locally and when the peer reports
// it in an ERROR frame (see RemoteError). Package braid re-exports them.
var (
	// ErrFrameTooLarge: a frame's declared length exceeds the receiver's maximum.
	ErrFrameTooLarge = wire.ErrFrameTooLarge
	// ErrUnknownType: a frame's type is not assigned.
	ErrUnknownType = wire.ErrUnknownType
	// ErrProtocol: a frame was malformed or not allowed at that point of the conversation.
	ErrProtocol = errors.New("braid: protocol error")
	// ErrTimeout: the peer let an idle, read or handshake deadline pass.
	ErrTimeout = errors.New("braid: peer timed out")
	// ErrShuttingDown: the peer is shutting down.
	ErrShuttingDown = errors.New("braid: peer is shutting down")
	// ErrInternal: the peer failed for a reason that is not the sender's fault.
	ErrInternal = errors.New("braid: peer internal error")
	// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
	ErrServerClosed = errors.New("braid: server closed")
	// ErrClientClosed is returned by Client methods after Close.
	ErrClientClosed = errors.New("braid: client closed")

	// ErrUnknownSession: no session has the given id.
	ErrUnknownSession = errors.New("braid: unknown session")
	// ErrBadToken: an attach proof does not verify: the connection has no right to join the
	// session.
	ErrBadToken = errors.New("braid: bad attach proof")
	// ErrTooManyPaths: the session already has its maximum number of paths.
	ErrTooManyPaths = errors.New("braid: too many paths")
	// ErrTooManySessions: the server already has its maximum number of sessions.
	ErrTooManySessions = errors.New("braid: too many sessions")
	// ErrInvalidChunk: a chunk broke the chunking rules.
	ErrInvalidChunk = errors.New("braid: invalid chunk")
	// ErrOverBudget: the peer exceeded the session's memory budget.
	ErrOverBudget = errors.New("braid: session memory budget exceeded")
	// ErrBadOptions: session options or a configuration outside the allowed limits.
	ErrBadOptions = errors.New("braid: session options rejected")
	// ErrSessionClosed: the session was closed or aborted.
	ErrSessionClosed = errors.New("braid: session closed")
	// ErrUnauthorized: the server accepts only authenticated clients (a client certificate it
	// trusts or its token), and this one was not.
	ErrUnauthorized = errors.New("braid: client not authorized")
)

// codes lists each code with the sentinel it stands for, in code order, so that CodeFor is
// deterministic.
var codes = []struct {
	code Code
	err  error
}{
	{CodeProtocol, ErrProtocol},
	{CodeFrameTooLarge, ErrFrameTooLarge},
	{CodeUnknownType, ErrUnknownType},
	{CodeTimeout, ErrTimeout},
	{CodeShuttingDown, ErrShuttingDown},
	{CodeInternal, ErrInternal},
	{CodeUnknownSession, ErrUnknownSession},
	{CodeBadToken, ErrBadToken},
	{CodeTooManyPaths, ErrTooManyPaths},
	{CodeTooManySessions, ErrTooManySessions},
	{CodeInvalidChunk, ErrInvalidChunk},
	{CodeOverBudget, ErrOverBudget},
	{CodeBadOptions, ErrBadOptions},
	{CodeSessionClosed, ErrSessionClosed},
	{CodeUnauthorized, ErrUnauthorized},
}

// RemoteError is an ERROR frame received from the peer. errors.Is(err, ErrX) holds when the
// frame's code stands for ErrX, so callers need not distinguish local from remote detection.
type RemoteError struct {
	Code    Code
	Message string
}

// Error describes the peer's ERROR: its code and message.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("braid: peer reported %s: %s", e.Code, e.Message)
}

// Is reports whether the error's code stands for target.
func (e *RemoteError) Is(target error) bool {
	for _, c := range codes {
		if c.code == e.Code {
			return c.err == target
		}
	}
	return false
}

// CodeFor returns the ERROR code that describes err to a peer: the code of the first sentinel
// (in code order) that err matches, TIMEOUT for a deadline expiry, PROTOCOL for a malformed
// payload, and INTERNAL for anything else.
func CodeFor(err error) Code {
	if errors.Is(err, wire.ErrMalformed) {
		return CodeProtocol
	}
	if IsTimeout(err) {
		return CodeTimeout
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

// IsTimeout reports whether err is a deadline expiry (it satisfies net.Error's Timeout).
func IsTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// remoteError turns a received ERROR frame into a RemoteError.
func remoteError(e wire.ErrorFrame) *RemoteError {
	return &RemoteError{Code: Code(e.Code), Message: e.Message}
}
