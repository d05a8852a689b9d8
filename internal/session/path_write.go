package session

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// maxWriteBatch bounds the bytes a path writer gathers into one write.
const maxWriteBatch = 2 << 20

// writeLoop writes the path's frames: retransmissions first, then new chunks, control frames,
// CHUNK_ACK and CREDIT when asked, and a PING when the path has written nothing for KeepAlive.
// Frames that are ready together leave in one write.
func (p *path) writeLoop() {
	if p.write() {
		return // parked (park.go): a wake-up runs writeLoop again
	}
	p.wmu.Lock() // a dead path keeps no write buffer
	p.wdone, p.w = true, nil
	p.wmu.Unlock()
	// kill closes the connection itself once the writer is done; if it came while the writer
	// was returning (after writing CLOSE, say), neither would, and the reader would wait for a
	// peer that may never hang up. kill closes stop before it looks at writerDone, and the
	// writer closes writerDone before it looks at stop, so one of them sees the other.
	close(p.writerDone)
	if isClosed(p.stop) {
		p.conn.Close()
	}
	if p.onWriterEnd != nil {
		p.onWriterEnd()
	}
}

// write runs the writer until the path ends (false) or the writer parks (true).
func (p *path) write() (parked bool) {
	interval := p.keepAliveInterval()
	wait := interval
	if p.resumed { // after parking: the keepalive as it was
		p.resumed = false
		interval, wait = p.parkInterval, max(0, p.parkDue-p.eng.clock())
	}
	keepalive := time.NewTimer(wait)
	defer keepalive.Stop()
	due := p.eng.clock() + wait // when keepalive fires
	rearm := func(wait time.Duration) {
		keepalive.Reset(wait)
		due = p.eng.clock() + wait
	}
	var batch []*outChunk
	for {
		// The deadline is armed before waiting, which can last up to the keepalive interval
		// (then a PING is written), so it covers that wait plus WriteTimeout for the write
		// itself (and any inline write made meanwhile).
		p.conn.SetWriteDeadline(time.Now().Add(interval + p.cfg.WriteTimeout))
		select {
		case <-p.stop: // kill may have set a short deadline just before the line above
			p.writeKill()
			return false
		default:
		}
		if interval > p.cfg.KeepAlive {
			parked, recheck := p.parkWriter(interval, due)
			if parked {
				return true
			}
			if recheck && due-p.eng.clock() > parkRecheck {
				// The keepalive's own case puts the timer back to its due time if it fires
				// early; only the timer moves, not due.
				keepalive.Reset(parkRecheck)
			}
		}
		ackAsked := false // woken to send an ACK: it goes even with nothing else to write
		ackKick, creditKick := p.shared.ackKick, p.shared.creditKick
		sus := p.leavesControl()
		if sus {
			ackKick, creditKick = nil, nil
		}
		p.disarmed.Store(sus)
		var (
			act ctrlAct
			oc  *outChunk
			f   ctrlFrame
		)
		select {
		case <-p.stop:
			p.writeKill()
			return false
		case count := <-p.fin:
			select {
			case <-p.stop: // both were ready; ending now wins
				p.writeKill()
				return false
			default:
			}
			p.wmu.Lock()
			p.wdone = true
			err := p.writeFinish(count, batch)
			if cw, ok := p.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			if err != nil {
				p.debug("finishing path failed", "err", err)
			}
			p.closeQueues()
			p.wmu.Unlock()
			if h := p.hooks; h != nil && h.finishWritten != nil {
				h.finishWritten(p)
			}
			return false
		case <-p.rtxKick:
			act = actRetransmit
		case oc = <-p.dataReady(0):
			act = actChunk
		case <-p.capKick: // acknowledgements freed room under the cap; look again
		case <-p.rearm: // no longer suspect: wait for ackKick and creditKick again
		case f = <-p.ctrl:
			act = actCtrl
		case <-ackKick: // an ACK is due and no write was going to carry it
			if p.leavesControl() {
				p.passedOn()
				p.shared.kickShared(p.shared.ackKick) // turned suspect while waiting: leave it to another path
			} else {
				ackAsked = true
			}
		case <-creditKick:
			if p.leavesControl() {
				p.passedOn()
				p.shared.kickShared(p.shared.creditKick)
			} else {
				act = actCredit
			}
		case <-keepalive.C:
			// A PONG or a small chunk written on another goroutine (pongNow, writeNow) counts
			// as a write: the keepalive runs from the last.
			if since := p.eng.clock() - time.Duration(p.lastWrite.Load()); since < interval {
				rearm(p.keepAliveWait(interval, interval-since))
				continue
			}
			act = actPing
		}
		p.wmu.Lock()
		var err error
		switch act {
		case actRetransmit:
			batch, err = p.queueRetransmits(batch)
		case actChunk:
			batch, err = p.queueChunk(oc, batch)
		case actCtrl:
			err = p.queueCtrl(f)
		case actCredit:
			err = p.queueCredit()
		case actPing:
			var ts [8]byte
			binary.BigEndian.PutUint64(ts[:], uint64(p.eng.clock()))
			p.trace("send", wire.TypePing, 8)
			err = p.w.Queue(wire.TypePing, ts[:], nil)
		}
	gather:
		for err == nil && p.w.Pending() < maxWriteBatch && len(batch) < 64 {
			select {
			case oc := <-p.dataReady(int64(p.w.Pending())):
				batch, err = p.queueChunk(oc, batch)
			case f := <-p.ctrl:
				err = p.queueCtrl(f)
			default:
				break gather
			}
		}
		batch, err = p.flush(batch, err, ackAsked)
		p.wmu.Unlock()
		p.eng.runCompletions()
		if err != nil {
			p.setDownReason(fmt.Errorf("write: %w", err))
			p.kill(0, "")
			p.writeKill()
			return false
		}
		interval = p.keepAliveInterval()
		rearm(p.keepAliveWait(interval, interval))
	}
}

