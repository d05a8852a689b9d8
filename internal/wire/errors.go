package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors of the frame layer. Callers match them with errors.Is; the errors returned
// carry detail (the offending length or type) and wrap one of these.
var (
	// ErrFrameTooLarge reports a frame whose declared length exceeds the configured maximum.
	// It is detected from the header alone, before any payload byte is read or allocated.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrUnknownType reports a frame whose type is not assigned.
	ErrUnknownType = errors.New("wire: unknown frame type")
	// ErrMalformed reports a payload that does not decode as its frame type requires.
	ErrMalformed = errors.New("wire: malformed payload")
)

// TooLargeError is the detailed form of ErrFrameTooLarge.
type TooLargeError struct {
	Length uint32 // declared payload length
	Max    int    // configured maximum
}

// Error says how large the frame was and what the maximum is.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("wire: frame too large: payload %d bytes exceeds maximum %d", e.Length, e.Max)
}

// Is makes errors.Is(err, ErrFrameTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// UnknownTypeError is the detailed form of ErrUnknownType.
type UnknownTypeError struct{ Type Type }

// Error names the unknown type byte.
func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("wire: unknown frame type %#02x", uint8(e.Type))
}

// Is makes errors.Is(err, ErrUnknownType) true.
func (e *UnknownTypeError) Is(target error) bool { return target == ErrUnknownType }

func malformed(t Type, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}
