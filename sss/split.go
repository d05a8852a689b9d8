package sss

import (
	"fmt"
	"io"

	"github.com/klauspost/reedsolomon"
)

// Share is one share of a secret: the point x (1..255) at which the
// per-byte polynomials were evaluated, and the evaluations Y, one byte per
// secret byte. Y is what gfsplit writes to the file NAME.NNN, where NNN is
// X in three decimal digits.
type Share struct {
	X byte
	Y []byte
}

// lowLevel gives access to the SIMD GF(2^8) multiply(-accumulate) kernels
// of klauspost/reedsolomon (AVX2/SSSE3/NEON/…, chosen at run time).
var lowLevel reedsolomon.LowLevel

// Block sizing. The secret is processed in blocks of c bytes; for each
// block (k−1)·c random bytes are drawn into a reusable buffer and the
// shares are computed while everything is still in the L1/L2 cache.
const (
	maxBlock        = 8 << 10  // secret bytes per block
	minBlock        = 1 << 10  // floor for large k
	maxRandomBuffer = 64 << 10 // target size of the coefficient buffer
)

// blockSize returns how many secret bytes are processed per block for
// threshold k. For each block of c bytes, (k−1)·c random bytes are drawn.
func blockSize(k int) int {
	b := maxRandomBuffer / (k - 1)
	b = min(max(b, minBlock), maxBlock)
	return b &^ 63
}

// splitPlan is the immutable, shareable part of a split configuration.
//
// Coefficient layout: for each block, random run j (0 ≤ j < k−1) holds the
// coefficients of t^(k−1−j) and the secret is the constant term. This is
// the order in which libgfshare lays out its coefficient buffer. Share x
// is therefore the product of the row [x^(k−1), …, x², x, 1] with the k
// "data shards" (k−1 random runs, then the secret): a Reed–Solomon
// encoding with a Vandermonde-like matrix whose rows are the shares.
type splitPlan struct {
	k     int
	xs    []byte
	block int
	rows  [][]byte // rows[i][j] = xs[i]^(k−1−j); rows[i][k−1] = 1
	mats  []uint64 // mats[i·(k−1)+j] = gfniMatrix(rows[i][j]), j < k−1
}

func checkThreshold(k, n int) error {
	if k < 2 || n < k || n > 255 {
		return fmt.Errorf("%w (k=%d, n=%d)", ErrInvalidThreshold, k, n)
	}
	return nil
}

func checkXs(xs []byte) error {
	var seen [256]bool
	for _, x := range xs {
		if x == 0 {
			return fmt.Errorf("%w: x=0", ErrInvalidX)
		}
		if seen[x] {
			return fmt.Errorf("%w: x=%d repeated", ErrInvalidX, x)
		}
		seen[x] = true
	}
	return nil
}

func seqXs(n int) []byte {
	xs := make([]byte, n)
	for i := range xs {
		xs[i] = byte(i + 1)
	}
	return xs
}

func newSplitPlan(k int, xs []byte) (*splitPlan, error) {
	if err := checkThreshold(k, len(xs)); err != nil {
		return nil, err
	}
	if err := checkXs(xs); err != nil {
		return nil, err
	}
	p := &splitPlan{k: k, xs: append([]byte(nil), xs...), block: blockSize(k)}
	p.rows = make([][]byte, len(xs))
	for i, x := range xs {
		row := make([]byte, k)
		row[k-1] = 1
		for j := k - 2; j >= 0; j-- {
			row[j] = gfMul(row[j+1], x)
		}
		p.rows[i] = row
	}
	p.mats = make([]uint64, len(xs)*(k-1))
	for i, row := range p.rows {
		for j, c := range row[:k-1] {
			p.mats[i*(k-1)+j] = gfniMatrix(c)
		}
	}
	return p, nil
}

var splitPlans = newPlanCache[*splitPlan]()

func cachedSplitPlan(k int, xs []byte) (*splitPlan, error) {
	if k < 2 || k > 255 || len(xs) > 255 {
		return nil, checkThreshold(k, len(xs))
	}
	key := string(append([]byte{byte(k)}, xs...))
	if p, ok := splitPlans.get(key); ok {
		return p, nil
	}
	p, err := newSplitPlan(k, xs)
	if err != nil {
		return nil, err
	}
	splitPlans.put(key, p)
	return p, nil
}

// Splitter splits secrets into shares for a fixed threshold k and fixed
// x coordinates. It owns its random generator and a coefficient buffer,
// so Split does not allocate.
//
// A Splitter is not safe for concurrent use; use one per goroutine (or
// the one-shot Split and SplitX functions, which are).
type Splitter struct {
	plan   *splitPlan
	ctr    *ctrRand  // default generator; nil if random is set
	random io.Reader // injected generator; nil for the default
	buf    []byte    // (k−1)·block coefficient bytes
}

// NewSplitter returns a Splitter producing len(xs) shares with threshold
// k: any k of them recover the secret, fewer reveal nothing about it. The
// xs must be distinct and non-zero (SeqX(n) gives 1, 2, …, n). It fails
// with ErrInvalidThreshold unless 2 ≤ k ≤ len(xs) ≤ 255, and with
// ErrInvalidX for bad coordinates.
func NewSplitter(k int, xs []byte, opts ...Option) (*Splitter, error) {
	p, err := cachedSplitPlan(k, xs)
	if err != nil {
		return nil, err
	}
	return newSplitter(p, buildConfig(opts), p.block), nil
}