// passedOn tells the test hooks that the writer passed a kick on.
func (p *path) passedOn() {
	if h := p.hooks; h != nil && h.passedOn != nil {
		h.passedOn(p)
	}
}

// keepAliveWait is how long the writer waits, d at least, before it looks at the keepalive of a
// path whose interval is interval: an idle path's (longer than KeepAlive) on the idle grid.
func (p *path) keepAliveWait(interval, d time.Duration) time.Duration {
	if interval > p.cfg.KeepAlive {
		return onIdleGrid(d)
	}
	return d
}

// idleGrid is the grid idle timers fall due on: an idle path's keepalive and an idle session's
// monitor round their deadlines up to a multiple of it on the wall clock, the same for every
// session of the process, so that the timers of thousands of idle sessions expire in batches and
// the runtime wakes a thread once for many of them rather than once for each: on a machine where
// waking a thread costs tens of microseconds, those wake-ups were most of what an idle server
// spent. It is a small fraction of the keepalive's random spread (an eighth of IdleKeepAlive),
// so the two ends of a path still seldom ping at once.
const idleGrid = 250 * time.Millisecond

// onIdleGrid returns a wait of at least d that ends on the idle grid.
func onIdleGrid(d time.Duration) time.Duration {
	now := time.Now()
	return now.Add(d).Truncate(idleGrid).Add(idleGrid).Sub(now)
}

// leavesControl reports whether the path's writer leaves the session's CHUNK_ACK and CREDIT to
// the other paths: it is suspect (silent for MinRTO while another was heard), or far slower than
// another live path (slowCtl, set by the monitor: slowForControl), in a busy session. Suspicion
// is a busy session's concern: the paths of an idle one are each silent for up to
// IdleKeepAlive, and their writers carry ACK and CREDIT whatever their last ping. The writer
// asks at the top of its loop (whether to listen for the kicks at all), when a kick comes (a
// path that turned suspect meanwhile passes it on, and then no longer listens: the same
// predicate both times, or an idle session's suspect writer would take back the kick it just
// passed on, over and over, until another path's writer got a turn), and at flush.
func (p *path) leavesControl() bool {
	return !p.shared.idle.Load() && (p.suspect() || p.slowCtl.Load())
}

