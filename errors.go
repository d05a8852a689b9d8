package braid

import (
	"errors"
	"fmt"

	"github.com/braidnet/braid/internal/wire"
)

// ErrorCode is the reason code carried by an ERROR frame (see docs/PROTOCOL.md, "Error codes").
type ErrorCode = wire.Code

// Errors callers branch on. Each is matched with errors.Is both when Braid detects the condition
// locally and when the peer reports it in an ERROR frame (see RemoteError).
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
	// ErrBadToken: the attach token does not match the session's.
	ErrBadToken = errors.New("braid: bad attach token")
	// ErrTooManyPaths: the session already has its maximum number of paths.
	ErrTooManyPaths = errors.New("braid: too many paths")
	// ErrTooManySessions: the server already has its maximum number of sessions.
	ErrTooManySessions = errors.New("braid: too many sessions")
	// ErrInvalidChunk: a chunk broke the chunking rules.
	ErrInvalidChunk = errors.New("braid: invalid chunk")
	// ErrOverBudget: the peer exceeded the session's memory budget.
	ErrOverBudget = errors.New("braid: session memory budget exceeded")
	// ErrBadOptions: session options outside the receiver's limits, or a Config.Mode that is
	// not a dispersal mode or whose N is not Config.Paths (other Config fields that Validate
	// rejects are reported without a sentinel).
	ErrBadOptions = errors.New("braid: session options rejected")
	// ErrSessionClosed: the session was closed or aborted.
	ErrSessionClosed = errors.New("braid: session closed")
	// ErrMessageTooLarge: a message above MaxMessageSize, or above half the peer's window.
	ErrMessageTooLarge = errors.New("braid: message too large")
	// ErrPathLost: a path failed in a way that may have lost data, so the session cannot go on.
	ErrPathLost = errors.New("braid: path lost")
)

// codeErrors maps each wire error code to the sentinel it stands for.
var codeErrors = map[wire.Code]error{
	wire.CodeProtocol:        ErrProtocol,
	wire.CodeFrameTooLarge:   ErrFrameTooLarge,
	wire.CodeUnknownType:     ErrUnknownType,
	wire.CodeTimeout:         ErrTimeout,
	wire.CodeShuttingDown:    ErrShuttingDown,
	wire.CodeInternal:        ErrInternal,
	wire.CodeUnknownSession:  ErrUnknownSession,
	wire.CodeBadToken:        ErrBadToken,
	wire.CodeTooManyPaths:    ErrTooManyPaths,
	wire.CodeTooManySessions: ErrTooManySessions,
	wire.CodeInvalidChunk:    ErrInvalidChunk,
	wire.CodeOverBudget:      ErrOverBudget,
	wire.CodeBadOptions:      ErrBadOptions,
	wire.CodeSessionClosed:   ErrSessionClosed,
}

// RemoteError is an ERROR frame received from the peer. errors.Is(err, ErrX) holds when the
// frame's code stands for ErrX, so callers need not distinguish local from remote detection.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("braid: peer reported %s: %s", e.Code, e.Message)
}

// Is reports whether the error's code stands for target.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeErrors[e.Code]
	return ok && s == target
}

// codeFor chooses the ERROR code that describes err to the peer.
func codeFor(err error) wire.Code {
	if errors.Is(err, wire.ErrMalformed) {
		return wire.CodeProtocol
	}
	if isTimeout(err) {
		return wire.CodeTimeout
	}
	for code, s := range codeErrors {
		if errors.Is(err, s) {
			return code
		}
	}
	return wire.CodeInternal
}

// isTimeout reports whether err is a deadline expiry (it satisfies net.Error's Timeout).
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
