package session

import (
	"strings"
	"sync/atomic"

	"github.com/braidnet/braid/internal/wire"
)

// Counters for Stats and a Listener's ListenerStats, which the CLI exports as metrics. Each is
// an atomic counter written where its event happens and read only by Stats: no lock, and on the
// data path one atomic add per acknowledged chunk (bytesAcked) and per chunk sent again
// (a path's resent counts).

// sessionCounters are a session's lifetime events.
type sessionCounters struct {
	bytesAcked atomic.Uint64 // message bytes the peer has acknowledged (not counting copies or pieces)
	pathsUp    atomic.Uint64 // paths that joined, the first ones and re-dialed ones alike
	pathsDown  atomic.Uint64 // paths lost (not those closed as the session ended)
	redials    atomic.Uint64 // paths re-dialed and attached again (also paths down at the start)
	redialFail atomic.Uint64 // re-dial attempts that failed
}

// Refusal reasons a Listener counts besides the ERROR codes.
const (
	// RefusedConnLimit: a connection closed at accept by MaxConns, MaxConnsPerIP or
	// MaxHandshakes (ListenerStats.Refused).
	RefusedConnLimit = "conn_limit"
	// RefusedTLS: a connection whose TLS handshake failed.
	RefusedTLS = "tls_handshake"
)

// listenerCounters are what a Listener refused and opened.
type listenerCounters struct {
	opened  atomic.Uint64 // sessions created by SESSION_NEW
	refused atomic.Uint64 // SESSION_NEW refused
	// byCode counts ERROR frames sent to refuse a handshake or end a session for a violation,
	// by code: the session-level codes (0x01xx) at 0x100 onwards, the frame-level ones below.
	byCode    [0x200]atomic.Uint64
	connLimit atomic.Uint64
	tls       atomic.Uint64
}

// refuse counts an ERROR frame of code sent to refuse something.
func (c *listenerCounters) refuse(code wire.Code) {
	if c != nil && int(code) < len(c.byCode) {
		c.byCode[code].Add(1)
	}
}

// ListenerStats is a snapshot of what a Listener has accepted and refused since it started.
type ListenerStats struct {
	Sessions        int               // sessions held now
	SessionsOpened  uint64            // sessions created (SESSION_NEW accepted)
	SessionsRefused uint64            // SESSION_NEW handshakes refused
	Refused         map[string]uint64 // connections, handshakes and sessions refused, by reason
}

func (c *listenerCounters) snapshot() ListenerStats {
	st := ListenerStats{SessionsOpened: c.opened.Load(), SessionsRefused: c.refused.Load(), Refused: map[string]uint64{}}
	if n := c.connLimit.Load(); n > 0 {
		st.Refused[RefusedConnLimit] = n
	}
	if n := c.tls.Load(); n > 0 {
		st.Refused[RefusedTLS] = n
	}
	for code := range c.byCode {
		if n := c.byCode[code].Load(); n > 0 {
			st.Refused[strings.ToLower(wire.Code(code).String())] = n
		}
	}
	return st
}

// Stats returns a snapshot of what the Listener has accepted and refused.
func (l *Listener) Stats() ListenerStats {
	st := l.counters.snapshot()
	st.Sessions = l.Sessions()
	return st
}
