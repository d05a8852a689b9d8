package session

import (
	"errors"
	"os"
	"sync"
)

// Dozing readers. The reader of an idle session's path spends nearly all its time waiting for
// the next keepalive, and a goroutine blocked in a read keeps its stack (8 KiB or more) all that
// time: at thousands of idle sessions the readers' stacks were a third of a server's memory. So
// when the session is idle and nothing is buffered, the reader dozes: its goroutine ends, and the
// socket is handed to the process's poller (an epoll set of its own, on Linux; elsewhere readers
// never doze), which starts a new reader goroutine when bytes (or the end of the stream) arrive.
// The path's reader state (wire.Reader, role, counters) stays where it is, and the new goroutine
// carries on as if its read had returned.
//
// Nothing is lost in between:
//   - what crypto/tls has already taken from the socket is read before dozing: a read with a
//     deadline in the past returns it (or a record's start, after which everything else must
//     come from the socket), and otherwise times out having consumed nothing;
//   - the poller watches the socket level-triggered, so bytes already queued in it (that read
//     gave up before asking the socket) or come since wake the path as soon as it is armed;
//   - a path that must end (kill) wakes its dozing reader, which then sees the connection closed
//     and reports the end as a reader blocked in a read would.
//
// dozing says who owns the reader: set by the reader just before it arms the poller, it is taken
// back (compare-and-swap) by exactly one of the poller's event, kill, or the reader itself if
// the path was killed meanwhile; whoever takes it runs the reader on.

// errDozing ends read() when the reader dozes.
var errDozing = errors.New("reader dozing")

// dozeOff turns dozing off for the whole process (tests).
var dozeOff bool

// doze hands the path's socket to the poller, when the session is idle and the path has nothing
// buffered, and reports whether it did: the caller (the reader goroutine, holding the read role)
// must then return at once.
func (p *path) doze() bool {
	if p.woken {
		// Woken by the poller (or kill): read once, as the wait that dozing replaced would
		// have. The end of the stream, say, keeps the socket readable with nothing queued.
		p.woken = false
		return false
	}
	if dozeOff || !p.shared.idle.Load() || p.tcp == nil || p.r.Buffered() > 0 || p.dead.Load() {
		return false
	}
	if h := p.hooks; h != nil && h.noDoze {
		return false
	}
	// What TLS holds comes first: a read that cannot wait.
	p.intMu.Lock()
	if p.interrupted {
		p.intMu.Unlock()
		return false
	}
	p.conn.SetReadDeadline(aLongTimeAgo)
	p.deadline = true // nextHeader clears it
	p.intMu.Unlock()
	p.r.Release()
	if err := p.r.Wait(); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false // bytes to read, or an error that the next read meets again
	}
	p.dozing.Store(true)
	if !pollArm(p) {
		p.dozing.Store(false)
		return false
	}
	if p.dead.Load() && p.dozing.CompareAndSwap(true, false) {
		return false // killed before it could see the reader dozing: go on and end
	}
	if h := p.hooks; h != nil && h.readerDozed != nil {
		h.readerDozed(p)
	}
	return true
}

// wakeReader runs the path's reader again on a new goroutine if it dozes.
func (p *path) wakeReader() {
	if p.dozing.CompareAndSwap(true, false) {
		pollForget(p)
		p.woken = true
		go p.runReader()
	}
}

// tokens gives each dozing path a key for the poller's events.
type tokens struct {
	mu     sync.Mutex
	next   uint32
	by     map[uint32]*path
	broken error // the poller stopped: nothing is filed any more
}

// add files p under its token (given one on its first doze), unless the poller has stopped.
func (t *tokens) add(p *path) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken != nil {
		return false
	}
	if p.pollToken == 0 {
		for {
			t.next++
			if _, used := t.by[t.next]; t.next != 0 && !used {
				break
			}
		}
		p.pollToken = t.next
	}
	t.by[p.pollToken] = p
	return true
}

// take removes and returns the path filed under token, if any.
func (t *tokens) take(token uint32) *path {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.by[token]
	delete(t.by, token)
	return p
}

// drop removes p if it is filed.
func (t *tokens) drop(p *path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by[p.pollToken] == p {
		delete(t.by, p.pollToken)
	}
}
