package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/braidnet/braid/internal/bufpool"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/wire"
)

// The receive side. A path's reader hands each CHUNK to onChunk, which reserves the chunk's place
// in its message and has the path read the payload straight into it; Receive pops whole messages
// in item order. What the session owes the peer in return — a CHUNK_ACK for the chunks received,
// CREDIT for the messages consumed — is recorded here and written by whichever path writes next.

// ackEvery is how many chunks the session receives before it acknowledges at once; fewer wait up
// to ackDelay for a frame going the other way to carry the ACK, as TCP's delayed ACK does. ACKs
// do not pace the sender (CREDIT does), so the delay costs nothing but a little sender memory.
const (
	ackEvery = 8
	ackBytes = 512 << 10 // an in-flight cap of two chunks or 1 MiB never waits out ackDelay
	ackDelay = 5 * time.Millisecond
)

// Receive returns the next message, waiting until one is complete, ctx ends, or the session
// does. After the peer's Close it returns io.EOF once every message sent before it has been
// received. The returned slice is the caller's; a caller done with it may hand it back with
// Release, so that later messages reuse its memory.
func (s *Session) Receive(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if msg, charge, ok := s.reasm.Pop(); ok {
			if _, due := s.recvFlow.Take(charge); due {
				s.shared.kickShared(s.shared.creditKick) // a pending kick's writer sends the latest value
			}
			return msg, nil
		}
		switch {
		case s.peerClosed && s.reasm.Next() >= s.peerItems:
			return nil, io.EOF
		case s.phase == phaseEnded:
			return nil, s.err
		case s.phase >= phaseClosing:
			return nil, ErrSessionClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p := s.takeInline(); p != nil {
			s.mu.Unlock()
			s.readInline(ctx, p)
			s.mu.Lock()
			s.inlineOn = nil
			continue
		}
		s.recvWaiting++
		if ctx.Done() == nil {
			s.recvWaitingBulk++
		}
		err := s.wait(ctx)
		s.recvWaiting--
		if ctx.Done() == nil {
			s.recvWaitingBulk--
		}
		if err != nil {
			return nil, err
		}
	}
}

// Release hands back a message returned by Receive for reuse by later messages. It is optional
// (a message never released is simply garbage collected), but it spares a large-message receiver
// an allocation per message. msg must not be used afterwards.
func (s *Session) Release(msg []byte) { bufpool.Put(msg) }

// onChunk takes a CHUNK whose header p has read: it reserves the chunk's place in its message,
// has p read the n payload bytes straight into it, and records the seq for acknowledgement.
func (s *Session) onChunk(p *path, ch wire.ChunkHeader, n int) error {
	s.wakeMonitor() // the chunks arriving make the session busy
	s.mu.Lock()
	if err := s.admitSeq(ch.Seq); err != nil {
		s.mu.Unlock()
		return err
	}
	dst, dup, err := s.reasm.ReserveBy(ch, n, p.index)
	owner, busy := -1, false
	if dup {
		owner, busy = s.reasm.BusyOwner(ch)
	} else if err == nil && p.overtaken.Load() {
		p.overtaken.Store(false) // a copy of the chunk this path read before is no news
	}
	s.mu.Unlock()
	if err != nil {
		return violation(codeFor(mapReasmError(err)), mapReasmError(err))
	}
	if dup && busy {
		return s.offerCopy(p, ch, n, owner)
	}
	if dup {
		// Already here: acknowledge again, since the sender evidently did not hear of it (in
		// redundant mode copies are expected, and the usual ACK will do).
		if err := p.skipBody(n); err != nil {
			return err
		}
		s.requestAck(s.mode.Kind != disperse.Redundant, n)
		return nil
	}
	read, err := p.readBodyUnless(dst)
	if errors.Is(err, errOvertaken) {
		// The copy takes the reservation's place (Cancel), and the rest of this original is
		// read past. dst is no longer ours once cancelled: nothing more is read into it.
		s.mu.Lock()
		took := s.reasm.Offered(ch)
		var spare []byte
		if took {
			if took, spare = s.reasm.Cancel(ch); took {
				s.chunkArrived(p, ch, n)
			}
		}
		s.mu.Unlock()
		bufpool.Put(spare)
		if took {
			p.debug("chunk overtaken by its copy", "item", ch.Item, "chunk", ch.Chunk, "read", read, "of", n)
			return p.skipRest(read, n)
		}
		// The copy went (the chunk failed elsewhere?): finish the original.
		if err = p.r.ReadFull(dst[read:]); err == nil {
			p.chunksRecv.Add(1)
			p.bytesRecv.Add(uint64(n))
		}
	}
	if err != nil {
		s.mu.Lock()
		committed, spare := s.reasm.Cancel(ch)
		if committed {
			s.chunkArrived(p, ch, n)
		}
		s.mu.Unlock()
		bufpool.Put(spare)
		return err
	}
	s.mu.Lock()
	spare := s.reasm.Commit(ch)
	err = s.chunkArrived(p, ch, n)
	s.mu.Unlock()
	bufpool.Put(spare)
	if err != nil {
		return protocolViolation(err)
	}
	return nil
}

