package session

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Admission: what a Listener lets in before it spends anything on a connection, and how often it
// says so in the log.

// refusalLogInterval is how often at most a listener logs a refused handshake: a guesser of
// session ids or tokens must not be able to fill the log.
const refusalLogInterval = time.Second

// logLimiter lets one event a interval through and counts the others.
type logLimiter struct {
	mu         sync.Mutex
	interval   time.Duration
	next       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged and, if so, how many were not since the
// last that was.
func (ll *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if now.Before(ll.next) {
		ll.suppressed++
		return false, 0
	}
	ll.next = now.Add(ll.interval)
	suppressed, ll.suppressed = ll.suppressed, 0
	return true, suppressed
}

// errConnLimit is a connection refused at accept by MaxConns or MaxConnsPerIP.
var errConnLimit = errors.New("braid: connection limit reached")

// fdReserve is how many open files a Listener leaves for the rest of the process (its listening
// socket, logs, files being received) when the open-file limit is below MaxConns.
const fdReserve = 64

// connLimit is the most connections a Listener holds: MaxConns, or less if the process's
// open-file limit would be reached first (an accept failing with EMFILE refuses everyone).
func connLimit(maxConns int) int {
	if fds := fdLimit(); fds > 0 && fds-fdReserve < maxConns {
		return max(fds-fdReserve, 1)
	}
	return maxConns
}

// remoteIP is the address part of c's remote address (the whole of it if it has no port).
func remoteIP(c net.Conn) string {
	a := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// admit counts a new connection from ip against MaxConns and MaxConnsPerIP, and as not yet
// authenticated against MaxHandshakes and MaxHandshakesPerIP, or refuses it. Every connection
// counted is a connection goroutine alive: a path's reader, a handshake, or a single-path
// connection being served.
func (l *Listener) admit(ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.maxConns:
		return fmt.Errorf("%w: %d connections open, the most this listener holds (MaxConns and the open-file limit)", errConnLimit, l.open)
	case l.perIP[ip] >= l.cfg.MaxConnsPerIP:
		return fmt.Errorf("%w: %d connections from %s, MaxConnsPerIP %d", errConnLimit, l.perIP[ip], ip, l.cfg.MaxConnsPerIP)
	case l.pending >= l.cfg.MaxHandshakes:
		return fmt.Errorf("%w: %d handshakes in progress, MaxHandshakes %d", errConnLimit, l.pending, l.cfg.MaxHandshakes)
	case l.pendIP[ip] >= l.cfg.MaxHandshakesPerIP:
		return fmt.Errorf("%w: %d handshakes in progress from %s, MaxHandshakesPerIP %d", errConnLimit, l.pendIP[ip], ip, l.cfg.MaxHandshakesPerIP)
	}
	l.open++
	l.perIP[ip]++
	l.pending++
	l.pendIP[ip]++
	return nil
}

// admission is one admitted connection's claim on the Listener's limits.
type admission struct {
	l      *Listener
	ip     string
	authed bool // no longer counted as a handshake; guarded by l.mu
}

// authenticated stops counting the connection as a handshake: it has become a session's path
// (or a single-path connection, which the frame server bounds).
func (a *admission) authenticated() {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	a.release()
}

// release gives back the handshake count, once. Call with l.mu held.
func (a *admission) release() {
	if a.authed {
		return
	}
	a.authed = true
	a.l.pending--
	uncount(a.l.pendIP, a.ip)
}

// done gives back everything admit counted, once the connection's goroutine is done with it.
func (a *admission) done() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	a.release()
	l.open--
	uncount(l.perIP, a.ip)
}

// uncount takes one off key's count in m, forgetting keys that reach zero.
func uncount(m map[string]int, key string) {
	if m[key]--; m[key] <= 0 {
		delete(m, key)
	}
}
