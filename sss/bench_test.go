package sss

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

const benchSize = 64 << 10

var benchConfigs = []struct{ k, n int }{{2, 3}, {3, 5}}

func benchSecret() []byte {
	s := make([]byte, benchSize)
	for i := range s {
		s[i] = byte(i * 7)
	}
	return s
}

func BenchmarkSplit(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d/64KiB", c.k, c.n), func(b *testing.B) {
			sp, err := NewSplitter(c.k, SeqX(c.n))
			if err != nil {
				b.Fatal(err)
			}
			secret := benchSecret()
			dst := make([][]byte, c.n)
			for i := range dst {
				dst[i] = make([]byte, benchSize)
			}
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := sp.Split(dst, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSplitPortable is BenchmarkSplit with the GFNI kernels
// switched off (the reedsolomon kernels), as on CPUs without AVX-512
// GFNI.
func BenchmarkSplitPortable(b *testing.B) {
	defer asmModes()[0].set()()
	BenchmarkSplit(b)
}

func BenchmarkReferenceSplit(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d/64KiB", c.k, c.n), func(b *testing.B) {
			secret := benchSecret()
			xs := SeqX(c.n)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := refSplit(secret, c.k, xs, newCTRRand()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchShares(b *testing.B, k, n int) []Share {
	shares, err := Split(benchSecret(), k, n)
	if err != nil {
		b.Fatal(err)
	}
	return shares[:k]
}

func BenchmarkCombine(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d/64KiB", c.k, c.n), func(b *testing.B) {
			shares := benchShares(b, c.k, c.n)
			xs := make([]byte, len(shares))
			ys := make([][]byte, len(shares))
			for i, s := range shares {
				xs[i], ys[i] = s.X, s.Y
			}
			cb, err := NewCombiner(c.k, xs)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, benchSize)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if err := cb.Combine(dst, ys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReferenceCombine(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d/64KiB", c.k, c.n), func(b *testing.B) {
			shares := benchShares(b, c.k, c.n)
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				refCombine(shares)
			}
		})
	}
}

// BenchmarkCSPRNG measures the default coefficient generator alone
// (crypto/aes AES-128 in crypto/cipher's CTR mode); a k-of-n split needs
// k−1 of its bytes per secret byte.
func BenchmarkCSPRNG(b *testing.B) {
	g := newCTRRand()
	buf := make([]byte, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		g.fill(buf)
	}
}

// speedupRounds is how many fast runs are timed per reference run in
// BenchmarkSpeedup (the reference is 100–1000 times slower).
const speedupRounds = 64

// BenchmarkSpeedup times the fast path and the per-byte reference
// alternately within one benchmark, so that both see the same machine
// load, and reports on one line the fast path's throughput (GB/s of
// secret), the reference's (ref-MB/s) and their ratio (x-ref). Its ns/op
// is the time of one reference run, one garbage collection and
// speedupRounds fast runs.
func BenchmarkSpeedup(b *testing.B) {
	const k, n = 3, 5
	b.Run(fmt.Sprintf("split/%dof%d/64KiB", k, n), func(b *testing.B) {
		sp, err := NewSplitter(k, SeqX(n))
		if err != nil {
			b.Fatal(err)
		}
		secret := benchSecret()
		xs := SeqX(n)
		dst := make([][]byte, n)
		for i := range dst {
			dst[i] = make([]byte, benchSize)
		}
		benchSpeedup(b, func() {
			if err := sp.Split(dst, secret); err != nil {
				b.Fatal(err)
			}
		}, func() {
			if _, err := refSplit(secret, k, xs, newCTRRand()); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run(fmt.Sprintf("combine/%dof%d/64KiB", k, n), func(b *testing.B) {
		shares := benchShares(b, k, n)
		xs := make([]byte, len(shares))
		ys := make([][]byte, len(shares))
		for i, s := range shares {
			xs[i], ys[i] = s.X, s.Y
		}
		cb, err := NewCombiner(k, xs)
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]byte, benchSize)
		benchSpeedup(b, func() {
			if err := cb.Combine(dst, ys); err != nil {
				b.Fatal(err)
			}
		}, func() { refCombine(shares) })
	})
}

func benchSpeedup(b *testing.B, fast, ref func()) {
	var tFast, tRef time.Duration
	rounds := 0
	for b.Loop() {
		t0 := time.Now()
		ref()
		t1 := time.Now()
		// The reference allocates; collect now, untimed, rather than
		// during the fast runs.
		runtime.GC()
		t2 := time.Now()
		for range speedupRounds {
			fast()
		}
		t3 := time.Now()
		tRef += t1.Sub(t0)
		tFast += t3.Sub(t2)
		rounds++
	}
	fastNs := float64(tFast.Nanoseconds()) / float64(rounds*speedupRounds)
	refNs := float64(tRef.Nanoseconds()) / float64(rounds)
	b.ReportMetric(benchSize/fastNs, "GB/s")
	b.ReportMetric(benchSize/refNs*1e3, "ref-MB/s")
	b.ReportMetric(refNs/fastNs, "x-ref")
}