// offerCopy reads a copy of a chunk that another path is still filling — a retransmission that
// overtook its stalled original — into a buffer of its own and offers it to the reassembler, which
// uses it if the original fails. If the path holding the original has received nothing for an
// RTO, it is stuck mid-chunk (blackholed), so it is ended now rather than at PathTimeout, and the
// copy takes its place.
func (s *Session) offerCopy(p *path, ch wire.ChunkHeader, n, owner int) error {
	buf := bufpool.Get(n)
	if err := p.readBody(buf); err != nil {
		bufpool.Put(buf)
		return err
	}
	s.mu.Lock()
	stored := s.reasm.Offer(ch, buf)
	holder := s.pathAt(owner)
	if !stored {
		// The original completed or failed meanwhile. If it failed, this copy is the chunk.
		if dst, dup, err := s.reasm.ReserveBy(ch, n, p.index); err == nil && !dup {
			copy(dst, buf)
			s.reasm.Commit(ch)
			s.chunkArrived(p, ch, n)
		}
		s.mu.Unlock()
		bufpool.Put(buf)
		s.requestAck(true, n)
		return nil
	}
	var stuck []func()
	if holder != nil && holder.path != p {
		// The holder's reader, even blocked in a read of the original's payload with nothing
		// arriving (a path cut mid-chunk), returns to deliver the copy and then reads past the
		// rest of the original when it comes, the path kept. If it does not (a reader that is not
		// in readBodyUnless), a holder silent for MinRTO already is ended now; otherwise the
		// monitor watches it.
		s.spares[ch] = spareCopy{holder: owner, by: p.index}
		holder.overtaken.Store(true) // its reader delivers this copy at its next read,
		holder.cutBody()             // which it makes now, though nothing more may come
		stuck = s.stuckHolders(s.clock())
	}
	s.mu.Unlock()
	for _, end := range stuck {
		end()
	}
	return nil
}

// endStuck ends a path stuck in the middle of chunk ch, a copy of which arrived on path by.
func (p *path) endStuck(ch wire.ChunkHeader, by int) {
	p.setDownReason(fmt.Errorf("stalled in the middle of chunk %d of item %d, which arrived on path %d", ch.Chunk, ch.Item, by))
	p.kill(0, "")
}

// stuckHolders returns the paths still filling a chunk of which a complete copy waits (offerCopy)
// and that have received nothing for their RTO at now: stuck mid-chunk, they hold up delivery until
// PathTimeout unless ended. It forgets the copies whose chunk is no longer being filled by the
// path that was. Call with s.mu held.
func (s *Session) stuckHolders(now time.Duration) (stuck []func()) {
	for ch, sc := range s.spares {
		o, busy := s.reasm.BusyOwner(ch)
		holder := s.pathAt(sc.holder)
		if !busy || o != sc.holder || holder == nil || holder.dead.Load() {
			delete(s.spares, ch)
			continue
		}
		if holder.readingBody() {
			continue // cutBody has ended, or ends, its read: it hands the chunk over itself
		}
		if now-holder.heardAt() > holder.rto(s.cfg.MinRTO) { // a loaded path may pause for MinRTO
			delete(s.spares, ch)
			stuck = append(stuck, func() { holder.endStuck(ch, sc.by) })
		}
	}
	return stuck
}