// idleKeepAliveFactor is IdleKeepAlive's default, in KeepAlives: 25 seconds by default, the
// interval at which WireGuard's persistent keepalive holds NAT mappings open.
const idleKeepAliveFactor = 25

// idlePathTimeout is how long a path of an idle session may be silent before it is dead: its
// PathTimeout, plus two IdleKeepAlive intervals of a peer that pings that rarely.
func idlePathTimeout(c *Config) time.Duration { return c.PathTimeout + 2*c.IdleKeepAlive }

// keepAliveInterval is how long the path may write nothing before it sends a PING: KeepAlive
// while its session is busy (the monitor's verdict, shared.idle) or the path has data queued or
// in flight, or is stalled; otherwise IdleKeepAlive less up to an eighth at random, so that the
// two ends of an idle path seldom both send one: the PONG to the first PING is the other end's
// write.
func (p *path) keepAliveInterval() time.Duration {
	if !p.shared.idle.Load() || p.queued.Load() > 0 || p.inflight.Load() > 0 || p.stalled.Load() {
		return p.cfg.KeepAlive
	}
	idle := p.cfg.IdleKeepAlive
	if idle <= p.cfg.KeepAlive {
		return p.cfg.KeepAlive
	}
	return idle - rand.N(idle/8)
}

// ctrlAct is what woke a path's writer up to write.
type ctrlAct uint8

const (
	actNone ctrlAct = iota
	actRetransmit
	actChunk
	actCtrl
	actCredit
	actPing
)

// flush ends a write: the session's ACK rides with it if one is due (any path may carry it) or
// was asked for; then the frames go out in one write and the batch's chunks are let go of. A
// write with nothing in it sends nothing: a due ACK then waits for a frame to ride with, its
// timer or its threshold (which kick ackKick). Call with wmu held.
func (p *path) flush(batch []*outChunk, err error, ackAsked bool) ([]*outChunk, error) {
	if err == nil && (ackAsked || p.w.Pending() > 0) && !p.leavesControl() && p.shared.ackDue.Swap(false) {
		err = p.queueAck()
	}
	if err == nil {
		err = p.w.Flush()
	}
	if err == nil {
		p.lastWrite.Store(int64(p.eng.clock()))
	}
	return p.release(batch, err == nil), err
}

// pongNow answers a PING on the reader's goroutine, sparing the writer goroutine a wake-up for
// each keepalive of an idle path, when that cannot block: nothing is queued or in flight and the
// writer is not writing (its lock free). It reports whether it took the PONG; a failed write
// ends the path.
func (p *path) pongNow(payload []byte) bool {
	if p.inflight.Load() > 0 || len(p.data) > 0 || len(p.ctrl) > 0 || !p.wmu.TryLock() {
		return false
	}
	defer p.wmu.Unlock()
	if p.wdone || p.rtxWaiting() {
		return false
	}
	p.trace("send", wire.TypePong, len(payload))
	err := p.w.Queue(wire.TypePong, payload, nil)
	if _, err = p.flush(nil, err, false); err != nil {
		p.setDownReason(fmt.Errorf("write: %w", err))
		p.kill(0, "")
	}
	return true
}

// inlineMax bounds the chunks a sender writes itself (writeNow), and the bytes in flight on the
// path when it does: within the smallest socket send buffer Linux gives a TCP connection, so that
// the write cannot block.
const inlineMax = 16 << 10

// writeNow writes a small chunk on the caller's goroutine, sparing the hand-off to the writer
// goroutine (a wake-up each way, most of a small message's latency), when that cannot block: the
// path is usable, its writer idle (its lock free, its queues empty, not finished) and little is
// in flight. It reports whether it took the chunk (and the caller's hold on it); a failed write
// ends the path, whose loss sends the chunk again elsewhere.
func (p *path) writeNow(oc *outChunk) bool {
	n := int64(len(oc.payload))
	if n > inlineMax || p.inflight.Load()+n > inlineMax || len(p.data) > 0 || !p.usable() {
		return false
	}
	if h := p.hooks; h != nil && h.queueOnly {
		return false
	}
	if !p.wmu.TryLock() {
		return false
	}
	defer p.wmu.Unlock()
	if p.wdone || p.rtxWaiting() {
		return false
	}
	p.queued.Add(n) // as if queued: release takes it off
	batch, err := p.queueChunk(oc, p.inline[:0])
	p.inline, err = p.flush(batch, err, false)
	if err != nil {
		p.setDownReason(fmt.Errorf("write: %w", err))
		p.kill(0, "")
	}
	return true
}

