// Package faultproxy is an in-process, fault-injecting TCP proxy for tests:
// one Proxy per path, listening on 127.0.0.1, forwarding to a loopback
// upstream, with faults that can be switched on and off while connections
// are open (Reset, Blackhole, Cut, Throttle, Latency, Restore).
//
// # Why not toxiproxy
//
// github.com/Shopify/toxiproxy/v2 (v2.12.0, the latest; v2.5.0 is the same
// design) was evaluated as an in-process library and rejected:
//
//   - reset_peer does not reset existing connections: SO_LINGER 0 is set
//     only on links that had the toxic when they started, and the toxic acts
//     only when the next chunk of data arrives, so an idle connection is not
//     touched and a busy one gets a FIN (read returns EOF), not a RST.
//   - the timeout toxic (its blackhole) drops the bytes it receives instead
//     of holding them, keeps reading so no backpressure applies, and
//     removing it closes the connection, so a blackholed connection cannot
//     resume.
//   - disabling a proxy (its cut) closes connections with a FIN, not a RST.
//   - Stop does not wait for the per-link goroutines, and NewProxy needs an
//     *ApiServer whose metrics container pulls gorilla/mux, prometheus,
//     zerolog and tomb (about 15 modules) into go.mod.
//
// What is needed is small (accept, dial upstream, one reader and one writer
// per direction with controllable gates), so it is written here.
//
// # Semantics
//
// Every change applies to current connections at once, not only to new
// ones. Each direction of a connection is a FIFO of chunks read from the
// source, stamped with the time they were read; a writer sends them on after
// the current latency, through the current rate limit, unless blackholed.
//
//   - Reset closes both sockets of every current connection with SO_LINGER 0,
//     so the client and the upstream each get a TCP RST (ECONNRESET); data
//     queued in the proxy is discarded. New connections are accepted as usual.
//   - Blackhole stops forwarding in both directions on current and new
//     connections without closing anything (no FIN, no RST). Bytes are held,
//     not dropped, as on a stalled link: the proxy stops reading from the
//     sources, so at most one read (32 KiB) per direction enters the proxy
//     after Blackhole and TCP backpressure holds the rest in the kernel's
//     socket buffers; a FIN sent by a peer is held the same way. A new
//     connection accepted while blackholed is not dialed upstream until
//     Restore (the upstream sees nothing through a black hole). On Restore
//     every held byte is delivered, in order.
//   - Cut resets every current connection (as Reset) and, until Restore,
//     accepts each new connection and resets it at once (the client's dial
//     succeeds, its first read gets ECONNRESET); the listening port is kept.
//   - Throttle limits each direction of each connection to a token bucket
//     of the given rate (burst 1/50 s of the rate, at least 1 byte, at most
//     64 KiB, starting empty), so n bytes take at least n/rate.
//   - Latency delays every chunk by d in each direction from the time it was
//     read, preserving order; chunks are queued, not slept on, so throughput
//     is not capped at buffer/d (up to 16 MiB per direction may be in flight
//     inside the proxy while a latency is set, 256 KiB otherwise).
//   - Corrupt(offset) flips the lowest bit of the byte at that offset of the
//     client-to-upstream stream of every connection (counted from its first
//     byte; connections already past it are not touched), once each: a
//     corrupted link that TCP's checksum did not catch.
//   - Restore clears Blackhole, Cut, Throttle, Latency and Corrupt.
//     Connections reset by Reset or Cut stay dead; blackholed ones resume.
//
// A FIN from either side is forwarded (after the data before it) as a
// half-close; a RST or error on either side resets both sides. The upstream
// must be a loopback address (127.0.0.0/8, ::1 or localhost): New refuses
// any other.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	readBufSize  = 32 << 10
	baseQueue    = 256 << 10 // bytes queued per direction before the reader stops
	latencyQueue = 16 << 20  // the same while a latency is set
	maxBurst     = 64 << 10
	dialTimeout  = 10 * time.Second
)

