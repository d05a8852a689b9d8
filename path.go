package braid

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// pathQueueBytes bounds the chunk bytes waiting for one path's writer: enough to keep a fast path
// busy between scheduler decisions, little enough that a slow path does not hoard data.
const pathQueueBytes = 2 << 20

// pathQueueLen is how many chunks of the given size fit in pathQueueBytes (at least 2).
func pathQueueLen(chunkSize int) int { return max(2, pathQueueBytes/chunkSize) }

// maxWriteBatch bounds the bytes a path writer gathers into one write.
const maxWriteBatch = 2 << 20

// outChunk is one chunk on its way to a path. Its buffer comes from the session's pool and goes
// back once the chunk is written.
type outChunk struct {
	hdr     wire.ChunkHeader
	payload []byte
	buf     []byte
}

// ctrlFrame is a small control frame for a path's writer.
type ctrlFrame struct {
	t   wire.Type
	n   int
	buf [wire.MaxPingPayload]byte
}

// path is one TCP connection of a session. Its writer goroutine owns the wire.Writer; its reader
// owns the wire.Reader. A slow writer never blocks the reader.
type path struct {
	s     *Session
	index int
	conn  net.Conn
	r     *wire.Reader
	w     *wire.Writer
	log   *slog.Logger
	epoch time.Time // origin of keepalive timestamps

	data chan *outChunk
	ctrl chan ctrlFrame
	fin  chan uint64   // Close: flush, send CLOSE(count), half-close
	stop chan struct{} // closed when the path must end now

	stopOnce   sync.Once
	killCode   wire.Code // ERROR to send on stop; 0 for none
	killMsg    string
	writerDone chan struct{}
	dead       atomic.Bool
	finishing  atomic.Bool
	sawClose   bool // reader only: the peer's CLOSE arrived on this path

	queued     atomic.Int64
	chunksSent atomic.Uint64
	bytesSent  atomic.Uint64
	chunksRecv atomic.Uint64
	bytesRecv  atomic.Uint64
	srtt       atomic.Int64 // nanoseconds
	rttvar     atomic.Int64
}

func newPath(s *Session, index int, conn net.Conn, r *wire.Reader, w *wire.Writer) *path {
	return &path{
		s:          s,
		index:      index,
		conn:       conn,
		r:          r,
		w:          w,
		log:        s.log.With("path", index),
		epoch:      time.Now(),
		data:       make(chan *outChunk, pathQueueLen(s.chunkSize)),
		ctrl:       make(chan ctrlFrame, 16),
		fin:        make(chan uint64, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// enqueue queues a chunk for writing, waiting while the queue is full. It returns false if the
// path ended first.
func (p *path) enqueue(oc *outChunk) bool {
	if p.dead.Load() {
		return false
	}
	n := int64(len(oc.payload))
	p.queued.Add(n)
	select {
	case p.data <- oc:
		return true
	case <-p.stop:
		p.queued.Add(-n)
		return false
	}
}

// sendCtrl queues a control frame without blocking; a full queue drops it (PONGs and keepalive
// PINGs are worth nothing late).
func (p *path) sendCtrl(t wire.Type, payload []byte) {
	f := ctrlFrame{t: t}
	f.n = copy(f.buf[:], payload)
	select {
	case p.ctrl <- f:
	default:
	}
}

// finish asks the writer to write what is queued, then CLOSE(count), then half-close.
func (p *path) finish(count uint64) {
	p.finishing.Store(true)
	select {
	case p.fin <- count:
	default:
	}
}

// kill ends the path now, sending ERROR(code, msg) first if code is not 0.
func (p *path) kill(code wire.Code, msg string) {
	p.stopOnce.Do(func() {
		p.killCode, p.killMsg = code, msg
		p.dead.Store(true)
		close(p.stop)
	})
	select {
	case <-p.writerDone:
		p.conn.Close() // no writer left to do it
	default:
	}
}

func (p *path) schedView() sched.Path {
	return sched.Path{
		Index:       p.index,
		Live:        !p.dead.Load() && !p.finishing.Load(),
		QueuedBytes: p.queued.Load(),
		SRTT:        time.Duration(p.srtt.Load()),
	}
}

func (p *path) stats() PathStats {
	return PathStats{
		Index:          p.index,
		Local:          p.conn.LocalAddr().String(),
		Remote:         p.conn.RemoteAddr().String(),
		Live:           !p.dead.Load(),
		ChunksSent:     p.chunksSent.Load(),
		BytesSent:      p.bytesSent.Load(),
		ChunksReceived: p.chunksRecv.Load(),
		BytesReceived:  p.bytesRecv.Load(),
		SRTT:           time.Duration(p.srtt.Load()),
	}
}

func (p *path) trace(dir string, t wire.Type, n int) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("frame", "dir", dir, "type", t.String(), "bytes", n)
	}
}

// writeLoop writes the path's frames: chunks, control frames, CREDIT when the session asks, and
// a PING when the path has been idle for KeepAlive. Frames that are ready together leave in one
// write.
func (p *path) writeLoop() {
	defer p.s.wg.Done()
	defer close(p.writerDone)
	keepalive := time.NewTimer(p.s.cfg.KeepAlive)
	defer keepalive.Stop()
	var batch []*outChunk
	for {
		p.conn.SetWriteDeadline(time.Now().Add(p.s.cfg.WriteTimeout))
		var err error
		select {
		case <-p.stop:
			p.writeKill()
			return
		case count := <-p.fin:
			err = p.writeFinish(count, batch)
			p.conn.(interface{ CloseWrite() error }).CloseWrite()
			if err != nil {
				p.log.Debug("finishing path failed", "err", err)
			}
			return
		case oc := <-p.data:
			batch, err = p.queueChunk(oc, batch)
		case f := <-p.ctrl:
			err = p.queueCtrl(f)
		case <-p.s.creditKick:
			err = p.queueCredit()
		case <-keepalive.C:
			var ts [8]byte
			binary.BigEndian.PutUint64(ts[:], uint64(time.Since(p.epoch)))
			p.trace("send", wire.TypePing, 8)
			err = p.w.Queue(wire.TypePing, ts[:], nil)
		}
	gather:
		for err == nil && p.w.Pending() < maxWriteBatch && len(batch) < 64 {
			select {
			case oc := <-p.data:
				batch, err = p.queueChunk(oc, batch)
			case f := <-p.ctrl:
				err = p.queueCtrl(f)
			default:
				break gather
			}
		}
		if err == nil {
			err = p.w.Flush()
		}
		batch = p.release(batch)
		if err != nil {
			p.s.pathFailed(p, fmt.Errorf("write: %w", err))
			return
		}
		keepalive.Reset(p.s.cfg.KeepAlive)
	}
}

// writeFinish drains the queue, then writes CLOSE(count).
func (p *path) writeFinish(count uint64, batch []*outChunk) error {
	var err error
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
		var b [wire.CloseSize]byte
		p.trace("send", wire.TypeClose, len(b))
		if err = p.w.Queue(wire.TypeClose, wire.AppendUint64(b[:0], count), nil); err == nil {
			err = p.w.Flush()
		}
	}
	p.release(batch)
	return err
}

