package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/braidnet/braid/internal/bufpool"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/wire"
)

// Dispersal on the session. Plain mode gives each chunk to the path the scheduler picks (route);
// redundant mode gives it to that path and a copy to every other live path with room (route with
// copies); the coded modes turn it into N pieces and give piece j to the path in slot j
// (routeCoded), and nowhere else, ever: a re-dialed path takes the slot of the one it replaces, so
// a piece that must go again goes on the same slot. The receiver collects pieces per chunk
// (pieceSet) and rebuilds the chunk from the first K whose integrity tag verifies.

// pieceSetOverhead is charged per chunk whose pieces are being collected, on top of their bytes,
// so that many tiny pieces cannot cost unbounded bookkeeping.
const pieceSetOverhead = 256

// pieceSet is the pieces of one chunk received so far. Under s.mu.
type pieceSet struct {
	hdr      wire.ChunkHeader
	length   int      // the chunk's payload length
	bufs     [][]byte // by piece number; nil where not (yet) received
	from     []int    // the path index each piece came by
	have     int
	gen      int      // counts the pieces stored, so that a rebuild sees whether more came meanwhile
	failed   bool     // a rebuild failed the integrity check: a piece sent again replaces the one held
	decoding bool     // a reader is rebuilding the chunk; others just add their pieces
	retired  [][]byte // pieces replaced while a rebuild may still read them; freed after it
}

// slotPath returns the live path in slot j, or nil. Call with s.mu held.
func (s *Session) slotPath(j int) *pathEntry {
	var best *pathEntry
	for _, p := range s.paths {
		if p != nil && p.slot == j && !p.dead.Load() && (best == nil || p.index > best.index) {
			best = p
		}
	}
	return best
}

// slotLimit is one more than the highest slot a path may attach in: N in a coded mode, else the
// most paths allowed.
func (s *Session) slotLimit(maxPaths int) int {
	if s.mode.Coded() {
		return s.mode.N
	}
	return maxPaths
}

// usableSlots counts the slots below n whose path can take new data. Call with s.mu held.
func (s *Session) usableSlots(n int) int {
	c := 0
	for j := range n {
		if p := s.slotPath(j); p != nil && p.usable() {
			c++
		}
	}
	return c
}

// routeCoded gives each piece of a coded chunk to the path in its slot. It waits while fewer than
// K slots have a usable path: the chunk could not be rebuilt, and sending a piece anywhere else
// would give one path two shares. A piece whose slot has no usable path now is left for the path
// that takes the slot next (requeueFrom), unless enough others arrive first.
func (s *Session) routeCoded(oc *outChunk) error {
	k, n := s.mode.K, s.mode.N
	var waitingSince time.Time
	err := s.awaitRoute(oc, &waitingSince, func() bool { return s.usableSlots(n) >= k })
	if err != nil {
		if errors.Is(err, ErrSessionClosed) {
			err = fmt.Errorf("%w (fewer than %d usable paths)", err, k)
		}
		return err
	}
	targets := make([]*path, n)
	for j := range oc.kids {
		kid := &oc.kids[j]
		if p := s.slotPath(j); p != nil && p.usable() {
			targets[j], kid.path = p.path, p.index
		} else {
			kid.path = -1 // for the slot's next path
		}
	}
	s.mu.Unlock()
	for j, p := range targets {
		if p == nil {
			continue
		}
		oc.refs.Add(1)
		if !p.enqueue(&oc.kids[j]) {
			s.release(oc) // the path ended; the monitor resends the piece to the slot's next path
		}
	}
	s.release(oc) // Send's hold
	return nil
}

// requeuePiece sends a piece last given to from (nil: to a path no longer usable) again on the
// path now in its slot. A piece whose path timed out but lives is sent again on that same path
// (the only one that may carry it). Call with s.mu held.
func (s *Session) requeuePiece(kid *outChunk, from *path) int {
	if !s.leaving(kid.path, from) {
		return 0
	}
	cur := s.pathAt(kid.path)
	to := s.slotPath(kid.piece)
	if from == nil && to == cur {
		return 0 // still on the path of its slot, which is stalled: it stays tracked there
	}
	if to == nil || to.path != from && !to.usable() || to.finishing.Load() {
		kid.path = -1
		return 0
	}
	kid.path, kid.resent = to.index, true
	kid.parent.refs.Add(1)
	to.retransmit(kid)
	return 1
}