// dataReady returns the path's queue of new data, or nil while its bytes in flight, with pending
// more about to be written, are at the cap (retransmissions are not held back).
//
// capped tells acknowledgements to kick capKick: it is set before the count is read, and they
// lower the count before they read it, so that one of the two always sees the other.
func (p *path) dataReady(pending int64) chan *outChunk {
	p.capped.Store(true)
	if c := p.inflightCap(); c > 0 && p.inflight.Load()+pending >= c {
		return nil
	}
	p.capped.Store(false)
	return p.data
}

// writeFinish drains the queues, then writes CLOSE(count).
func (p *path) writeFinish(count uint64, batch []*outChunk) error {
	batch, err := p.queueRetransmits(batch)
	for err == nil {
		select {
		case oc := <-p.data:
			batch, err = p.queueChunk(oc, batch)
			continue
		default:
		}
		break
	}
	if err == nil {
		// Acknowledge what arrived before our CLOSE: the peer's own Close waits for it.
		err = p.queueAck()
	}
	if err == nil {
		var b [wire.CloseSize]byte
		p.trace("send", wire.TypeClose, len(b))
		if err = p.w.Queue(wire.TypeClose, wire.AppendUint64(b[:0], count), nil); err == nil {
			err = p.w.Flush()
		}
	}
	p.release(batch, err == nil)
	return err
}

// writeKill sends the ERROR frame kill asked for, briefly, closes the connection, and lets go of
// every chunk still queued (the session resends them elsewhere).
func (p *path) writeKill() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.wdone = true
	if p.killCode != 0 {
		var b [2 + wire.MaxErrorMessage]byte
		p.conn.SetWriteDeadline(time.Now().Add(min(time.Second, p.cfg.WriteTimeout)))
		p.trace("send", wire.TypeError, 0)
		p.w.Queue(wire.TypeError, wire.AppendError(b[:0], wire.ErrorFrame{Code: p.killCode, Message: p.killMsg}), nil)
		if p.w.Flush() == nil {
			lingerClose(p.conn)
		}
	}
	p.conn.Close()
	p.closeQueues()
}

// queueRetransmits adds every chunk waiting to be sent again to the write in progress, in
// sequence order, merged with the path's own queue: a chunk of its own that comes earlier in the
// session's order than one sent again goes first. The receiver delivers in that order, so a
// chunk sent again from a failed path must not hold back the chunks of earlier items this path
// was about to send, nor they the item it completes. (Without the merge, the chunks of the items
// after the first that the failed path carried all went first, and each of those items still
// needed this path's own chunk, queued behind them all: about 400 ms without a delivery after a
// cut on two 50 Mbit/s paths.) The last chunk of its own taken to compare goes too, after them.
// If a write fails part way (the wire writer writes out what it holds beyond its limit), the
// chunks not yet reached join the batch unwritten, so that release lets go of them with the
// others.
func (p *path) queueRetransmits(batch []*outChunk) ([]*outChunk, error) {
	rtx := p.takeRetransmits()
	if len(rtx) == 0 {
		return batch, nil
	}
	slices.SortFunc(rtx, func(a, b *outChunk) int { return cmp.Compare(a.hdr.Seq, b.hdr.Seq) })
	var own *outChunk // the head of the path's own queue, taken to compare
	for i, oc := range rtx {
		var err error
		for {
			if own == nil {
				select {
				case own = <-p.data:
				default:
				}
			}
			if own == nil || own.hdr.Seq > oc.hdr.Seq {
				break
			}
			if batch, err = p.queueChunk(own, batch); err != nil {
				return append(batch, rtx[i:]...), err
			}
			own = nil
		}
		if batch, err = p.queueChunk(oc, batch); err != nil {
			batch = append(batch, rtx[i+1:]...)
			if own != nil {
				batch = append(batch, own)
			}
			return batch, err
		}
	}
	if own != nil {
		return p.queueChunk(own, batch)
	}
	return batch, nil
}

