package sss

import "fmt"

// Combiner recovers secrets from shares taken at a fixed set of x
// coordinates. The Lagrange weights for that set are computed once, in
// NewCombiner; each Combine is then one linear combination of the shares,
// computed with SIMD multiply-accumulate kernels.
//
// A Combiner is safe for concurrent use.
type Combiner struct {
	xs      []byte // all coordinates the caller supplies shares for
	use     int    // how many of them (the first ones) are interpolated
	weights []byte // Lagrange weights at 0 for xs[:use]
}

// combineChunk is the accumulator block size of Combiner.Combine.
const combineChunk = 16 << 10

// NewCombiner returns a Combiner for shares at the coordinates xs, in that
// order.
//
// k is the threshold the shares were made with, if known. With k > 0,
// only the first k shares passed to Combine are interpolated (the rest
// are accepted but ignored, and not checked for consistency), and
// NewCombiner fails with ErrTooFewShares if len(xs) < k. With k == 0 all
// shares are interpolated; this gives the secret whenever at least
// threshold consistent shares are supplied.
//
// Interpolating fewer shares than the threshold yields bytes that look
// random and unrelated to the secret; that cannot be detected here, since
// Shamir shares carry no redundancy. The caller must supply at least the
// threshold. NewCombiner fails with ErrTooFewShares for fewer than two
// coordinates, ErrInvalidThreshold for k outside 0 or 2..255, and
// ErrInvalidX for zero or repeated coordinates.
func NewCombiner(k int, xs []byte) (*Combiner, error) {
	if k != 0 && (k < 2 || k > 255) {
		return nil, fmt.Errorf("%w (k=%d)", ErrInvalidThreshold, k)
	}
	if len(xs) < 2 || len(xs) < k {
		return nil, fmt.Errorf("%w: have %d, need at least %d", ErrTooFewShares, len(xs), max(k, 2))
	}
	if len(xs) > 255 {
		return nil, fmt.Errorf("%w: %d coordinates", ErrInvalidX, len(xs))
	}
	if err := checkXs(xs); err != nil {
		return nil, err
	}
	use := len(xs)
	if k > 0 {
		use = k
	}
	c := &Combiner{xs: append([]byte(nil), xs...), use: use}
	c.weights = lagrangeAtZero(c.xs[:use])
	return c, nil
}

// Xs returns a copy of the coordinates the Combiner expects shares for.
func (c *Combiner) Xs() []byte { return append([]byte(nil), c.xs...) }

// Combine recovers the secret into dst from ys, where ys[i] is the Y of
// the share at Xs()[i]. len(ys) must equal len(Xs()), and dst and every
// ys[i] must have the same length (ErrShareLength otherwise). dst must
// not overlap any ys[i]. Combine does not allocate.
func (c *Combiner) Combine(dst []byte, ys [][]byte) error {
	if len(ys) != len(c.xs) {
		return fmt.Errorf("sss: got %d shares, combiner expects %d", len(ys), len(c.xs))
	}
	for i, y := range ys {
		if len(y) != len(dst) {
			return fmt.Errorf("%w: share %d has %d bytes, want %d", ErrShareLength, i, len(y), len(dst))
		}
	}
	if len(dst) == 0 {
		return nil
	}
	// dst = Σ w[i]·ys[i]: one SIMD multiply(-accumulate) pass per share,
	// block by block so the accumulator stays in the L1 cache.
	for off := 0; off < len(dst); off += combineChunk {
		end := min(off+combineChunk, len(dst))
		out := dst[off:end]
		lowLevel.GalMulSlice(c.weights[0], ys[0][off:end], out)
		for i := 1; i < c.use; i++ {
			lowLevel.GalMulSliceXor(c.weights[i], ys[i][off:end], out)
		}
	}
	return nil
}

var combiners = newPlanCache[*Combiner]()

// Combine recovers a secret from shares, interpolating all of them. It
// returns a new slice.
//
// The caller must supply at least the threshold number of shares the
// secret was split with: with fewer, the result is random-looking garbage
// and no error is reported, because plain Shamir shares carry no
// redundancy to detect it. Combine fails with ErrTooFewShares for fewer
// than two shares, ErrInvalidX for zero or repeated x, and ErrShareLength
// if the Y lengths differ. It is safe for concurrent use; Combiners for
// recently used coordinate sets are cached.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("%w: have %d, need at least 2", ErrTooFewShares, len(shares))
	}
	if len(shares) > 255 {
		return nil, fmt.Errorf("%w: %d shares", ErrInvalidX, len(shares))
	}
	var xsArr [255]byte
	xs := xsArr[:len(shares)]
	size := len(shares[0].Y)
	for i, s := range shares {
		xs[i] = s.X
		if len(s.Y) != size {
			return nil, fmt.Errorf("%w: share %d has %d bytes, share 0 has %d", ErrShareLength, i, len(s.Y), size)
		}
	}
	c, ok := combiners.get(string(xs))
	if !ok {
		var err error
		if c, err = NewCombiner(0, xs); err != nil {
			return nil, err
		}
		combiners.put(string(xs), c)
	}
	ys := make([][]byte, len(shares))
	for i, s := range shares {
		ys[i] = s.Y
	}
	dst := make([]byte, size)
	if err := c.Combine(dst, ys); err != nil {
		return nil, err
	}
	return dst, nil
}
