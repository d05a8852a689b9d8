package mux

import (
	"github.com/braidnet/braid/internal/bufpool"
)

// The mux sends every frame but large DATA through one queue, whose contents leave together as
// one session message: under load, the small frames of many streams (requests, answers,
// WINDOW updates) share a message, a chunk and a write, instead of one each. Whoever queues a
// frame while nobody is sending sends the queue itself (flat combining): at low load a frame
// leaves at once, on its writer's goroutine, with no hand-off; a writer that finds a send in
// progress leaves its frame to it and returns. Frames queued where the transport must not be
// waited on (under a stream's lock: WINDOW, RST) are sent, if nobody is sending, by a goroutine
// started for them, which runs until the queue is empty: an idle mux holds no writer goroutine.
// A large DATA frame goes to the transport by itself, without a copy, once every frame its
// stream queued before it has been sent, so that a stream's frames keep their order.
//
// Locks: outMu (a leaf) guards outBuf, outSending, outQueued, outSent, outProgress, outWatched
// and every stream's lastQueued.

// flushRounds is how many messages a writer that became the sender sends for others before it
// hands the rest to a goroutine of their own (startFlusher) and returns to its own work.
const flushRounds = 2

// queue appends frames, then body (the rest of the last frame, or nil), of stream s (or nil)
// to the send queue. With send, it sends the queue itself if nobody is sending; otherwise it
// leaves that to the sender in progress or a goroutine it starts. It fails only once the mux has
// ended.
func (m *Mux) queue(s *Stream, frames, body []byte, send bool) error {
	m.outMu.Lock()
	if m.outClosed {
		m.outMu.Unlock()
		return m.endErr()
	}
	n := len(frames) + len(body)
	if m.outBuf == nil {
		m.outBuf = bufpool.Get(max(n, 4<<10))[:0]
	}
	m.outBuf = append(append(m.outBuf, frames...), body...)
	m.outQueued += int64(n)
	if s != nil {
		s.lastQueued = m.outQueued
	}
	if m.outSending {
		m.outMu.Unlock()
		return nil
	}
	m.outSending = true
	if !send {
		m.startFlusher()
		m.outMu.Unlock()
		return nil
	}
	m.outMu.Unlock()
	return m.flush(flushRounds)
}

// startFlusher starts a goroutine that sends the queue until it is empty, for a caller that
// took the send role (outSending) but must not wait on the transport. Call with outMu held,
// before the mux has ended (outClosed): Close's wait for the mux's goroutines comes after.
func (m *Mux) startFlusher() {
	m.stopped.Add(1)
	go func() {
		defer m.stopped.Done()
		m.flush(0)
	}()
}

// flush sends the queue, message by message, while it has frames, for at most rounds messages
// (0: without limit); then, if frames remain, it hands them to a goroutine of their own
// (startFlusher). The caller has set outSending.
func (m *Mux) flush(rounds int) error {
	for i := 0; ; i++ {
		m.outMu.Lock()
		if len(m.outBuf) == 0 {
			m.outSending = false
			m.outMu.Unlock()
			return nil
		}
		// Once the mux has ended no goroutine is started (Close may be waiting for them all);
		// what was queued before goes out on this one.
		if rounds > 0 && i == rounds && !m.outClosed {
			m.startFlusher() // outSending passes to it
			m.outMu.Unlock()
			return nil
		}
		n := frameBoundary(m.outBuf, m.maxMessage)
		batch := m.outBuf
		if n == len(batch) {
			m.outBuf = nil
		} else { // the rest waits for the next round, in a buffer of its own
			rest := bufpool.Get(max(len(batch)-n, 4<<10))[:0]
			m.outBuf = append(rest, batch[n:]...)
			batch = batch[:n]
		}
		m.outMu.Unlock()
		err := m.t.SendNoCopy(m.ctx, batch, func() { bufpool.Put(batch) })
		m.outMu.Lock()
		m.outSent += int64(n)
		if m.outWatched { // else nobody waits on it: keep it (a message each)
			close(m.outProgress)
			m.outProgress = make(chan struct{})
			m.outWatched = false
		}
		if err != nil {
			m.outSending = false
			m.outClosed = true
			m.outMu.Unlock()
			m.fail(err)
			return m.endErr()
		}
		m.outMu.Unlock()
	}
}

// waitQueued returns once every frame s has queued has been handed to the transport, sending
// the queue itself if nobody is; it fails if s ends first.
func (s *Stream) waitQueued() error {
	m := s.m
	for {
		m.outMu.Lock()
		if m.outSent >= s.lastQueued {
			m.outMu.Unlock()
			return nil
		}
		if m.outClosed {
			m.outMu.Unlock()
			return m.endErr()
		}
		if !m.outSending {
			m.outSending = true
			m.outMu.Unlock()
			if err := m.flush(flushRounds); err != nil {
				return err
			}
			continue
		}
		progress := m.outProgress
		m.outWatched = true
		m.outMu.Unlock()
		select {
		case <-progress:
		case <-s.ctx.Done():
			s.mu.Lock()
			err := s.writeStateLocked()
			s.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
	}
}