type state struct {
	blackhole bool
	cut       bool
	rate      int // bytes per second, 0 = unlimited
	latency   time.Duration
	flipAt    int64 // 1 + the client-to-upstream offset of the byte to corrupt; 0 for none
}

func (s state) queueLimit() int {
	if s.latency > 0 {
		return latencyQueue
	}
	return baseQueue
}

// Proxy is a fault-injecting TCP proxy from a loopback listener to one
// upstream address. Its methods are safe for concurrent use.
type Proxy struct {
	upstream string
	ln       *net.TCPListener
	addr     string

	mu      sync.Mutex
	st      state
	changed chan struct{} // closed and replaced on every state change
	links   map[*link]struct{}
	closed  bool

	wg sync.WaitGroup // every goroutine the proxy started
}

// New starts a proxy listening on 127.0.0.1 (a free port) that forwards each
// accepted connection to upstream, which must be a loopback address.
func New(upstream string) (*Proxy, error) {
	if err := checkLoopback(upstream); err != nil {
		return nil, err
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		upstream: upstream,
		ln:       ln,
		addr:     ln.Addr().String(),
		changed:  make(chan struct{}),
		links:    make(map[*link]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: upstream %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("faultproxy: upstream %q is not a loopback address", addr)
}

// Addr is the "127.0.0.1:port" address to dial instead of the upstream.
func (p *Proxy) Addr() string { return p.addr }

// Conns is the number of connections currently open through the proxy,
// counting those accepted but not yet dialed upstream (while blackholed).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Reset resets every current connection: both of its sockets are closed with
// SO_LINGER 0, so the client and the upstream get a TCP RST. New connections
// are still accepted. Conns is 0 when Reset returns (barring new ones).
func (p *Proxy) Reset() {
	for _, l := range p.current(nil) {
		l.finish(true)
	}
}

// Blackhole stops forwarding on current and new connections in both
// directions, closing nothing; held bytes are delivered after Restore.
func (p *Proxy) Blackhole() { p.update(func(s *state) { s.blackhole = true }) }

// Cut resets every current connection and, until Restore, resets each new
// connection as soon as it is accepted.
func (p *Proxy) Cut() {
	for _, l := range p.current(func(s *state) { s.cut = true }) {
		l.finish(true)
	}
}

// Restore undoes Blackhole, Cut, Throttle and Latency.
func (p *Proxy) Restore() { p.update(func(s *state) { *s = state{} }) }

// Throttle limits each direction of each connection to bytesPerSec
// (token bucket); 0 or less means unlimited.
func (p *Proxy) Throttle(bytesPerSec int) {
	p.update(func(s *state) { s.rate = max(bytesPerSec, 0) })
}

// Latency delays every forwarded byte by d in each direction, preserving
// order; 0 or less means none.
func (p *Proxy) Latency(d time.Duration) {
	p.update(func(s *state) { s.latency = max(d, 0) })
}

// Corrupt flips the lowest bit of the byte at offset in the client-to-upstream direction of every
// connection, current or new, that has not yet passed it.
func (p *Proxy) Corrupt(offset int64) {
	p.update(func(s *state) { s.flipAt = offset + 1 })
}

// Close stops listening, resets every connection and waits until every
// goroutine of the proxy has exited. Further calls return nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.finish(true)
	}
	p.wg.Wait()
	return err
}

// update applies f to the state and wakes everyone waiting on it.
func (p *Proxy) update(f func(*state)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updateLocked(f)
}

func (p *Proxy) updateLocked(f func(*state)) {
	if p.closed {
		return
	}
	f(&p.st)
	close(p.changed)
	p.changed = make(chan struct{})
}

// current applies f (if any) to the state and returns the current links,
// atomically, so that a link accepted later sees the new state.
func (p *Proxy) current(f func(*state)) []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f != nil {
		p.updateLocked(f)
	}
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return links
}

