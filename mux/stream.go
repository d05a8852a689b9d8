package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/braidnet/braid/internal/bufpool"
)

// copyBelow: DATA frames shorter than this go out with Transport.Send (a copy) rather than
// SendNoCopy, so that small writes do not hold a buffer until the peer acknowledges them.
const copyBelow = 16 << 10

// Stream is one byte stream of a Mux: a net.Conn with CloseWrite. Read and Write may be called
// concurrently with each other; Close may be called at any time.
//
// Close after the peer's FIN (after reading io.EOF) is graceful; Close while the peer may still
// send resets the stream (CodeCancel), as closing a TCP socket with data unread does. Data
// received before a reset can still be read; the reset's *ResetError follows it.
type Stream struct {
	m        *Mux
	id       uint32
	target   string
	accepted bool       // opened by the peer
	opened   chan error // the peer's answer to our OPEN (cap 1); nil for accepted streams
	ctx      context.Context
	cancel   context.CancelFunc // ends waits and sends; called when the stream ends or closes

	wmu sync.Mutex // one writer at a time: orders REPLY, DATA and FIN

	mu         sync.Mutex
	confirmed  bool // REPLY OK sent (accepted stream) or received (opened stream)
	segs       []segment
	buffered   int   // bytes in segs, unread
	window     int   // the receive window this stream keeps granted (grows while the reader keeps up)
	recvWindow int   // what the peer may still send
	credit     int   // read since the last WINDOW
	charged    int64 // this stream's share of the mux's receive budget (settleLocked)
	lastQueued int64 // Mux.outQueued after this stream's last queued frame (under Mux.outMu)
	grown      int64 // of which its window's growth beyond InitialWindow (Mux.grown)
	sendWindow int   // what we may still send
	finRecv    bool
	finSent    bool
	closed     bool    // Close or Refuse was called
	out        *output // CopyTo's destination, or nil
	err        error   // why the stream ended (reset, refusal, mux end), nil while it is open
	readable   chan struct{}
	writable   chan struct{}
	rdl, wdl   time.Time
}

// newStream makes a stream whose receive window (InitialWindow) the caller has taken from the
// budget.
func (m *Mux) newStream(id uint32, target string, sendWindow int, accepted bool) *Stream {
	w := m.cfg.InitialWindow
	s := &Stream{m: m, id: id, target: target, accepted: accepted, window: w, recvWindow: w,
		charged: int64(w), sendWindow: sendWindow, readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
	if !accepted {
		s.opened = make(chan error, 1)
	}
	// Not derived from m.ctx: a child would stay registered with it for the stream's life.
	// The mux ends every stream's context itself when it fails.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// ID returns the stream's id: odd for streams the dialing end opened, even for the other end's.
func (s *Stream) ID() uint32 { return s.id }

// Err returns why the stream ended: a *ResetError (the peer reset it), an error matching
// ErrClosed (this end closed or reset it), or one matching ErrSessionEnded (the mux ended). It
// is nil while the stream is open, including after both ends' FINs until Close.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Target returns what the opener asked to reach ("host:port", or empty for the default).
func (s *Stream) Target() string { return s.target }

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// segment is received stream data: data, and the buffer to hand back once it is read (a
// session message, or a pool buffer).
type segment struct {
	data []byte
	msg  []byte // a session message to Release, or nil
	buf  []byte // a pool buffer to Put, or nil
}

func (m *Mux) free(g segment) {
	if g.msg != nil {
		m.t.Release(g.msg)
	}
	if g.buf != nil {
		bufpool.Put(g.buf)
	}
}

// onFrame applies a frame from the peer; an error is a protocol violation. keep, if not nil, is
// the session message f's body lies in, which the stream may take (took) instead of copying.
func (s *Stream) onFrame(f frame, keep []byte) (took bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, nil // ended here while the frame was on its way
	}
	switch f.typ {
	case typeReply:
		if s.accepted || s.confirmed {
			return false, protoErr("unexpected REPLY")
		}
		if f.code() == CodeOK {
			s.confirmed = true
			s.opened <- nil
			return false, nil
		}
		s.endLocked(&OpenError{Target: s.target, Code: f.code(), Reason: f.reason()})
	case typeData:
		n := len(f.body)
		switch {
		case !s.confirmed:
			return false, protoErr("DATA before the stream was confirmed")
		case s.finRecv:
			return false, protoErr("DATA after FIN")
		case n > s.recvWindow:
			return false, protoErr("DATA of %d bytes, window %d", n, s.recvWindow)
		}
		s.recvWindow -= n
		if s.closed {
			return false, nil // closed here, its reset on the way: nobody will read it
		}
		s.buffered += n
		body := f.body
		if k := s.writeDirectLocked(body); k > 0 {
			s.consumeLocked(k)
			if body = body[k:]; len(body) == 0 {
				return false, nil
			}
		}
		g := segment{data: body, msg: keep}
		if keep == nil {
			g.buf = bufpool.Get(len(body))
			g.data = g.buf[:copy(g.buf, body)]
		}
		s.segs = append(s.segs, g)
		kick(s.readable)
		s.startPumpLocked()
		return keep != nil, nil
	case typeWindow:
		if !s.confirmed {
			return false, protoErr("WINDOW before the stream was confirmed")
		}
		if int64(s.sendWindow)+int64(f.increment()) > MaxWindowLimit {
			return false, protoErr("WINDOW takes the send window beyond %d", MaxWindowLimit)
		}
		s.sendWindow += int(f.increment())
		kick(s.writable)
	case typeFin:
		if s.finRecv || !s.confirmed {
			return false, protoErr("unexpected FIN")
		}
		s.finRecv = true
		s.recvWindow, s.credit = 0, 0
		s.settleLocked()
		if s.finSent {
			s.m.remove(s)
		}
		kick(s.readable)
		s.startPumpLocked()
	case typeRst:
		s.endLocked(&ResetError{Code: f.code(), Reason: f.reason()})
	}
	return false, nil
}

// end finishes the stream with err unless it has finished already.
func (s *Stream) end(err error) {
	s.mu.Lock()
	s.endLocked(err)
	s.mu.Unlock()
}

func (s *Stream) endLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	if s.opened != nil {
		select {
		case s.opened <- err: // an Open still waiting hears why
		default:
		}
	}
	s.cancel()
	s.settleLocked()
	s.m.remove(s)
	kick(s.readable)
	kick(s.writable)
	s.startPumpLocked()
}

