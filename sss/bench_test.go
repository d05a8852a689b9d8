package sss

import (
	"fmt"
	"testing"
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
		b.Run(fmt.Sprintf("%dof%d", c.k, c.n), func(b *testing.B) {
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

func BenchmarkReferenceSplit(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(fmt.Sprintf("%dof%d", c.k, c.n), func(b *testing.B) {
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
		b.Run(fmt.Sprintf("%dof%d", c.k, c.n), func(b *testing.B) {
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
		b.Run(fmt.Sprintf("%dof%d", c.k, c.n), func(b *testing.B) {
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
// (AES-256-CTR keystream); a k-of-n split needs k−1 of its bytes per
// secret byte.
func BenchmarkCSPRNG(b *testing.B) {
	g := newCTRRand()
	buf := make([]byte, benchSize)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		g.fill(buf)
	}
}
