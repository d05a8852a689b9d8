package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// sessionError is a protocol violation on a path; it ends the whole session with its code.
type sessionError struct {
	code wire.Code
	err  error
}

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

func violation(code wire.Code, err error) error { return &sessionError{code: code, err: err} }

// protocolViolation is a violation with code PROTOCOL whose error matches ErrProtocol as well as
// err (a malformed payload's wire error, say).
func protocolViolation(err error) error {
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return violation(wire.CodeProtocol, err)
}

// errPeerClosedPath is how a path ends normally: end of stream after the peer's CLOSE, or after
// our own.
var errPeerClosedPath = errors.New("peer closed the path")

// runReader runs the path's reader until the path ends, then calls onReaderEnd; or until it
// dozes, when it returns at once and the goroutine that wakes it (wakeReader) runs it again.
func (p *path) runReader() {
	if p.readLoop() && p.onReaderEnd != nil {
		p.onReaderEnd()
	}
}

// readLoop reads the path's frames until it ends, then reports why to the session, and returns
// true; or until the reader dozes (doze.go), when it returns false at once.
func (p *path) readLoop() (ended bool) {
	err := p.read()
	if err == errDozing {
		return false
	}
	if t := p.reclaimTimer.Load(); t != nil {
		t.Stop()
	}
	p.dead.Store(true)
	p.downMu.Lock()
	if p.downReason != nil {
		err = p.downReason
	}
	p.downMu.Unlock()
	// The session decides what the peer is told (an ERROR frame, written by the writer, which
	// then closes the connection); kill with no code is a no-op if it already did.
	p.eng.onPathEnded(p, err)
	p.kill(0, "")
	// A dead path stays listed for its counters; its read buffer goes (the writer drops its own).
	p.rd.Store(nil)
	p.r = nil
	return true
}

func (p *path) read() error {
	for {
		if p.doze() {
			return errDozing
		}
		h, err := p.nextHeader()
		if err == errInterrupted {
			continue // meant for a Receive that held the role before us
		}
		if err == nil {
			err = p.frame(h)
		}
		if err != nil {
			return p.readError(err)
		}
		if p.r.Buffered() > 0 || !p.eng.yieldRead(p) {
			continue
		}
		// A Receive reads the path itself for a while (inline.go).
		hb := p.park()
		if hb.err == nil && hb.has {
			hb.err = p.frame(hb.h)
		}
		if hb.err != nil {
			return p.readError(hb.err)
		}
	}
}

// readError maps an error from reading frames to why the path ends: end of stream once the peer
// (or this end) has closed is a clean end, a header over the limits a violation.
func (p *path) readError(err error) error {
	if err == io.EOF && (p.sawClose || p.eng.isClosing()) {
		return errPeerClosedPath
	}
	if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrUnknownType) {
		return violation(codeFor(err), err)
	}
	return err
}

// frame reads the rest of the frame whose header h was just read, and acts on it.
func (p *path) frame(h wire.Header) error {
	// Heard now: an idle session's monitor looks at the path only at its PathTimeout deadline,
	// and what it then finds must be when the path was last heard, not its own last look.
	now := int64(p.eng.clock())
	p.lastRecv.Store(now)
	p.shared.lastHeard.Store(now)
	if !p.gotFrame {
		p.gotFrame = true
		p.eng.onFrame()
	}
	if h.Type == wire.TypeChunk || h.Type == wire.TypePiece {
		return p.readData(h)
	}
	return p.readControl(h)
}

// readData reads the header of a CHUNK or PIECE and hands the frame to the session, which has
// the payload read where it belongs.
func (p *path) readData(h wire.Header) error {
	if (h.Type == wire.TypePiece) != p.mode.Coded() {
		return violation(wire.CodeProtocol, fmt.Errorf("%w: %s in a %s session", ErrProtocol, h.Type, p.mode))
	}
	hb := p.dataHdr[:] // a local array would escape to the heap, one allocation per chunk
	size := wire.ChunkHeaderSize
	if h.Type == wire.TypePiece {
		size = wire.PieceHeaderSize
	}
	if int(h.Length) < size {
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: %s of %d bytes has no room for its header", ErrInvalidChunk, h.Type, h.Length))
	}
	if err := p.r.ReadFull(hb[:size]); err != nil {
		return err
	}
	p.trace("recv", h.Type, int(h.Length))
	n := int(h.Length) - size
	if h.Type == wire.TypeChunk {
		ch, _ := wire.ParseChunkHeader(hb[:size])
		return p.eng.onChunk(p, ch, n)
	}
	ph, err := wire.ParsePieceHeader(hb[:size])
	if err != nil {
		return protocolViolation(err)
	}
	return p.eng.onPiece(p, ph, n)
}

// readBody reads a data frame's payload into dst (the session says where), counting it.
func (p *path) readBody(dst []byte) error {
	if err := p.r.ReadFull(dst); err != nil {
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(len(dst)))
	return nil
}

