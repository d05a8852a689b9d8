package sss

import (
	"bytes"
	"fmt"
	"testing"
)

// chiSquareCritical is the critical value of the chi-square distribution
// with 255 degrees of freedom (256 byte values) for an upper-tail
// probability of 1e-7: P(χ²₂₅₅ > 390.24) = 1e-7 (mean 255, sd ≈ 22.6).
// A uniformly random share fails with probability 1e-7 per check, so the
// dozen checks below give a false failure about once in a million runs,
// while a share that leaks structure (e.g. an unmasked byte pattern)
// exceeds it by orders of magnitude.
const chiSquareCritical = 390.24

func chiSquareUniform(b []byte) float64 {
	var counts [256]int
	for _, v := range b {
		counts[v]++
	}
	expected := float64(len(b)) / 256
	var chi float64
	for _, c := range counts {
		d := float64(c) - expected
		chi += d * d / expected
	}
	return chi
}

// sharedSubstring reports whether some window of share of length win
// occurs anywhere in plain. plain is assumed highly structured (few
// distinct windows).
func sharedSubstring(share, plain []byte, win int) (int, bool) {
	windows := make(map[string]struct{})
	for i := 0; i+win <= len(plain); i++ {
		windows[string(plain[i:i+win])] = struct{}{}
		if len(windows) > 1<<16 {
			panic("plaintext not structured enough for this check")
		}
	}
	for i := 0; i+win <= len(share); i++ {
		if _, ok := windows[string(share[i:i+win])]; ok {
			return i, true
		}
	}
	return 0, false
}

func TestConfidentiality(t *testing.T) {
	const size = 1 << 20
	zeros := make([]byte, size)
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. 0123456789\n"), size/56+1)[:size]
	for _, pt := range []struct {
		name  string
		plain []byte
	}{{"zeros", zeros}, {"text", text}} {
		for _, c := range []kn{{2, 2}, {3, 5}} {
			t.Run(fmt.Sprintf("%s/%v", pt.name, c), func(t *testing.T) {
				shares, err := Split(pt.plain, c.k, c.n)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range shares {
					if chi := chiSquareUniform(s.Y); chi > chiSquareCritical {
						t.Errorf("share x=%d: chi-square %.1f > %.1f, bytes not uniform", s.X, chi, chiSquareCritical)
					}
					if at, ok := sharedSubstring(s.Y, pt.plain, 16); ok {
						t.Errorf("share x=%d: 16-byte plaintext substring at offset %d", s.X, at)
					}
				}
			})
		}
	}
	// The statistic does catch leaks: the plaintext itself fails.
	if chi := chiSquareUniform(text); chi < chiSquareCritical {
		t.Fatalf("chi-square of structured text is %.1f, test has no power", chi)
	}
}