// settleLocked makes the stream's share of the mux's receive budget what it can still need: its
// whole window while the peer may send, what it holds once the peer can send nothing more, and
// nothing once closed. It is the only place budget is handed back.
func (s *Stream) settleLocked() {
	receiving := !s.closed && !s.finRecv && s.err == nil
	var want int64
	switch {
	case receiving:
		want = int64(s.window)
	case !s.closed:
		want = int64(s.buffered)
	}
	if want > s.charged {
		panic(fmt.Sprintf("mux: stream %d needs %d bytes of budget, holds %d", s.id, want, s.charged))
	}
	s.m.give(s.charged - want)
	s.charged = want
	if !receiving && s.grown > 0 { // the window is over, and its growth with it
		s.m.grown.Add(-s.grown)
		s.grown = 0
	}
}

// consumeLocked accounts for n bytes read out of the buffer, granting the peer more window once
// half of it has been read. A reader that has nearly emptied the buffer by then (a quarter of
// the window or less left) doubles the window (up to MaxWindow, as the budget allows): it keeps
// up, so the window, not the reader, limits.
func (s *Stream) consumeLocked(n int) {
	if s.closed {
		return // Close dropped the buffer and its budget already
	}
	s.buffered -= n
	if s.finRecv || s.err != nil {
		s.settleLocked()
		return
	}
	s.credit += n
	if s.credit < s.window/2 {
		return
	}
	inc := s.credit
	if s.buffered <= s.window/4 && s.window < s.m.cfg.MaxWindow {
		grow := min(s.window, s.m.cfg.MaxWindow-s.window)
		if s.m.grow(int64(grow)) {
			s.window += grow
			s.charged += int64(grow)
			s.grown += int64(grow)
			inc += grow
		}
	}
	s.recvWindow += inc
	s.credit = 0
	s.m.ctrl(s, appendWindow(nil, s.id, uint32(inc)))
}

// wait blocks until ch is kicked, the deadline passes or the stream's context ends.
func (s *Stream) wait(ch chan struct{}, deadline time.Time) error {
	if deadline.IsZero() {
		select {
		case <-ch:
		case <-s.ctx.Done():
		}
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-s.ctx.Done():
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
	return nil
}

// readStateLocked says why nothing can be read when the buffer is empty: nil to wait.
func (s *Stream) readStateLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.finRecv:
		return io.EOF
	case s.err != nil:
		return s.err
	}
	return nil
}

// Read reads stream data, returning io.EOF after the peer's FIN.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.segs) > 0 && len(p) > 0 {
			n := 0
			for len(s.segs) > 0 && n < len(p) {
				g := &s.segs[0]
				c := copy(p[n:], g.data)
				n += c
				g.data = g.data[c:]
				if len(g.data) == 0 {
					s.m.free(*g)
					s.segs[0] = segment{}
					s.segs = s.segs[1:]
				}
			}
			s.consumeLocked(n)
			s.mu.Unlock()
			return n, nil
		}
		err := s.readStateLocked()
		dl := s.rdl
		s.mu.Unlock()
		if err != nil || len(p) == 0 {
			return 0, err
		}
		if err := s.wait(s.readable, dl); err != nil {
			return 0, err
		}
	}
}