// spareCopy is a chunk's complete copy, come by path by while path holder fills the original.
type spareCopy struct{ holder, by int }

// admitSeq checks, before anything of a data frame is stored, that its seq is one the session
// can record: a sender within the window never sends one too far ahead. Call with s.mu held.
func (s *Session) admitSeq(seq uint64) error {
	if err := s.recvd.Allowed(seq); err != nil {
		return protocolViolation(err)
	}
	return nil
}

// chunkArrived records a chunk just committed by p's reader: its seq for acknowledgement, and a
// wake-up for Receive if its message is next. A one-chunk message that a Receive waits for makes
// p's reader a candidate to yield its read role to it (inline.go). Call with s.mu held.
func (s *Session) chunkArrived(p *path, ch wire.ChunkHeader, n int) error {
	_, err := s.recvd.Add(ch.Seq)
	if s.lastDataIn != p {
		if s.lastDataIn != nil {
			s.lastDataIn.lastDataIn.Store(false)
		}
		p.lastDataIn.Store(true)
		s.lastDataIn = p
	}
	if s.reasm.Ready() {
		if (ch.Total == 1 || s.recvWaitingBulk > 0) && (s.recvWaiting > 0 || s.inlineOn != nil && s.inlineOn != p) {
			s.inlineHint.Store(p)
		}
		s.broadcast()
	}
	if err == nil {
		s.requestAck(false, n)
	}
	return err
}

// requestAck notes that a CHUNK_ACK is due, for a chunk of n bytes: at once if now (a duplicate:
// the sender did not hear of an earlier one) or after ackEvery chunks or ackBytes bytes, else
// within ackDelay, or sooner with whatever a path writes next. Any path may carry it: it is the
// whole session's record.
//
// The timer is armed once and left to run, not pushed back by every chunk: an ACK waits at most
// ackDelay from the first chunk it covers, and a message stream (where replies carry the ACKs)
// does not restart a runtime timer per message, which can wake a thread sleeping in the
// network poller each time.
func (s *Session) requestAck(now bool, n int) {
	s.shared.ackDue.Store(true)
	if now || s.unacked.Add(1) >= ackEvery || s.unackedBytes.Add(int64(n)) >= ackBytes {
		s.unacked.Store(0)
		s.unackedBytes.Store(0)
		s.shared.kickShared(s.shared.ackKick)
		return
	}
	if s.ackArmed.CompareAndSwap(false, true) {
		armTimer(&s.ackTimer, ackDelay, s.ackDue)
	}
}

// ackDue runs when the ACK timer fires: a writer sends the ACK that has waited ackDelay.
func (s *Session) ackDue() {
	s.ackArmed.Store(false)
	if s.shared.ackDue.Load() {
		s.shared.kickShared(s.shared.ackKick)
	}
}

// fillAck writes the session's record of received chunks into a, for a CHUNK_ACK about to be
// written: the chunks it covers no longer count towards the next immediate one.
func (s *Session) fillAck(a *wire.ChunkAck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recvd.Fill(a)
	s.unacked.Store(0)
	s.unackedBytes.Store(0)
}

// creditValue returns the cumulative charge to report in CREDIT.
func (s *Session) creditValue() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvFlow.Advertised()
}

// onCredit takes the peer's CREDIT: the cumulative charge it has consumed.
func (s *Session) onCredit(v uint64) error {
	s.mu.Lock()
	changed, err := s.sendFlow.Credit(v)
	if changed {
		s.broadcast()
	}
	s.mu.Unlock()
	if err != nil {
		return protocolViolation(err)
	}
	return nil
}

// mapReasmError turns a reassembly error into the session's matching sentinel.
func mapReasmError(err error) error {
	switch {
	case errors.Is(err, reasm.ErrInvalidChunk):
		return fmt.Errorf("%w: %w", ErrInvalidChunk, err)
	case errors.Is(err, reasm.ErrOverBudget):
		return fmt.Errorf("%w: %w", ErrOverBudget, err)
	}
	return err
}