func (p *Proxy) snapshot() (state, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st, p.changed
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE; Close ends the loop
			continue
		}
		p.mu.Lock()
		if p.closed || p.st.cut {
			p.mu.Unlock()
			closeConn(c, true)
			continue
		}
		l := newLink(p, c)
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// closeConn closes c, with a RST (SO_LINGER 0) if rst.
func closeConn(c *net.TCPConn, rst bool) {
	if rst {
		_ = c.SetLinger(0)
	}
	_ = c.Close()
}

// link is one proxied connection: client <-> proxy <-> upstream.
type link struct {
	p      *Proxy
	client *net.TCPConn
	ctx    context.Context // done when the link is finished
	cancel context.CancelFunc
	once   sync.Once
	left   atomic.Int32 // directions not yet finished by a forwarded FIN

	mu       sync.Mutex
	upstream *net.TCPConn
}

func newLink(p *Proxy, c *net.TCPConn) *link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{p: p, client: c, ctx: ctx, cancel: cancel}
	l.left.Store(2)
	return l
}

// run dials upstream (once not blackholed) and starts the two directions.
func (l *link) run() {
	defer l.p.wg.Done()
	for {
		st, changed := l.p.snapshot()
		if !st.blackhole {
			break
		}
		select {
		case <-changed:
		case <-l.ctx.Done():
			return
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(l.ctx, "tcp", l.p.upstream)
	if err != nil {
		l.finish(true)
		return
	}
	up := c.(*net.TCPConn)
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		closeConn(up, true)
		return
	}
	l.upstream = up
	l.mu.Unlock()
	toUp := newPipe(l, l.client, up)
	toUp.corruptible = true
	toClient := newPipe(l, up, l.client)
	l.p.wg.Add(4)
	go toUp.read()
	go toUp.write()
	go toClient.read()
	go toClient.write()
}

// finish closes the link once: with RSTs if rst, else gracefully (after a
// FIN has been forwarded both ways).
func (l *link) finish(rst bool) {
	l.once.Do(func() {
		l.cancel()
		l.mu.Lock()
		up := l.upstream
		l.mu.Unlock()
		closeConn(l.client, rst)
		if up != nil {
			closeConn(up, rst)
		}
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
	})
}

type chunk struct {
	data []byte
	at   time.Time // when it was read
	eof  bool
}

// pipe is one direction of a link: a reader goroutine fills a FIFO from src,
// a writer goroutine drains it to dst through the gates.
type pipe struct {
	l        *link
	src, dst *net.TCPConn

	corruptible bool  // the client-to-upstream direction, where Corrupt acts
	offset      int64 // bytes read from src so far (reader only)
	flipped     bool  // Corrupt has acted on this pipe (reader only)

	mu     sync.Mutex
	q      []chunk
	qBytes int

	readable chan struct{} // cap 1: something was pushed
	space    chan struct{} // cap 1: something was popped
}

func newPipe(l *link, src, dst *net.TCPConn) *pipe {
	return &pipe{
		l: l, src: src, dst: dst,
		readable: make(chan struct{}, 1),
		space:    make(chan struct{}, 1),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *pipe) push(c chunk) {
	p.mu.Lock()
	p.q = append(p.q, c)
	p.qBytes += len(c.data)
	p.mu.Unlock()
	signal(p.readable)
}

func (p *pipe) pop() (chunk, bool) {
	for {
		p.mu.Lock()
		if len(p.q) > 0 {
			c := p.q[0]
			p.q[0] = chunk{}
			p.q = p.q[1:]
			p.qBytes -= len(c.data)
			p.mu.Unlock()
			signal(p.space)
			return c, true
		}
		p.mu.Unlock()
		select {
		case <-p.readable:
		case <-p.l.ctx.Done():
			return chunk{}, false
		}
	}
}

// waitToRead waits until the source may be read: not blackholed and the queue
// below its limit. It returns false when the link is finished.
func (p *pipe) waitToRead() bool {
	for {
		st, changed := p.l.p.snapshot()
		p.mu.Lock()
		full := p.qBytes >= st.queueLimit()
		p.mu.Unlock()
		if !st.blackhole && !full {
			return true
		}
		select {
		case <-changed:
		case <-p.space:
		case <-p.l.ctx.Done():
			return false
		}
	}
}

func (p *pipe) read() {
	defer p.l.p.wg.Done()
	buf := make([]byte, readBufSize)
	for {
		if !p.waitToRead() {
			return
		}
		n, err := p.src.Read(buf)
		if n > 0 {
			p.corrupt(buf[:n])
			p.push(chunk{data: append([]byte(nil), buf[:n]...), at: time.Now()})
		}
		if err != nil {
			switch {
			case p.l.ctx.Err() != nil:
			case errors.Is(err, io.EOF):
				p.push(chunk{eof: true, at: time.Now()})
			default:
				p.l.finish(true)
			}
			return
		}
	}
}

// corrupt applies Corrupt to b, the bytes just read.
func (p *pipe) corrupt(b []byte) {
	start := p.offset
	p.offset += int64(len(b))
	if !p.corruptible || p.flipped {
		return
	}
	st, _ := p.l.p.snapshot()
	if at := st.flipAt - 1; st.flipAt > 0 && at >= start && at < p.offset {
		b[at-start] ^= 1
		p.flipped = true
	}
}

func (p *pipe) write() {
	defer p.l.p.wg.Done()
	var b bucket
	for {
		c, ok := p.pop()
		if !ok || !p.deliver(c, &b) {
			return
		}
		if c.eof {
			_ = p.dst.CloseWrite()
			if p.l.left.Add(-1) == 0 {
				p.l.finish(false)
			}
			return
		}
	}
}

// deliver forwards one chunk (or, for an EOF chunk, waits until its FIN may
// go) through blackhole, latency and throttle. It returns false when the link
// is finished.
func (p *pipe) deliver(c chunk, b *bucket) bool {
	data := c.data
	for {
		st, changed := p.l.p.snapshot()
		now := time.Now()
		wait := time.Duration(-1) // until the state changes
		switch due := c.at.Add(st.latency); {
		case st.blackhole:
		case now.Before(due):
			wait = due.Sub(now)
		case len(data) == 0:
			return true
		default:
			n := len(data)
			wait = 0
			if st.rate > 0 {
				n, wait = b.take(st.rate, n, now)
			} else {
				b.rate = 0
			}
			if wait == 0 {
				if _, err := p.dst.Write(data[:n]); err != nil {
					p.l.finish(true)
					return false
				}
				data = data[n:]
				continue
			}
		}
		if !p.sleep(wait, changed) {
			return false
		}
	}
}

// sleep waits for d (forever if negative), a state change or the link's end.
func (p *pipe) sleep(d time.Duration, changed <-chan struct{}) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
	case <-changed:
	case <-p.l.ctx.Done():
		return false
	}
	return true
}

// bucket is a token bucket; it starts empty whenever the rate changes.
type bucket struct {
	rate   int
	tokens float64
	last   time.Time
}

// take returns how many of want bytes may be written now, or, if none, how
// long to wait.
func (b *bucket) take(rate, want int, now time.Time) (int, time.Duration) {
	if rate != b.rate {
		*b = bucket{rate: rate, last: now}
	}
	burst := min(max(rate/50, 1), maxBurst)
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*float64(rate), float64(burst))
	b.last = now
	piece := min(want, burst)
	if b.tokens >= float64(piece) {
		b.tokens -= float64(piece)
		return piece, 0
	}
	wait := time.Duration((float64(piece) - b.tokens) / float64(rate) * float64(time.Second))
	return 0, max(wait, time.Millisecond)
}