// queueChunk adds a chunk or piece to the write in progress, unless its chunk has been
// acknowledged meanwhile (a copy sent on another path arrived first, or enough other pieces did)
// or was taken from this path to be sent on another (movedFrom).
func (p *path) queueChunk(oc *outChunk, batch []*outChunk) ([]*outChunk, error) {
	if oc.isAcked() || oc.movedFrom.Load() == p {
		p.queued.Add(-int64(len(oc.payload)))
		p.eng.release(oc)
		return batch, nil
	}
	// The chunk's buffer stays ours until release, after the flush: no copy, and all the
	// batch's chunks leave in one vectored write.
	if p.writing.Load() == 0 {
		p.writing.Store(int64(p.eng.clock()))
	}
	var h [wire.PieceHeaderSize]byte
	if oc.parent != nil {
		if oc.piece != p.slot {
			panic(fmt.Sprintf("braid: piece %d given to the path in slot %d", oc.piece, p.slot))
		}
		p.trace("send", wire.TypePiece, wire.PieceHeaderSize+len(oc.payload))
		ph := wire.PieceHeader{ChunkHeader: oc.hdr, Index: uint8(oc.piece), Length: uint32(len(oc.parent.payload))}
		err := p.w.QueueRetained(wire.TypePiece, wire.AppendPieceHeader(h[:0], ph), oc.payload)
		return append(batch, oc), err
	}
	p.trace("send", wire.TypeChunk, wire.ChunkHeaderSize+len(oc.payload))
	err := p.w.QueueRetained(wire.TypeChunk, wire.AppendChunkHeader(h[:0], oc.hdr), oc.payload)
	return append(batch, oc), err
}

func (p *path) queueCtrl(f ctrlFrame) error {
	p.trace("send", f.t, f.n)
	return p.w.Queue(f.t, f.buf[:f.n], nil)
}

func (p *path) queueCredit() error {
	var b [wire.CreditSize]byte
	p.trace("send", wire.TypeCredit, len(b))
	return p.w.Queue(wire.TypeCredit, wire.AppendUint64(b[:0], p.eng.creditValue()), nil)
}

// queueAck writes the session's current record of received chunks.
func (p *path) queueAck() error {
	p.eng.fillAck(&p.ackOut)
	p.ackBuf = wire.AppendChunkAck(p.ackBuf[:0], p.ackOut)
	p.trace("send", wire.TypeChunkAck, len(p.ackBuf))
	return p.w.Queue(wire.TypeChunkAck, p.ackBuf, nil)
}

// release lets go of written chunks, noting when they were sent.
func (p *path) release(batch []*outChunk, written bool) []*outChunk {
	now := int64(p.eng.clock())
	for i, oc := range batch {
		n := len(oc.payload)
		p.queued.Add(-int64(n))
		if written {
			oc.sentAt.Store(now)
			p.wrote(oc, int64(n))
			p.chunksSent.Add(1)
			p.bytesSent.Add(uint64(n))
		}
		p.eng.release(oc)
		batch[i] = nil
	}
	p.writing.Store(0)
	return batch[:0]
}

// lingerClose half-closes conn and discards what the peer still sends, for up to a second, so
// that closing with unread input does not make the kernel reset the connection and destroy the
// ERROR frame just written before the peer reads it.
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	// Closed after the second rather than given a read deadline: the path's reader may clear a
	// deadline at the same moment, and a peer that then sends nothing (blackholed) would hold
	// io.Copy, and Abort with it, forever.
	t := time.AfterFunc(time.Second, func() { conn.Close() })
	defer t.Stop()
	io.Copy(io.Discard, conn)
}
