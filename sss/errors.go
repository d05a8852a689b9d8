package sss

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where
// applicable, so callers can test for them with errors.Is.
var (
	// ErrInvalidThreshold reports a threshold k or share count n outside
	// 2 ≤ k ≤ n ≤ 255.
	ErrInvalidThreshold = errors.New("sss: invalid threshold: need 2 <= k <= n <= 255")

	// ErrInvalidX reports an x coordinate that is zero or repeated, or a
	// coordinate list that does not match the number of shares, writers or
	// readers it goes with.
	ErrInvalidX = errors.New("sss: invalid x coordinates: must be non-zero and distinct")

	// ErrShareLength reports shares (or destination buffers) whose lengths
	// differ from each other or from the secret.
	ErrShareLength = errors.New("sss: share lengths differ")

	// ErrTooFewShares reports fewer shares than can possibly determine a
	// secret: fewer than two, or fewer than the threshold given to
	// NewCombiner.
	ErrTooFewShares = errors.New("sss: too few shares")
)