// WriteTo writes the stream's data to w until the peer's FIN (then it returns a nil error) or a
// failure; it hands w the received buffers themselves, with no copy. The window reopens for
// each buffer only once w has taken it.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		s.mu.Lock()
		if len(s.segs) > 0 {
			g := s.segs[0]
			s.segs[0] = segment{}
			s.segs = s.segs[1:]
			s.mu.Unlock()
			n, err := w.Write(g.data)
			total += int64(n)
			s.mu.Lock()
			s.consumeLocked(len(g.data))
			s.mu.Unlock()
			s.m.free(g)
			if err != nil {
				return total, err
			}
			continue
		}
		err := s.readStateLocked()
		dl := s.rdl
		s.mu.Unlock()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if err := s.wait(s.readable, dl); err != nil {
			return total, err
		}
	}
}

// confirmLocked sends REPLY OK for an accepted stream not yet confirmed; s.wmu is held.
func (s *Stream) confirmLocked() error {
	s.mu.Lock()
	if !s.accepted || s.confirmed {
		s.mu.Unlock()
		return nil
	}
	if err := s.writeStateLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.confirmed = true
	s.mu.Unlock()
	return s.m.queue(s, appendCoded(nil, typeReply, s.id, CodeOK, ""), nil, true)
}

// Confirm accepts a stream the peer opened: the opener's Open returns it. Write, ReadFrom and
// CloseWrite confirm implicitly; for a stream this end opened, Confirm does nothing.
func (s *Stream) Confirm() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.confirmLocked()
}

// Refuse answers a stream the peer opened with a failure: the opener's Open returns an
// *OpenError with code and reason. It does nothing to a confirmed stream (use Reset).
func (s *Stream) Refuse(code Code, reason string) {
	if code == CodeOK {
		code = CodeFailure
	}
	s.mu.Lock()
	if !s.accepted || s.confirmed || s.err != nil || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.endLocked(ErrClosed)
	s.mu.Unlock()
	s.m.ctrl(s, appendCoded(nil, typeReply, s.id, code, reason))
}

func (s *Stream) writeStateLocked() error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed || s.finSent:
		return ErrClosed
	}
	return nil
}

// reserve waits for send window and takes between 1 and want bytes of it (at most a frame's).
func (s *Stream) reserve(want int) (int, error) {
	for {
		s.mu.Lock()
		err := s.writeStateLocked()
		if err == nil && s.sendWindow > 0 {
			n := min(want, s.sendWindow, s.m.maxPayload)
			s.sendWindow -= n
			s.mu.Unlock()
			return n, nil
		}
		dl := s.wdl
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if err := s.wait(s.writable, dl); err != nil {
			return 0, err
		}
	}
}

// unreserve returns window reserve took and did not use.
func (s *Stream) unreserve(n int) {
	if n > 0 {
		s.mu.Lock()
		s.sendWindow += n
		s.mu.Unlock()
		kick(s.writable)
	}
}

// sendLarge hands a large DATA frame to the transport without a copy, once the frames the
// stream queued before it have been sent, under its write deadline; done recycles buf. A
// failure because the deadline or the stream ended first (nothing was sent) becomes the
// stream's own error if it has one, or os.ErrDeadlineExceeded; the window it would have used
// is handed back.
func (s *Stream) sendLarge(buf []byte, n int) error {
	putHeader(buf, typeData, s.id, n)
	if err := s.waitQueued(); err != nil {
		bufpool.Put(buf)
		return err
	}
	ctx := s.ctx
	s.mu.Lock()
	dl := s.wdl
	s.mu.Unlock()
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	err := s.m.t.SendNoCopy(ctx, buf[:headerLen+n], func() { bufpool.Put(buf) })
	if err == nil || ctx.Err() == nil {
		return err
	}
	s.unreserve(n) // not sent
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.writeStateLocked(); e != nil {
		return e
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	return err
}

// sendData sends data (at most a frame's worth) as one DATA frame: a small one through the
// send queue (a copy), a large one from buf (from bufpool, data after a header's room), which
// it then owns and recycles; buf may be nil for a small one.
func (s *Stream) sendData(buf, data []byte) error {
	if len(data) < copyBelow {
		err := s.m.queue(s, appendHeader(nil, typeData, s.id, len(data)), data, true)
		if buf != nil {
			bufpool.Put(buf)
		}
		return err
	}
	if buf == nil {
		buf = bufpool.Get(headerLen + len(data))
		copy(buf[headerLen:], data)
	}
	return s.sendLarge(buf, len(data))
}

// Write writes p to the stream, blocking while the peer's window for it is full.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.confirmLocked(); err != nil {
		return 0, err
	}
	written := 0
	for written < len(p) {
		n, err := s.reserve(len(p) - written)
		if err != nil {
			return written, err
		}
		if err := s.sendData(nil, p[written:written+n]); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// ReadFrom sends what it reads from r until io.EOF (which it does not turn into a FIN: call
// CloseWrite). Reading from a socket, it holds a buffer only while a read succeeds: an idle
// stream holds none.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.confirmLocked(); err != nil {
		return 0, err
	}
	var total int64
	src := newSource(r)
	for {
		n, err := s.reserve(s.m.maxPayload)
		if err != nil {
			return total, err
		}
		buf, k, rerr := src.read(n)
		s.unreserve(n - k)
		if k > 0 {
			if err := s.sendData(buf, buf[headerLen:headerLen+k]); err != nil {
				return total, err
			}
			total += int64(k)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// CloseWrite sends FIN: the peer reads io.EOF after the data written before it. Reading goes on.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.confirmLocked(); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.writeStateLocked(); err != nil {
		s.mu.Unlock()
		if errors.Is(err, ErrClosed) && s.finSent {
			return nil // a second CloseWrite
		}
		return err
	}
	s.finSent = true
	both := s.finRecv
	s.mu.Unlock()
	if err := s.m.queue(s, appendHeader(nil, typeFin, s.id, 0), nil, true); err != nil {
		return err
	}
	if both {
		s.m.remove(s)
	}
	return nil
}