// writeKill sends the ERROR frame kill asked for, briefly, and closes the connection.
func (p *path) writeKill() {
	if p.killCode != 0 {
		var b [2 + wire.MaxErrorMessage]byte
		p.conn.SetWriteDeadline(time.Now().Add(min(time.Second, p.s.cfg.WriteTimeout)))
		p.trace("send", wire.TypeError, 0)
		p.w.Queue(wire.TypeError, wire.AppendError(b[:0], wire.ErrorFrame{Code: p.killCode, Message: p.killMsg}), nil)
		if p.w.Flush() == nil {
			lingerClose(p.conn)
		}
	}
	p.conn.Close()
	for {
		select {
		case oc := <-p.data:
			p.queued.Add(-int64(len(oc.payload)))
			p.s.chunkPool.Put(oc)
		default:
			return
		}
	}
}

func (p *path) queueChunk(oc *outChunk, batch []*outChunk) ([]*outChunk, error) {
	var h [wire.ChunkHeaderSize]byte
	p.trace("send", wire.TypeChunk, wire.ChunkHeaderSize+len(oc.payload))
	// The chunk's buffer stays ours until release, after the flush: no copy, and all the
	// batch's chunks leave in one vectored write.
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
	return p.w.Queue(wire.TypeCredit, wire.AppendUint64(b[:0], p.s.creditValue()), nil)
}

// release returns written chunks to the pool and counts them.
func (p *path) release(batch []*outChunk) []*outChunk {
	for i, oc := range batch {
		n := len(oc.payload)
		p.queued.Add(-int64(n))
		p.chunksSent.Add(1)
		p.bytesSent.Add(uint64(n))
		p.s.chunkPool.Put(oc)
		batch[i] = nil
	}
	return batch[:0]
}

// sessionError is a protocol violation on a path; it ends the whole session with its code.
type sessionError struct {
	code wire.Code
	err  error
}

