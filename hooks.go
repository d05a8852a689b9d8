package braid

// testHooks let the package's tests observe, and pace, moments that have no other visible effect.
// A Config carries them (nil outside tests), so that each test's sessions have their own and no
// test reaches into another's.
type testHooks struct {
	// attaching runs on a server's handshake goroutine once ATTACH_OK is written, before the
	// path is added to its session.
	attaching func(slot int)
}