// errOvertaken ends readBodyUnless: a complete copy of the chunk being read arrived on another
// path meanwhile.
var errOvertaken = errors.New("session: chunk overtaken by its copy")

// readBodyUnless reads a chunk's payload into dst, as readBody, but looks at p.overtaken between
// reads of the connection: once it is set (a complete copy of the chunk arrived elsewhere, see
// offerCopy) it stops and returns how much it read and errOvertaken, so that the session can
// deliver the copy at once instead of waiting for a slow path to finish the original. It makes
// the same reads of the connection as readBody.
func (p *path) readBodyUnless(dst []byte) (int, error) {
	p.intMu.Lock()
	p.inBody = true
	p.intMu.Unlock()
	defer p.endBody()
	off := 0
	for off < len(dst) {
		if p.overtaken.Load() {
			return off, errOvertaken
		}
		n, err := p.r.ReadSome(dst[off:])
		off += n
		if err != nil {
			if p.overtaken.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return off, errOvertaken // cutBody ended the read
			}
			return off, err
		}
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(len(dst)))
	return off, nil
}

// cutBody makes the holder of p's read role, if it is reading a chunk's payload in
// readBodyUnless, return from its read now (a read deadline in the past), so that it sees
// overtaken even when nothing more arrives: a path cut in the middle of a chunk whose copy came
// by another path then delivers the copy at once, and lives on, reading past the rest of the
// original when the path comes back, instead of being ended as stuck. Call with the session's
// lock held, after setting overtaken: while the chunk is still reserved by the path (the caller
// checked), a payload read in progress is that chunk's.
func (p *path) cutBody() {
	p.intMu.Lock()
	defer p.intMu.Unlock()
	if p.inBody && !p.bodyCut {
		p.bodyCut = true
		p.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// readingBody reports whether the holder of p's read role is in readBodyUnless, where cutBody
// reaches it. Call with the session's lock held.
func (p *path) readingBody() bool {
	p.intMu.Lock()
	defer p.intMu.Unlock()
	return p.inBody
}

// endBody ends a payload read of readBodyUnless, clearing the deadline cutBody set.
func (p *path) endBody() {
	p.intMu.Lock()
	defer p.intMu.Unlock()
	p.inBody = false
	if p.bodyCut {
		p.bodyCut = false
		p.conn.SetReadDeadline(noDeadline)
	}
}

// skipRest discards the rest of a chunk's payload (n bytes, read bytes of which are in) after
// its copy overtook it, counting the chunk as received on p.
func (p *path) skipRest(read, n int) error {
	if err := p.r.Discard(n - read); err != nil {
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(n))
	p.overtakenChunks.Add(1)
	return nil
}

// skipBody reads and discards a data frame's n payload bytes (a duplicate), counting them.
func (p *path) skipBody(n int) error {
	if err := p.r.Discard(n); err != nil {
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(n))
	return nil
}

// readControl reads a control frame, within ReadTimeout once its header has come, and acts on it:
// PING and PONG here, the rest in the session.
func (p *path) readControl(h wire.Header) error {
	limit, ok := wire.MaxPathControlPayload(h.Type)
	if !ok {
		return protocolViolation(fmt.Errorf("unexpected %s on a session path", h.Type))
	}
	if int(h.Length) > limit {
		return protocolViolation(fmt.Errorf("%s of %d bytes, at most %d", h.Type, h.Length, limit))
	}
	if h.Length > 0 && int(h.Length) > p.r.Buffered() {
		p.conn.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
		p.deadline = true
	}
	payload, err := p.r.ReadPayload(h)
	if err != nil {
		return err
	}
	p.trace("recv", h.Type, len(payload))
	switch t := h.Type; t {
	case wire.TypePing, wire.TypePong:
		if t == wire.TypePing {
			if !p.pongNow(payload) {
				p.sendCtrl(wire.TypePong, payload)
			}
		} else if len(payload) == 8 {
			sent := time.Duration(binary.BigEndian.Uint64(payload))
			p.sampleRTT(p.eng.clock()-sent, false)
			// A round trip begun after a stall shows the path works both ways again.
			p.recovered(sent)
		}
	case wire.TypeChunkAck:
		if err := wire.ParseChunkAck(payload, &p.ackIn); err != nil {
			return protocolViolation(err)
		}
		return p.eng.onAck(p, &p.ackIn)
	case wire.TypeCredit:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return protocolViolation(err)
		}
		return p.eng.onCredit(v)
	case wire.TypeClose:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return protocolViolation(err)
		}
		p.sawClose = true
		return p.eng.onClose(v)
	case wire.TypeError:
		e, err := wire.ParseError(payload)
		if err != nil {
			return protocolViolation(err)
		}
		return remoteError(e)
	default:
		return violation(wire.CodeProtocol, fmt.Errorf("%w: unexpected %s on a session path", ErrProtocol, t))
	}
	return nil
}
