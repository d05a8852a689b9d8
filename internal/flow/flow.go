// Package flow is the session's credit-based flow control: how much a sender may have
// outstanding, and when a receiver returns credit.
//
// Both ends count in "charge" (see reasm.Charge): an item costs the same at both. The sender may
// have at most the receiver's window outstanding (sent but not yet taken by the receiving
// application); the receiver returns credit, a cumulative count of the charge its application has
// taken, each time that grows by an eighth of its window. A message may take at most half the
// window, which makes the scheme deadlock-free: a sender can only be blocked with more than half
// the window outstanding, which the receiver has either not yet taken (the sender should wait) or
// taken and owes as credit (more than an eighth, so credit is sent).
//
// Neither type is safe for concurrent use; the session serialises calls.
package flow

import (
	"errors"
	"fmt"
)

// ErrBadCredit reports credit for more than was ever sent.
var ErrBadCredit = errors.New("flow: credit beyond what was sent")

// ErrTooLarge reports a message whose charge exceeds half the window.
var ErrTooLarge = errors.New("flow: message larger than half the window")

// Sender tracks what a sender may still send.
type Sender struct {
	window   int64 // the receiver's window
	sent     int64 // charge of everything sent
	consumed int64 // the receiver's latest credit
}

// NewSender returns a Sender for a receiver with the given window.
func NewSender(window int64) *Sender { return &Sender{window: window} }

// Check reports whether a message of this charge may ever be sent.
func (s *Sender) Check(charge int64) error {
	if charge > s.window/2 {
		return fmt.Errorf("%w: %d of a %d-byte window", ErrTooLarge, charge, s.window)
	}
	return nil
}

// TryTake takes charge if it fits in the window now, and reports whether it did.
func (s *Sender) TryTake(charge int64) bool {
	if s.sent-s.consumed+charge > s.window {
		return false
	}
	s.sent += charge
	return true
}

// Return gives back charge taken by TryTake for a message that was then not sent at all.
func (s *Sender) Return(charge int64) { s.sent -= charge }

// Credit applies a CREDIT value. It reports whether anything changed; credit above what was sent
// is an error, and older (smaller) credit, as from a reordered frame, is ignored.
func (s *Sender) Credit(v uint64) (bool, error) {
	c := int64(v)
	if v > 1<<62 || c > s.sent {
		return false, fmt.Errorf("%w: %d, %d sent", ErrBadCredit, v, s.sent)
	}
	if c <= s.consumed {
		return false, nil
	}
	s.consumed = c
	return true, nil
}

// Outstanding returns the charge sent but not yet credited.
func (s *Sender) Outstanding() int64 { return s.sent - s.consumed }

// Sent returns the charge of everything sent.
func (s *Sender) Sent() int64 { return s.sent }

// Receiver tracks the credit a receiver owes.
type Receiver struct {
	window     int64
	consumed   int64 // charge the application has taken
	advertised int64 // the last credit sent
}

// NewReceiver returns a Receiver with the given window.
func NewReceiver(window int64) *Receiver { return &Receiver{window: window} }

// Take records that the application took an item of this charge. When credit is due it returns
// the value to send and true.
func (r *Receiver) Take(charge int64) (uint64, bool) {
	r.consumed += charge
	if r.consumed-r.advertised < max(r.window/8, 1) {
		return 0, false
	}
	r.advertised = r.consumed
	return uint64(r.consumed), true
}

// Advertised returns the last credit value sent.
func (r *Receiver) Advertised() uint64 { return uint64(r.advertised) }
