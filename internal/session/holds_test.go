package session

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// chunkRecords holds, for each session made with recordChunks among its hooks, every chunk
// record its pool ever made (*Session → *chunkRegistry).
var chunkRecords sync.Map

type chunkRegistry struct {
	mu  sync.Mutex
	all []*outChunk
}

// recordChunks is the newChunk hook that danglingHolds needs.
func recordChunks(s *Session, oc *outChunk) {
	r, _ := chunkRecords.LoadOrStore(s, &chunkRegistry{})
	reg := r.(*chunkRegistry)
	reg.mu.Lock()
	reg.all = append(reg.all, oc)
	reg.mu.Unlock()
}

// withRecording returns hooks (nil: none) with recordChunks added.
func withRecording(hooks *testHooks) *testHooks {
	h := &testHooks{}
	if hooks != nil {
		*h = *hooks
	}
	h.newChunk = recordChunks
	return h
}

// dialRecorded is Dial for a session whose chunk records danglingHolds can check.
func dialRecorded(ctx context.Context, addr string, cfg *Config) (*Session, error) {
	return dial(ctx, addr, pinned(cfg), withRecording(nil))
}

// danglingHolds returns the holds on s's chunks that nothing will let go of: every record its
// pool made is either in the outstanding set, held once, or back in the pool, held by nothing.
// Call once the session has ended and its goroutines have stopped (Close or Abort has returned),
// on a session made with recordChunks.
func danglingHolds(t *testing.T, s *Session) int64 {
	t.Helper()
	r, ok := chunkRecords.LoadAndDelete(s)
	if !ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.nextSeqSent > 0 {
			t.Fatalf("%s sent %d chunks but was not made with recordChunks", s, s.nextSeqSent)
		}
		return 0 // it never made a chunk record: it sent nothing
	}
	reg := r.(*chunkRegistry)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := -int64(s.out.Len())
	for _, oc := range reg.all {
		refs := int64(oc.refs.Load())
		if refs < 0 {
			t.Errorf("%s: a chunk record has %d holds", s, refs)
		}
		n += refs
	}
	return n
}

// gateListener wraps the connections it accepts; the one accepted next after arm is gated: its
// second write (the first of the path writer, after the handshake's answer) waits until release,
// and, if failBig, every write after that of more than 1 KiB fails, as on a connection that broke
// while its writer was held up.
type gateListener struct {
	net.Listener
	next atomic.Pointer[gateConn]
}

type gateConn struct {
	net.Conn
	failBig bool
	blocked chan struct{} // closed when the gated write starts waiting
	release chan struct{}
	writes  atomic.Int32
}

var errInjected = errors.New("injected write failure")

func (l *gateListener) arm(failBig bool) *gateConn {
	g := &gateConn{failBig: failBig, blocked: make(chan struct{}), release: make(chan struct{})}
	l.next.Store(g)
	return g
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if g := l.next.Swap(nil); g != nil {
		g.Conn = c
		return g, nil
	}
	return c, nil
}

func (c *gateConn) Write(b []byte) (int, error) {
	switch n := c.writes.Add(1); {
	case n == 2:
		close(c.blocked)
		<-c.release
	case n > 2 && c.failBig && len(b) > 1<<10:
		return 0, errInjected
	}
	return c.Conn.Write(b)
}

// startGateListener runs a Listener on a gateListener.
func startGateListener(t *testing.T, cfg *Config, hooks *testHooks) (*Listener, *gateListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The gate counts the server's writes on the TCP connection: without TLS each is a frame
	// write of the path's.
	gl := &gateListener{Listener: ln}
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	c.Insecure = true
	l, err := newListener(gl, &c, hooks)
	if err != nil {
		t.Fatal(err)
	}
	plainAddrs.Store(l.Addr().String(), true)
	t.Cleanup(func() { l.Close(); plainAddrs.Delete(l.Addr().String()) })
	return l, gl
}

// TestRetransmitWriteErrorReleasesChunks: a path's writer that fails in the middle of a batch of
// retransmissions (a write error while it gathers more than the wire writer holds) lets go of
// every chunk of the batch, those it had not reached included.
func TestRetransmitWriteErrorReleasesChunks(t *testing.T) {
	l, gl := startGateListener(t, quietConfig(), withRecording(nil))
	addr := l.Addr().String()
	const chunk = 64 << 10
	a1, acc := openRawSession(t, addr, 0, chunk)
	srv := acceptOne(t, l)
	a2 := attachRaw(t, addr, acc, 1)
	a2.conn.SetDeadline(time.Time{})
	a2.expectAttachOK()
	var readers sync.WaitGroup
	defer readers.Wait()
	defer srv.Abort()
	defer a1.conn.Close() // the raw peer closes first, as a real one would on ERROR
	defer a2.conn.Close()
	a1.discard(&readers)
	a2.discard(&readers)
	testutil.WaitFor(t, func() bool { return len(srv.Stats().Paths) == 2 }, "two paths")

	// 80 chunks, 40 on each path, none acknowledged (the peer never does).
	if err := srv.Send(context.Background(), make([]byte, 80*chunk)); err != nil {
		t.Fatal(err)
	}
	allOn := func(index int) func() bool {
		return func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			all := true
			srv.out.Each(func(_ uint64, oc *outChunk) { all = all && oc.path == index })
			return all
		}
	}
	// Path 1 fails: its chunks go to path 0.
	a2.reset()
	testutil.WaitFor(t, allOn(0), "every chunk on path 0")
	// A third path joins; its writer is held up in its first write.
	gate := gl.arm(true)
	release := sync.OnceFunc(func() { close(gate.release) })
	defer release() // before Abort, which waits for the writer
	b := attachRaw(t, addr, acc, 2)
	b.conn.SetDeadline(time.Time{})
	ib := b.expectAttachOK()
	defer b.conn.Close()
	b.discard(&readers)
	<-gate.blocked
	// Path 0 fails: all 80 chunks go to the third path's retransmission queue at once.
	a1.reset()
	testutil.WaitFor(t, allOn(ib), "every chunk on path %d", ib)
	// Its writer takes them in one batch, which is more than the wire writer holds (4 MiB): the
	// write it makes part way through fails.
	release()
	testutil.WaitFor(t, func() bool { return !pathLive(srv, ib) }, "path %d to end", ib)
	srv.Abort()
	if n := danglingHolds(t, srv); n != 0 {
		t.Fatalf("%d chunk holds never let go of", n)
	}
}

