package session

import (
	"errors"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
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

// pollerOff is set if the poller stops (pollBroken): no reader dozes any more.
var pollerOff atomic.Bool

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
	if !canDoze || pollerOff.Load() || !p.shared.idle.Load() || p.tcp == nil || p.r.Buffered() > 0 || p.dead.Load() {
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
	// Filed before dozing is set, so that whoever takes dozing finds the entry to remove.
	if !poller.add(p) {
		return false
	}
	p.dozing.Store(true)
	if h := p.hooks; h != nil && h.dozeArming != nil {
		h.dozeArming(p)
	}
	if !pollArm(p) || p.dead.Load() || pollerOff.Load() {
		// Not armed, killed before kill could see the reader dozing, or the poller stopped
		// before pollBroken could see it: the reader goes on, unless a waker took it first and
		// runs it already.
		if p.dozing.CompareAndSwap(true, false) {
			poller.drop(p)
			return false
		}
		return true
	}
	if h := p.hooks; h != nil && h.readerDozed != nil {
		h.readerDozed(p)
	}
	return true
}

// wakeReader runs the path's reader again on a new goroutine if it dozes.
func (p *path) wakeReader() {
	if p.dozing.CompareAndSwap(true, false) {
		poller.drop(p)
		p.woken = true
		go p.runReader()
	}
}

// tokens files each dozing path under a key for the poller's events (a path keeps its key; keys
// are never reused).
type tokens struct {
	mu   sync.Mutex
	next uint64
	by   map[uint64]*path
}

// add files p under its token (given one on its first doze), unless the poller has stopped.
func (t *tokens) add(p *path) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pollerOff.Load() {
		return false
	}
	if t.by == nil {
		t.by = make(map[uint64]*path)
	}
	if p.pollToken == 0 {
		t.next++
		p.pollToken = t.next
	}
	t.by[p.pollToken] = p
	return true
}

// take removes and returns the path filed under token, if any.
func (t *tokens) take(token uint64) *path {
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

// pollBroken turns the poller off and wakes every dozing reader. A reader dozing meanwhile sees
// pollerOff after arming, or is filed before this looks.
func pollBroken() {
	pollerOff.Store(true)
	poller.mu.Lock()
	woken := slices.Collect(maps.Values(poller.by))
	clear(poller.by)
	poller.mu.Unlock()
	for _, p := range woken {
		p.wakeReader()
	}
}
