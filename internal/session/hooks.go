package session

// testHooks let the package's tests observe, and pace, moments that have no other visible effect.
// A test's Listener carries them (nil outside tests) and gives them to its sessions, so that each
// test's sessions have their own and no test reaches into another's.
type testHooks struct {
	// attaching runs on a server's handshake goroutine once ATTACH_OK is written, before the
	// path is added to its session.
	attaching func(slot int)
	// queueOnly turns off writeNow: every chunk goes through p's queue, where the hooks below
	// see it.
	queueOnly bool
	// readerDozed runs when p's reader goroutine has handed the socket to the poller and ends.
	readerDozed func(p *path)
	// dozeArming runs when p's reader has said it dozes and is about to arm the poller.
	dozeArming func(p *path)
	// enqueueing runs when a chunk (or piece) is about to enter p's queue of new data, p having
	// been found alive.
	enqueueing func(p *path, oc *outChunk)
	// enqueued runs when a chunk (or piece) enters p's queue of new data.
	enqueued func(p *path, oc *outChunk)
	// enqueueWaits runs when p's queue of new data is full and a sender starts waiting for room.
	enqueueWaits func(p *path, oc *outChunk)
	// newChunk runs when the session makes a chunk record for its pool (a pool miss, not per
	// chunk sent).
	newChunk func(s *Session, oc *outChunk)
	// finishWritten runs on p's writer once it has written CLOSE, before it returns.
	finishWritten func(p *path)
	// passedOn runs when p's writer passes a CHUNK_ACK or CREDIT kick on to the other paths.
	passedOn func(p *path)
	// writerParked runs when p's writer has parked (park.go), on its goroutine, which then
	// returns.
	writerParked func(p *path)
	// tcpInfo, if set, stands in for what the kernel reports of p's TCP connection.
	tcpInfo func(p *path) (tcpInfo, bool)
}
