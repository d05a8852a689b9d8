package eval

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/braidnet/braid"
)

// Transports: what carries a run's workload.
const (
	// TransportBraid is a Braid session over all the run's paths.
	TransportBraid = "braid"
	// TransportMPTCP is one Linux MPTCP connection with a subflow per path (netns only).
	TransportMPTCP = "mptcp"
	// TransportTCP is the baseline: one plain TCP connection per path, each sending its own
	// stream of the workload's messages, with nothing reassembled across paths. Its goodput is
	// what the paths give TCP in that run, the most any multipath transport over TCP could get.
	TransportTCP = "tcp"
)

// baselineApplies reports whether the TCP baseline runs on sc: only bulk workloads, since a
// paced workload copied onto every path would offer N times its load.
func baselineApplies(sc *Scenario) bool { return sc.Workload.Kind == Bulk }

// frameLen is how the baseline and the MPTCP runs frame a message on a byte stream: a 4-byte
// big-endian length, then the message.
const frameLen = 4

// tcpSink is the receiving end of the TCP baseline: one listener per path, every connection
// accepted on listener i counted as path i's, every message read handed to the recorder.
type tcpSink struct {
	lns   []net.Listener
	bytes []atomic.Int64 // per path: message bytes received, framing included
	rec   atomic.Pointer[recorder]
	lat   bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool
}

// newTCPSink listens on every address in addrs (one per path) and serves until Close.
// Messages read before the recorder is set (see setRecorder) are counted but not recorded.
func newTCPSink(addrs []string, latency bool) (*tcpSink, error) {
	k := &tcpSink{bytes: make([]atomic.Int64, len(addrs)), lat: latency, conns: map[net.Conn]struct{}{}}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			k.Close()
			return nil, err
		}
		k.lns = append(k.lns, ln)
	}
	for i, ln := range k.lns {
		k.wg.Add(1)
		go k.accept(i, ln)
	}
	return k, nil
}

// Addrs returns the listeners' addresses, by path.
func (k *tcpSink) Addrs() []string {
	out := make([]string, len(k.lns))
	for i, ln := range k.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

func (k *tcpSink) setRecorder(r *recorder) { k.rec.Store(r) }

// counters returns the bytes received so far on each path.
func (k *tcpSink) counters() []int64 {
	out := make([]int64, len(k.bytes))
	for i := range k.bytes {
		out[i] = k.bytes[i].Load()
	}
	return out
}

func (k *tcpSink) accept(i int, ln net.Listener) {
	defer k.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		k.mu.Lock()
		if k.done {
			k.mu.Unlock()
			c.Close()
			return
		}
		k.conns[c] = struct{}{}
		k.mu.Unlock()
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			k.read(i, c)
			k.mu.Lock()
			delete(k.conns, c)
			k.mu.Unlock()
			c.Close()
		}()
	}
}

func (k *tcpSink) read(i int, c net.Conn) {
	readFrames(c, func(msg []byte) {
		k.bytes[i].Add(int64(frameLen + len(msg)))
		if rec := k.rec.Load(); rec != nil {
			rec.delivered(msg, k.lat)
		}
	})
}

// readFrames reads framed messages from c and hands each to got (valid only during the call)
// until reading fails or a frame is longer than MaxMessageSize.
func readFrames(c io.Reader, got func(msg []byte)) {
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [frameLen]byte
	var buf []byte // grown to the largest message seen
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if n > MaxMessageSize {
			return
		}
		if n > len(buf) {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return
		}
		got(buf[:n])
	}
}

// writeFrame writes msg to c framed as readFrames reads it; hdr is scratch space.
func writeFrame(c io.Writer, hdr *[frameLen]byte, msg []byte) error {
	binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
	bufs := net.Buffers{hdr[:], msg}
	_, err := bufs.WriteTo(c)
	return err
}

// Close closes the listeners and every connection, and waits for the readers.
func (k *tcpSink) Close() {
	k.mu.Lock()
	k.done = true
	for c := range k.conns {
		c.Close()
	}
	k.mu.Unlock()
	for _, ln := range k.lns {
		ln.Close()
	}
	k.wg.Wait()
}

// tcpFlowsUnit is what the baseline's per-path counters count.
const tcpFlowsUnit = "message bytes received on the path's TCP connection (4-byte framing included)"

// sendTCPFlows sends sc's workload from start to start+Duration on one plain TCP connection per
// spec, all at once. A connection that fails is dialled again (the message being written is
// lost to the count) until the end, as a Braid path is.
func sendTCPFlows(ctx context.Context, sc *Scenario, start time.Time, specs []braid.PathSpec, cc string) error {
	end := start.Add(sc.Duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	errs := make([]error, len(specs))
	budget := byteBudget(sc) // the run's bound, over all its connections
	var wg sync.WaitGroup
	flows := make([]*tcpFlow, len(specs))
	for i, spec := range specs {
		flows[i] = &tcpFlow{remote: spec.Remote, cc: cc}
		if spec.Local != "" {
			host, port, err := net.SplitHostPort(spec.Local)
			if err != nil {
				host, port = spec.Local, "0" // an address without a port
			}
			if flows[i].local, err = net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port)); err != nil {
				return fmt.Errorf("path %d: local address: %w", i, err)
			}
		}
	}
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.close()
			errs[i] = sendWorkload(ctx, sc, start, budget, f.send)
			if errs[i] == nil && !f.connected && f.dialErr != nil {
				errs[i] = fmt.Errorf("path %d: never connected: %w", i, f.dialErr)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tcpFlow is one baseline connection, re-dialled after a failure.
type tcpFlow struct {
	remote    string
	local     *net.TCPAddr // nil: the system's choice
	c         net.Conn
	hdr       [frameLen]byte
	connected bool   // at least once
	dialErr   error  // the last failure to connect
	cc        string // TCP_CONGESTION, if set
}

// redial is the pause before dialling a failed flow again.
const redial = 50 * time.Millisecond

func (f *tcpFlow) send(ctx context.Context, msg []byte) error {
	for f.c == nil {
		d := net.Dialer{Timeout: 2 * time.Second}
		if f.local != nil {
			d.LocalAddr = f.local // a nil *TCPAddr in the interface would not be nil
		}
		if f.cc != "" {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = setCongestion(fd, f.cc)
				}); err != nil {
					return err
				}
				if serr != nil {
					return fmt.Errorf("congestion control %q: %w", f.cc, serr)
				}
				return nil
			}
		}
		c, err := d.DialContext(ctx, "tcp", f.remote)
		if err == nil {
			f.c, f.connected = c, true
			break
		}
		f.dialErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-time.After(redial):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		f.c.SetWriteDeadline(dl)
	}
	if err := writeFrame(f.c, &f.hdr, msg); err != nil {
		f.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Lost: the next message dials again, after a pause (a cut path may accept a
		// connection and fail its first write, which would otherwise spin).
		select {
		case <-time.After(redial):
		case <-ctx.Done():
			return ctx.Err()
		}
		return errLost
	}
	return nil
}

// errLost is a message a baseline flow could not write (its connection failed): it is not
// counted against the run's byte budget.
var errLost = errors.New("eval: message lost with its connection")

func (f *tcpFlow) close() {
	if f.c != nil {
		f.c.Close()
		f.c = nil
	}
}