// TestRedundantRouteQueuesOnce: in redundant mode, when the path Send chose for a chunk turns
// unusable while Send waits for room on it, after a copy went to another path, Send does not put
// the chunk in that other path's queue of new data a second time. (Sending it again because its
// path stalled is the retransmission machinery's business, and goes by the other queue.)
func TestRedundantRouteQueuesOnce(t *testing.T) {
	var (
		mu      sync.Mutex
		seen    = map[*path]map[uint64]bool{}
		twice   []uint64
		waiting = make(chan *path, 1)
	)
	hooks := &testHooks{
		queueOnly: true,
		enqueued: func(p *path, oc *outChunk) {
			mu.Lock()
			defer mu.Unlock()
			if seen[p] == nil {
				seen[p] = map[uint64]bool{}
			}
			if seen[p][oc.hdr.Seq] {
				twice = append(twice, oc.hdr.Seq)
			}
			seen[p][oc.hdr.Seq] = true
		},
		enqueueWaits: func(p *path, _ *outChunk) {
			select {
			case waiting <- p:
			default:
			}
		},
	}
	l, gl := startGateListener(t, quietConfig(), hooks)
	addr := l.Addr().String()
	const chunk = 64 << 10
	// Path 0's writer is held up in its first write, so its queue only fills.
	gate := gl.arm(false)
	a, acc := openRawSession(t, addr, 1, chunk)
	srv := acceptOne(t, l)
	var readers sync.WaitGroup
	defer readers.Wait()
	defer srv.Abort()
	defer a.conn.Close()      // the raw peer closes first, as a real one would on ERROR
	defer close(gate.release) // first of all: Abort waits for the writer
	<-gate.blocked
	// Path 1 reads every chunk and acknowledges it.
	b := attachRaw(t, addr, acc, 1)
	b.conn.SetDeadline(time.Time{})
	b.expectAttachOK()
	defer b.conn.Close()
	var highest atomic.Int64 // highest seq received on path 1, plus one
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			f, err := b.r.ReadFrame()
			if err != nil {
				return
			}
			if f.Type != wire.TypeChunk {
				continue
			}
			h, _ := wire.ParseChunkHeader(f.Payload)
			if h.Seq+1 > uint64(highest.Load()) {
				highest.Store(int64(h.Seq + 1))
				if b.w.WriteFrame(wire.TypeChunkAck, wire.AppendChunkAck(nil, wire.ChunkAck{Cum: h.Seq + 1})) != nil {
					return
				}
			}
		}
	}()
	testutil.WaitFor(t, func() bool { return len(srv.Stats().Paths) == 2 }, "two paths")
	srv.mu.Lock()
	p0 := srv.pathAt(0)
	srv.mu.Unlock()

	// Messages of 16 chunks, each sent once path 1 has taken the last: path 1's queue (32
	// chunks) always has room for a copy, while path 0's fills in two messages. On the third,
	// Send waits for room on path 0 with a copy of the chunk already on path 1; then path 0
	// stalls, as its retransmission timer would make it.
	msg := make([]byte, 16*chunk)
	sent := make(chan error, 1)
	for i := 0; ; i++ {
		go func() { sent <- srv.Send(context.Background(), msg) }()
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			n := srv.nextSeqSent
			srv.mu.Unlock()
			testutil.WaitFor(t, func() bool { return uint64(highest.Load()) == n }, "chunk %d", n)
			continue
		case p := <-waiting:
			if p != p0.path {
				t.Fatalf("Send waited for room on path %d", p.index)
			}
		}
		break
	}
	p0.stall(srv.clock())
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(twice) > 0 {
		t.Fatalf("chunks queued twice on one path: seqs %v", twice)
	}
}

// TestEnqueueRacingPathEndReleasesChunk: a chunk that enters a path's queue just after the path's
// writer has stopped and let go of what the queue held (Send found the path alive a moment
// before) is let go of too, instead of waiting forever for a writer that is gone.
func TestEnqueueRacingPathEndReleasesChunk(t *testing.T) {
	paused, resume := make(chan *path), make(chan struct{})
	var once atomic.Bool
	hooks := &testHooks{queueOnly: true, enqueueing: func(p *path, _ *outChunk) {
		if once.CompareAndSwap(false, true) {
			paused <- p
			<-resume
		}
	}}
	l, _ := startHookedListener(t, quietConfig(), withRecording(hooks))
	a, _ := openRawSession(t, l.Addr().String(), 0, 4096)
	srv := acceptOne(t, l)
	defer srv.Abort()
	sent := make(chan error, 1)
	go func() { sent <- srv.Send(context.Background(), []byte("one chunk")) }()
	p := <-paused // Send has found the path alive and is about to queue the chunk
	a.reset()
	<-p.writerDone // the path has ended and its writer has stopped
	close(resume)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	srv.Abort()
	if n := danglingHolds(t, srv); n != 0 {
		t.Fatalf("%d chunk holds never let go of", n)
	}
}
