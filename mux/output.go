package mux

import (
	"io"
	"syscall"

	"github.com/braidnet/braid/internal/bufpool"
)

// directMax is the largest DATA frame the mux's reader writes straight into a CopyTo socket:
// small frames (requests, answers, keystrokes) reach their socket with no goroutine hand-off,
// while bulk data is written by a goroutine of the stream's own, so that one stream's large
// writes never hold up the frames of the others.
const directMax = 16 << 10

// output is where CopyTo sends a stream's data.
type output struct {
	w       io.Writer
	raw     syscall.RawConn // w as a socket, for writes that must not block; nil otherwise
	done    func(n int64, err error)
	n       int64 // written so far
	pumping bool  // a pump goroutine is running
	ended   bool  // done has been called

	// A direct write (writeDirectLocked): its data and result, and the function RawConn.Write
	// calls, made once so that a write allocates nothing.
	direct  []byte
	wrote   int
	writeFn func(fd uintptr) bool
}

// CopyTo writes the stream's data to w as it arrives, until the peer's FIN or a failure, then
// calls done once, on a goroutine of its own, with the bytes written and nil (after FIN) or the
// error. Unlike WriteTo it needs no goroutine while the stream is idle: one runs only while
// received data waits to be written, and a small frame for a socket that can take it at once is
// written by the mux's reader itself. The window reopens as w takes the data. After CopyTo,
// the stream must not be read any other way.
func (s *Stream) CopyTo(w io.Writer, done func(n int64, err error)) {
	o := &output{w: w, done: done}
	o.useSocket(w)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = o
	if len(s.segs) > 0 || s.readStateLocked() != nil {
		s.startPumpLocked()
	}
}

// startPumpLocked starts the goroutine that writes buffered data to the output, unless it runs.
func (s *Stream) startPumpLocked() {
	if s.out == nil || s.out.pumping || s.out.ended {
		return
	}
	s.out.pumping = true
	go s.pump()
}

// writeDirectLocked tries to write a frame's data straight to the output socket without
// blocking; it returns how much was written (the rest is for the pump).
func (s *Stream) writeDirectLocked(data []byte) int {
	o := s.out
	if o == nil || o.raw == nil || o.pumping || o.ended || len(s.segs) > 0 || len(data) > directMax {
		return 0
	}
	o.direct, o.wrote = data, 0
	err := o.raw.Write(o.writeFn)
	n := o.wrote
	o.direct = nil
	if err != nil {
		return 0
	}
	o.n += int64(n)
	return n
}

// pump writes buffered data to the output until none is left (then it stops: a stream waiting
// for data has no goroutine) or the stream's data has ended (then it calls done).
func (s *Stream) pump() {
	for {
		s.mu.Lock()
		o := s.out
		if len(s.segs) == 0 {
			err := s.readStateLocked()
			if err == nil {
				o.pumping = false
				s.mu.Unlock()
				return
			}
			o.pumping, o.ended = false, true
			n := o.n
			s.mu.Unlock()
			if err == io.EOF {
				err = nil
			}
			o.done(n, err)
			return
		}
		g := s.segs[0]
		s.segs[0] = segment{}
		s.segs = s.segs[1:]
		s.mu.Unlock()
		k, err := o.w.Write(g.data)
		s.mu.Lock()
		o.n += int64(k)
		s.consumeLocked(len(g.data))
		s.mu.Unlock()
		s.m.free(g)
		if err != nil {
			s.mu.Lock()
			o.pumping, o.ended = false, true
			n := o.n
			s.mu.Unlock()
			o.done(n, err)
			return
		}
	}
}

// readPlain is source.read for any reader: a full-size buffer, one Read.
func readPlain(r io.Reader, limit int) ([]byte, int, error) {
	buf := bufpool.Get(headerLen + limit)
	n, err := r.Read(buf[headerLen : headerLen+limit])
	if n == 0 {
		bufpool.Put(buf)
		buf = nil
	}
	return buf, n, err
}
