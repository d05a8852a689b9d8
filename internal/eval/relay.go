package eval

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// relay is a TCP relay that delays every byte by a one-way delay in each direction, preserving
// order; the delay can change while connections are open and applies to bytes already queued.
// The netns backend runs one per path in the server namespace, because the kernel there has no
// netem: the client reaches the server through it.
type relay struct {
	ln       net.Listener
	upstream string
	delay    atomic.Int64 // nanoseconds
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

const (
	relayRead  = 32 << 10
	relayQueue = 512 // chunks per direction (16 MiB)
)

func newRelay(listen, upstream string, delay time.Duration) (*relay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	r.delay.Store(int64(delay))
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *relay) setDelay(d time.Duration) { r.delay.Store(int64(d)) }

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !r.track(c) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			up, err := net.DialTimeout("tcp", r.upstream, 5*time.Second)
			if err != nil || !r.track(up) {
				c.Close()
				return
			}
			var done sync.WaitGroup
			done.Add(2)
			go func() { defer done.Done(); r.pipe(c, up) }()
			go func() { defer done.Done(); r.pipe(up, c) }()
			done.Wait()
			c.Close()
			up.Close()
			r.mu.Lock()
			delete(r.conns, c)
			delete(r.conns, up)
			r.mu.Unlock()
		}()
	}
}

type stamped struct {
	data []byte
	at   time.Time
}

// pipe copies src to dst, each read delayed by the current delay from the time it was read.
func (r *relay) pipe(src, dst net.Conn) {
	q := make(chan stamped, relayQueue)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, relayRead)
			n, err := src.Read(buf)
			if n > 0 {
				q <- stamped{buf[:n], time.Now()}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					// a reset or a closed relay: end both sides at once
					src.Close()
					dst.Close()
				}
				return
			}
		}
	}()
	for c := range q {
		if d := time.Until(c.at.Add(time.Duration(r.delay.Load()))); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.data); err != nil {
			src.Close()
			dst.Close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}