func (e *sessionError) Error() string { return e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

func violation(code wire.Code, err error) error { return &sessionError{code: code, err: err} }

// readLoop reads the path's frames until it ends, then reports why to the session.
func (p *path) readLoop() {
	defer p.s.wg.Done()
	err := p.read()
	p.dead.Store(true)
	// The session decides what the peer is told (an ERROR frame, written by the writer, which
	// then closes the connection); kill with no code is a no-op if it already did.
	p.s.pathEnded(p, err)
	p.kill(0, "")
}

func (p *path) read() error {
	s := p.s
	for {
		p.conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		h, err := p.r.ReadHeader()
		if err != nil {
			if err == io.EOF && (p.sawClose || s.isClosing()) {
				return errPeerClosedPath
			}
			if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrUnknownType) {
				return violation(codeFor(err), err)
			}
			return err
		}
		p.conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		if h.Type == wire.TypeChunk {
			if err := p.readChunk(h); err != nil {
				return err
			}
			continue
		}
		payload, err := p.r.ReadPayload(h)
		if err != nil {
			return err
		}
		p.trace("recv", h.Type, len(payload))
		if err := p.handleControl(h.Type, payload); err != nil {
			return err
		}
	}
}

// readChunk places a CHUNK's payload straight into its message's buffer.
func (p *path) readChunk(h wire.Header) error {
	s := p.s
	if h.Length < wire.ChunkHeaderSize {
		return violation(wire.CodeInvalidChunk, fmt.Errorf("%w: CHUNK of %d bytes has no room for its header", ErrInvalidChunk, h.Length))
	}
	var hb [wire.ChunkHeaderSize]byte
	if err := p.r.ReadFull(hb[:]); err != nil {
		return err
	}
	ch, _ := wire.ParseChunkHeader(hb[:])
	n := int(h.Length) - wire.ChunkHeaderSize
	p.trace("recv", wire.TypeChunk, int(h.Length))
	s.mu.Lock()
	dst, dup, err := s.reasm.Reserve(ch, n)
	s.mu.Unlock()
	if err != nil {
		return violation(codeFor(mapReasmError(err)), mapReasmError(err))
	}
	if dup {
		return p.r.Discard(n)
	}
	if err := p.r.ReadFull(dst); err != nil {
		s.mu.Lock()
		s.reasm.Cancel(ch)
		s.mu.Unlock()
		return err
	}
	p.chunksRecv.Add(1)
	p.bytesRecv.Add(uint64(n))
	s.mu.Lock()
	s.reasm.Commit(ch)
	if s.reasm.Ready() {
		s.broadcast()
	}
	s.mu.Unlock()
	return nil
}

func (p *path) handleControl(t wire.Type, payload []byte) error {
	s := p.s
	switch t {
	case wire.TypePing:
		if len(payload) > wire.MaxPingPayload {
			return violation(wire.CodeProtocol, fmt.Errorf("%w: PING payload of %d bytes", ErrProtocol, len(payload)))
		}
		p.sendCtrl(wire.TypePong, payload)
	case wire.TypePong:
		if len(payload) == 8 {
			p.sampleRTT(time.Since(p.epoch) - time.Duration(binary.BigEndian.Uint64(payload)))
		}
	case wire.TypeCredit:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		s.mu.Lock()
		if int64(v) > s.peerConsumed {
			if int64(v) > s.sent {
				s.mu.Unlock()
				return violation(wire.CodeProtocol, fmt.Errorf("%w: CREDIT %d beyond the %d bytes sent", ErrProtocol, v, s.sent))
			}
			s.peerConsumed = int64(v)
			s.broadcast()
		}
		s.mu.Unlock()
	case wire.TypeClose:
		v, err := wire.ParseUint64(t, payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		p.sawClose = true
		s.mu.Lock()
		if s.peerClosed && s.peerItems != v {
			s.mu.Unlock()
			return violation(wire.CodeProtocol, fmt.Errorf("%w: CLOSE counts %d items, earlier %d", ErrProtocol, v, s.peerItems))
		}
		if !s.peerClosed {
			s.peerClosed, s.peerItems = true, v
			s.broadcast()
		}
		s.mu.Unlock()
	case wire.TypeError:
		e, err := wire.ParseError(payload)
		if err != nil {
			return violation(wire.CodeProtocol, err)
		}
		return &RemoteError{Code: e.Code, Message: e.Message}
	default:
		return violation(wire.CodeProtocol, fmt.Errorf("%w: unexpected %s on a session path", ErrProtocol, t))
	}
	return nil
}

// sampleRTT updates the smoothed RTT and variance as RFC 6298 does.
func (p *path) sampleRTT(r time.Duration) {
	if r <= 0 {
		return
	}
	srtt, rttvar := p.srtt.Load(), p.rttvar.Load()
	if srtt == 0 {
		p.srtt.Store(int64(r))
		p.rttvar.Store(int64(r / 2))
		return
	}
	d := srtt - int64(r)
	if d < 0 {
		d = -d
	}
	p.rttvar.Store((3*rttvar + d) / 4)
	p.srtt.Store((7*srtt + int64(r)) / 8)
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

// lingerClose half-closes conn and discards what the peer still sends, for up to a second, so
// that closing with unread input does not make the kernel reset the connection and destroy the
// ERROR frame just written before the peer reads it.
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, conn)
}
