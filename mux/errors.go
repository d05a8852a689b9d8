package mux

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Code says why a stream could not be opened (in a REPLY) or was aborted (in an RST). The values
// are part of the wire protocol.
type Code uint8

// Codes; the numbers are pinned by TestWireConstantsPinned.
const (
	CodeOK              Code = 0  // the target was reached (REPLY only)
	CodeFailure         Code = 1  // any other failure
	CodeNotAllowed      Code = 2  // the target is not on the server's allow-list
	CodeRefused         Code = 3  // the target refused the connection
	CodeNetUnreachable  Code = 4  // no route to the target's network
	CodeHostUnreachable Code = 5  // no route to the target's host
	CodeNotFound        Code = 6  // the target's host name does not resolve
	CodeTimeout         Code = 7  // the target did not answer in time
	CodeTooManyStreams  Code = 8  // the peer has as many streams open as it allows
	CodeReset           Code = 9  // the far end (or the target) reset the connection
	CodeCancel          Code = 10 // the peer closed the stream before its end
	CodeNoTarget        Code = 11 // the target is empty and the peer has no default for it
)

var codeText = map[Code]string{
	CodeOK: "ok", CodeFailure: "failure", CodeNotAllowed: "target not allowed",
	CodeRefused: "connection refused", CodeNetUnreachable: "network unreachable",
	CodeHostUnreachable: "host unreachable", CodeNotFound: "host not found", CodeTimeout: "timed out",
	CodeTooManyStreams: "too many streams", CodeReset: "connection reset", CodeCancel: "cancelled",
	CodeNoTarget: "no target",
}

// String returns the code's meaning in a few words.
func (c Code) String() string {
	if s, ok := codeText[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// Errors a caller can match with errors.Is. An *OpenError or *ResetError matches the sentinel
// for its code as well as ErrRefused or ErrReset.
var (
	// ErrRefused: the peer answered OPEN with a failure (an *OpenError says which).
	ErrRefused = errors.New("mux: stream refused")
	// ErrReset: the stream was aborted by the peer (a *ResetError says why).
	ErrReset = errors.New("mux: stream reset")
	// ErrNotAllowed: the target is not on the server's allow-list.
	ErrNotAllowed = errors.New("mux: target not allowed")
	// ErrTargetRefused: the target refused the connection.
	ErrTargetRefused = errors.New("mux: target refused the connection")
	// ErrUnreachable: the target's network or host is unreachable.
	ErrUnreachable = errors.New("mux: target unreachable")
	// ErrNoTarget: the stream named no target and the peer has no default for it.
	ErrNoTarget = errors.New("mux: no target")
	// ErrNotFound: the target's host name does not resolve.
	ErrNotFound = errors.New("mux: target host not found")
	// ErrTimeout: the target did not answer in time.
	ErrTimeout = errors.New("mux: target timed out")
	// ErrTooManyStreams: a stream limit was reached (ours on Open, or the peer's).
	ErrTooManyStreams = errors.New("mux: too many streams")
	// ErrProtocol: the peer broke the mux protocol; the mux is closed and its transport aborted.
	ErrProtocol = errors.New("mux: protocol violation")
	// ErrClosed: the stream, or the whole mux, was closed on this side. It matches net.ErrClosed.
	ErrClosed = fmt.Errorf("mux: %w", net.ErrClosed)
	// ErrSessionEnded: the mux ended (its session closed or failed, or a protocol violation)
	// while the stream was open; the error also wraps the cause.
	ErrSessionEnded = errors.New("mux: session ended")
	// ErrNotMux: the peer's first message was not a mux HELLO.
	ErrNotMux = errors.New("mux: peer does not speak the mux protocol")
)

var codeErr = map[Code]error{
	CodeNotAllowed: ErrNotAllowed, CodeRefused: ErrTargetRefused, CodeNetUnreachable: ErrUnreachable,
	CodeHostUnreachable: ErrUnreachable, CodeNotFound: ErrNotFound, CodeTimeout: ErrTimeout,
	CodeTooManyStreams: ErrTooManyStreams, CodeNoTarget: ErrNoTarget,
}

// OpenError is the peer's refusal of an OPEN.
type OpenError struct {
	Target string // what the OPEN asked for
	Code   Code   // why the peer refused
	Reason string // the peer's explanation, for people; may be empty
}

// Error describes the refusal.
func (e *OpenError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("open %s: %v: %s", e.Target, e.Code, e.Reason)
	}
	return fmt.Sprintf("open %s: %v", e.Target, e.Code)
}

// Is matches ErrRefused and the sentinel for e.Code.
func (e *OpenError) Is(target error) bool {
	return target == ErrRefused || (codeErr[e.Code] != nil && target == codeErr[e.Code])
}

// ResetError is the peer's abort of a stream.
type ResetError struct {
	Code   Code   // why the peer reset the stream
	Reason string // the peer's explanation, for people; may be empty
}

// Error describes the reset.
func (e *ResetError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("stream reset by peer: %v: %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("stream reset by peer: %v", e.Code)
}

// Is matches ErrReset and the sentinel for e.Code.
func (e *ResetError) Is(target error) bool {
	return target == ErrReset || (codeErr[e.Code] != nil && target == codeErr[e.Code])
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// CodeOf maps an error from dialing a target to the code that reports it: what a server puts in
// its REPLY. Errors it does not recognise are CodeFailure.
func CodeOf(err error) Code {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return CodeOK
	case errors.Is(err, ErrNotAllowed):
		return CodeNotAllowed
	case errors.As(err, &dnsErr) && (dnsErr.IsNotFound || !dnsErr.IsTimeout):
		return CodeNotFound
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return CodeTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return CodeNetUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return CodeHostUnreachable
	case errors.Is(err, syscall.ECONNRESET):
		return CodeReset
	}
	return CodeFailure
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