// Reset aborts the stream both ways: the peer's reads and writes fail with a *ResetError
// carrying code and reason (after the data already sent, which it may still read). It does
// nothing to a stream that has already ended.
func (s *Stream) Reset(code Code, reason string) error {
	if code == CodeOK {
		code = CodeFailure
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil
	}
	s.endLocked(fmt.Errorf("%w: reset here (%v)", ErrClosed, code))
	s.mu.Unlock()
	s.m.ctrl(s, appendCoded(nil, typeRst, s.id, code, reason))
	return nil
}

// Close closes the stream and drops what it holds unread: gracefully (FIN, after whatever a
// concurrent Write is sending) if the peer has finished sending, else by reset (CodeCancel).
// An accepted stream not yet confirmed is refused instead. Later calls do nothing.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	unconfirmed := s.accepted && !s.confirmed
	s.closed = true
	for _, g := range s.segs {
		s.m.free(g)
	}
	s.segs, s.buffered = nil, 0
	s.startPumpLocked() // a CopyTo hears of the end
	switch {
	case s.err != nil:
		s.settleLocked()
		s.mu.Unlock()
		return nil
	case unconfirmed:
		s.endLocked(ErrClosed)
		s.mu.Unlock()
		s.m.ctrl(s, appendCoded(nil, typeReply, s.id, CodeFailure, "closed without an answer"))
		return nil
	case !s.finRecv:
		s.endLocked(ErrClosed)
		s.mu.Unlock()
		s.m.ctrl(s, appendCoded(nil, typeRst, s.id, CodeCancel, "closed before the end of the stream"))
		return nil
	}
	s.settleLocked()
	s.cancel() // a Write still blocked fails; wmu is then ours
	s.mu.Unlock()
	s.wmu.Lock()
	s.mu.Lock()
	fin := s.err == nil && !s.finSent
	s.finSent = true
	s.endLocked(ErrClosed)
	s.mu.Unlock()
	s.wmu.Unlock()
	if fin {
		s.m.ctrl(s, appendHeader(nil, typeFin, s.id, 0))
	}
	return nil
}

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline makes Read and WriteTo fail with os.ErrDeadlineExceeded once t passes; a
// zero t means none.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.rdl = t
	s.mu.Unlock()
	kick(s.readable)
	return nil
}

// SetWriteDeadline makes Write and ReadFrom fail with os.ErrDeadlineExceeded once t passes
// while they wait for window (a write already handed to a transport blocked on the session's
// window keeps the deadline it started with); a zero t means none.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wdl = t
	s.mu.Unlock()
	kick(s.writable)
	return nil
}

// Addr is a stream's address as a net.Addr: its id and target.
type Addr struct {
	ID     uint32 // the stream's id
	Target string // what its opener asked to reach
}

// Network returns "braid-mux".
func (a Addr) Network() string { return "braid-mux" }

// String returns "stream ID (TARGET)".
func (a Addr) String() string { return fmt.Sprintf("stream %d (%s)", a.ID, a.Target) }

// LocalAddr returns the stream's Addr.
func (s *Stream) LocalAddr() net.Addr { return Addr{s.id, s.target} }

// RemoteAddr returns the stream's Addr.
func (s *Stream) RemoteAddr() net.Addr { return Addr{s.id, s.target} }
