package disperse

// ChiSquare returns Pearson's chi-square statistic of b's byte values against the uniform
// distribution (255 degrees of freedom). Uniformly random data gives about 255; at p = 0.001 the
// critical value is about 330. The demo and the confidentiality tests use it to show that what
// one path carries looks random.
func ChiSquare(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, v := range b {
		counts[v]++
	}
	want := float64(len(b)) / 256
	x := 0.0
	for _, c := range counts {
		d := float64(c) - want
		x += d * d / want
	}
	return x
}