func newSplitter(p *splitPlan, c config, block int) *Splitter {
	s := &Splitter{plan: p, buf: make([]byte, (p.k-1)*block)}
	if c.random != nil {
		s.random = c.random
	} else {
		s.ctr = newCTRRand()
	}
	return s
}

// SeqX returns the coordinates 1, 2, …, n (the ones Split uses), or nil
// if n is not in 0..255.
func SeqX(n int) []byte {
	if n < 0 || n > 255 {
		return nil
	}
	return seqXs(n)
}

// K returns the threshold.
func (s *Splitter) K() int { return s.plan.k }

// N returns the number of shares produced per split.
func (s *Splitter) N() int { return len(s.plan.xs) }

// Xs returns a copy of the share coordinates, in the order in which Split
// fills its destination buffers.
func (s *Splitter) Xs() []byte { return append([]byte(nil), s.plan.xs...) }

// Split writes the shares of secret into dst: dst[i] receives the share
// for x = Xs()[i] and must have exactly len(secret) bytes; len(dst) must
// equal N(). The buffers must not overlap secret or each other. An empty
// secret yields empty shares.
//
// Fresh coefficients are drawn for every call, so splitting the same
// secret twice gives unrelated share sets. If Split fails, the contents
// of dst are unspecified.
func (s *Splitter) Split(dst [][]byte, secret []byte) error {
	p := s.plan
	if len(dst) != len(p.xs) {
		return fmt.Errorf("sss: got %d destination buffers, want %d", len(dst), len(p.xs))
	}
	for i, d := range dst {
		if len(d) != len(secret) {
			return fmt.Errorf("%w: destination %d has %d bytes, secret has %d", ErrShareLength, i, len(d), len(secret))
		}
	}
	k := p.k
	block := len(s.buf) / (k - 1)
	used := 0
	var err error
	for off := 0; off < len(secret); {
		c := min(block, len(secret)-off)
		coef := s.buf[:(k-1)*c]
		used = max(used, len(coef))
		if s.ctr != nil {
			s.ctr.fill(coef)
		} else if _, err = io.ReadFull(s.random, coef); err != nil {
			err = fmt.Errorf("sss: reading random coefficients: %w", err)
			break
		}
		p.eval(dst, off, secret[off:off+c], coef)
		off += c
	}
	// Do not keep coefficients around: together with one share they
	// narrow down the secret.
	clear(s.buf[:used])
	return err
}

// eval writes the shares of the secret block sec (c bytes) to
// dst[i][off:off+c], given the block's k−1 coefficient runs of c bytes
// each in coef: share i is sec ⊕ Σ_j rows[i][j]·coef_j.
func (p *splitPlan) eval(dst [][]byte, off int, sec, coef []byte) {
	k, c := p.k, len(sec)
	v := 0 // bytes done by the GFNI kernels
	if useGFNI {
		v = c &^ 63
	}
	if v > 0 {
		// One kernel call per group of up to four coefficient runs,
		// covering every share; the first starts from the secret, later
		// ones accumulate into the shares. The block's coefficient runs
		// and secret stay in the L1 cache while the shares are written.
		base := &sec[0]
		for j := 0; j < k-1; {
			r := 4
			switch left := k - 1 - j; {
			case left < 2:
				r = 1
			case left < 4:
				r = 2
			}
			mats, cf := &p.mats[j], &coef[j*c]
			switch r {
			case 1:
				gfniMulAdd1(mats, 8*(k-1), dst, off, base, cf, c, v)
			case 2:
				gfniMulAdd2(mats, 8*(k-1), dst, off, base, cf, c, v)
			default:
				gfniMulAdd4(mats, 8*(k-1), dst, off, base, cf, c, v)
			}
			base = nil
			j += r
		}
	}
	if v == c {
		return
	}
	// y = secret ⊕ Σ_j row[j]·coef_j, one SIMD multiply-accumulate pass
	// per coefficient, all on cache-resident blocks.
	for i, row := range p.rows {
		out := dst[i][off+v : off+c]
		copy(out, sec[v:])
		for j := 0; j < k-1; j++ {
			lowLevel.GalMulSliceXor(row[j], coef[j*c+v:(j+1)*c], out)
		}
	}
}

// Split splits secret into n shares with x = 1, 2, …, n, any k of which
// recover it. It is safe for concurrent use. See SplitX.
func Split(secret []byte, k, n int, opts ...Option) ([]Share, error) {
	if err := checkThreshold(k, n); err != nil {
		return nil, err
	}
	return SplitX(secret, k, seqXs(n), opts...)
}

// SplitX splits secret into one share per coordinate in xs (distinct,
// non-zero), any k of which recover it. It fails with ErrInvalidThreshold
// unless 2 ≤ k ≤ len(xs) ≤ 255, and with ErrInvalidX for bad coordinates.
// The shares' Y slices share one allocation but are capped, so appending
// to one never overwrites another. It is safe for concurrent use.
func SplitX(secret []byte, k int, xs []byte, opts ...Option) ([]Share, error) {
	p, err := cachedSplitPlan(k, xs)
	if err != nil {
		return nil, err
	}
	n, size := len(xs), len(secret)
	backing := make([]byte, n*size)
	shares := make([]Share, n)
	dst := make([][]byte, n)
	for i := range shares {
		y := backing[i*size : (i+1)*size : (i+1)*size]
		shares[i] = Share{X: xs[i], Y: y}
		dst[i] = y
	}
	if size == 0 {
		return shares, nil
	}
	s := newSplitter(p, buildConfig(opts), min(p.block, (size+63)&^63))
	if err := s.Split(dst, secret); err != nil {
		return nil, err
	}
	return shares, nil
}
