package sss

import "testing"

// TestCTRRekey checks that the default generator re-keys after
// ctrRekeyBytes.
func TestCTRRekey(t *testing.T) {
	g := newCTRRand()
	g.fill(make([]byte, 64))
	g.used = ctrRekeyBytes - 10
	stream := g.stream
	g.fill(make([]byte, 64))
	if g.used != 64 || g.stream == stream {
		t.Fatalf("no re-key: used=%d", g.used)
	}
}