// onPiece takes a PIECE whose header p has read into the set of its chunk, having p read its n
// payload bytes, and rebuilds the chunk once K pieces are in.
func (s *Session) onPiece(p *path, ph wire.PieceHeader, n int) error {
	s.wakeMonitor() // the pieces arriving make the session busy
	length, idx := int(ph.Length), int(ph.Index)
	switch {
	case idx >= s.mode.N:
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: piece %d of a %s chunk", ErrInvalidChunk, idx, s.mode))
	case idx != p.slot:
		// The invariant that no path carries two pieces of a chunk rests on this.
		return violation(wire.CodeProtocol, fmt.Errorf("%w: piece %d on the path in slot %d", ErrProtocol, idx, p.slot))
	case length > s.chunkSize || n != s.mode.PieceSize(length):
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: piece of %d bytes for a chunk of %d", ErrInvalidChunk, n, length))
	}
	ch := ph.ChunkHeader
	s.mu.Lock()
	if err := s.reasm.Check(ch, length); err != nil {
		s.mu.Unlock()
		return violation(wire.CodeInvalidChunk, mapReasmError(err))
	}
	if err := s.admitSeq(ch.Seq); err != nil {
		s.mu.Unlock()
		return err
	}
	set := s.pieces[ch.Seq]
	switch {
	case s.reasm.Delivered(ch) || s.recvd.Has(ch.Seq) || set != nil && set.bufs[idx] != nil && !set.failed:
		// Rebuilt already (the pieces beyond the K-th are spares), or a piece sent again.
		s.mu.Unlock()
		if err := p.skipBody(n); err != nil {
			return err
		}
		s.requestAck(false, n)
		return nil
	case set != nil && (set.hdr != ch || set.length != length):
		s.mu.Unlock()
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: piece of seq %d disagrees with the earlier ones (item %d chunk %d/%d, %d bytes)",
			ErrInvalidChunk, ch.Seq, ch.Item, ch.Chunk, ch.Total, length))
	}
	cost := int64(n)
	if set == nil {
		cost += pieceSetOverhead
	}
	if s.pieceBytes+cost > s.window {
		s.mu.Unlock()
		return violation(wire.CodeOverBudget, fmt.Errorf("%w: pieces held would take %d bytes, limit %d", ErrOverBudget, s.pieceBytes+cost, s.window))
	}
	if set == nil {
		set = &pieceSet{hdr: ch, length: length, bufs: make([][]byte, s.mode.N), from: make([]int, s.mode.N)}
		s.pieces[ch.Seq] = set
	}
	s.pieceBytes += cost
	s.mu.Unlock()

	buf := bufpool.Get(n)
	err := p.readBody(buf)
	s.mu.Lock()
	if err != nil || s.pieces[ch.Seq] != set || set.bufs[idx] != nil && !set.failed {
		// The read failed, or the chunk was rebuilt meanwhile from other pieces.
		s.pieceBytes -= int64(n)
		if set.have == 0 && !set.decoding && s.pieces[ch.Seq] == set {
			s.dropSet(set)
		}
		s.mu.Unlock()
		bufpool.Put(buf)
		return err
	}
	if old := set.bufs[idx]; old != nil { // after a failure: the piece sent again replaces it
		s.pieceBytes -= int64(len(old))
		if set.decoding {
			set.retired = append(set.retired, old) // the rebuild running may be reading it
		} else {
			bufpool.Put(old)
		}
		set.have--
	}
	set.bufs[idx], set.from[idx] = buf, p.index
	set.have++
	set.gen++
	start := set.have >= s.mode.K && !set.decoding
	set.decoding = set.decoding || start
	s.mu.Unlock()
	if !start {
		return nil
	}
	return s.rebuild(p, set)
}

// freeRetired returns the buffers of pieces replaced during a rebuild. Call with s.mu held, once
// no rebuild reads them.
func (set *pieceSet) freeRetired() {
	for _, b := range set.retired {
		bufpool.Put(b)
	}
	set.retired = nil
}

// dropSet forgets a chunk's pieces and returns their memory. Call with s.mu held, with no rebuild
// of the set running or from the rebuild itself.
func (s *Session) dropSet(set *pieceSet) {
	set.freeRetired()
	for j, b := range set.bufs {
		if b != nil {
			s.pieceBytes -= int64(len(b))
			bufpool.Put(b)
			set.bufs[j] = nil
		}
	}
	set.have = 0
	if s.pieces[set.hdr.Seq] == set {
		delete(s.pieces, set.hdr.Seq)
		s.pieceBytes -= pieceSetOverhead
	}
}

// rebuild decodes a chunk from its pieces straight into its message, on the reader of the path
// whose piece made K. A set of K pieces whose tag does not verify is an integrity failure: it is
// counted and logged, and other sets are tried as more pieces arrive — from slots not heard from
// yet, or sent again by the sender's retransmission timer, which then replace those held.
func (s *Session) rebuild(p *path, set *pieceSet) error {
	for {
		s.mu.Lock()
		bufs := append([][]byte(nil), set.bufs...)
		have, gen := set.have, set.gen
		dst, dup, err := s.reasm.ReserveBy(set.hdr, set.length, p.index)
		if err != nil || dup {
			s.dropSet(set)
			s.mu.Unlock()
			if err != nil {
				return violation(codeFor(mapReasmError(err)), mapReasmError(err))
			}
			return nil
		}
		s.mu.Unlock()

		res, derr := s.codec.Decode(set.hdr, set.length, bufs, dst)

		s.mu.Lock()
		set.freeRetired() // the decode is over: replaced pieces may go
		if res.Failed > 0 {
			s.integrityFailures.Add(uint64(res.Failed))
		}
		for _, j := range res.Suspects {
			if q := s.pathAt(set.from[j]); q != nil {
				q.badPieces.Add(1)
			}
		}
		if derr == nil {
			s.reasm.Commit(set.hdr)
			err := s.chunkArrived(p, set.hdr, set.length)
			s.dropSet(set)
			s.mu.Unlock()
			if res.Failed > 0 {
				s.log.Warn("integrity check failed; chunk rebuilt from other pieces",
					"item", set.hdr.Item, "chunk", set.hdr.Chunk, "failed_sets", res.Failed, "used", res.Used, "suspect_pieces", res.Suspects)
			}
			if err != nil {
				return protocolViolation(err)
			}
			return nil
		}
		s.reasm.Cancel(set.hdr)
		if !errors.Is(derr, disperse.ErrIntegrity) {
			s.dropSet(set)
			s.mu.Unlock()
			return violation(wire.CodeInternal, derr)
		}
		set.failed = true
		more := set.gen != gen
		if !more {
			set.decoding = false
		}
		s.mu.Unlock()
		s.log.Warn("integrity check failed", "item", set.hdr.Item, "chunk", set.hdr.Chunk, "pieces", have, "err", derr)
		if !more {
			return nil
		}
	}
}
