package mux

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
)

// memTransport is one end of an in-memory, ordered, unbounded message pipe: a stand-in for a
// session in tests that are about the mux alone. Its unbounded queue means only the mux's own
// flow control bounds what a receiver holds.
type memTransport struct {
	in, out *memQueue
}

type memQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	msgs   [][]byte
	closed error
	bytes  int       // queued
	ready  []*func() // AfterReady's functions waiting for a message or the end
}

func newQueue() *memQueue {
	q := &memQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

var errAborted = errors.New("memTransport: aborted")

func memPair() (*memTransport, *memTransport) {
	a, b := newQueue(), newQueue()
	return &memTransport{in: a, out: b}, &memTransport{in: b, out: a}
}

func (t *memTransport) Send(_ context.Context, msg []byte) error {
	q := t.out
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed != nil {
		return q.closed
	}
	q.msgs = append(q.msgs, append([]byte(nil), msg...))
	q.bytes += len(msg)
	q.cond.Broadcast()
	q.runReady()
	return nil
}

// runReady starts the functions AfterReady left waiting. Call with q.mu held.
func (q *memQueue) runReady() {
	for _, f := range q.ready {
		go (*f)()
	}
	q.ready = nil
}

// readyTransport is a memTransport with AfterReady, as *braid.Session has: the mux's reader
// then waits for messages without a goroutine.
type readyTransport struct{ *memTransport }

func (t readyTransport) AfterReady(f func()) (stop func() bool) {
	q := t.in
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) > 0 || q.closed != nil {
		go f()
		return func() bool { return false }
	}
	p := &f
	q.ready = append(q.ready, p)
	return func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		i := slices.Index(q.ready, p)
		if i < 0 {
			return false
		}
		q.ready = slices.Delete(q.ready, i, i+1)
		return true
	}
}

func (t *memTransport) SendNoCopy(ctx context.Context, msg []byte, done func()) error {
	err := t.Send(ctx, msg)
	if done != nil {
		done()
	}
	return err
}

func (t *memTransport) Receive(ctx context.Context) ([]byte, error) {
	q := t.in
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.msgs) == 0 {
		if q.closed != nil {
			return nil, q.closed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.cond.Wait()
	}
	m := q.msgs[0]
	q.msgs = q.msgs[1:]
	q.bytes -= len(m)
	return m, nil
}

func (t *memTransport) Release([]byte) {}

// Close ends the sending direction: the peer's Receive returns io.EOF after what was queued.
func (t *memTransport) Close() { t.out.close(io.EOF) }

func (t *memTransport) Abort() {
	t.in.close(errAborted)
	t.out.close(errAborted)
}

func (q *memQueue) close(err error) {
	q.mu.Lock()
	if q.closed == nil {
		q.closed = err
	}
	q.cond.Broadcast()
	q.runReady()
	q.mu.Unlock()
}

// pair returns a client and a server mux over a memTransport.
func pair(t interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}, ccfg, scfg *Config) (*Mux, *Mux, *memTransport, *memTransport) {
	t.Helper()
	return pairOver(t, ccfg, scfg, func(m *memTransport) Transport { return m })
}

// pairOver is pair with each end's transport made from its memTransport by over.
func pairOver(t interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}, ccfg, scfg *Config, over func(*memTransport) Transport) (*Mux, *Mux, *memTransport, *memTransport) {
	t.Helper()
	ct, st := memPair()
	c, err := Client(over(ct), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Server(over(st), scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		s.Close()
		ct.Abort()
	})
	return c, s, ct, st
}
