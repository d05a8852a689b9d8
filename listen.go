package braid

import (
	"context"
	"net"

	"github.com/braidnet/braid/internal/session"
)

// Listener accepts multipath sessions. It also answers the single-path frame protocol (PING,
// TEXT, DATA; see package frame) on connections that do not open or attach to a session, so one
// address serves both kinds of peer.
type Listener struct {
	l *session.Listener
}

// Listen listens on the TCP address addr and accepts sessions there.
func Listen(addr string, cfg *Config) (*Listener, error) {
	l, err := session.Listen(addr, cfg.engine())
	if err != nil {
		return nil, err
	}
	return &Listener{l: l}, nil
}

// NewListener accepts sessions on ln, which the Listener then owns.
func NewListener(ln net.Listener, cfg *Config) (*Listener, error) {
	l, err := session.NewListener(ln, cfg.engine())
	if err != nil {
		return nil, err
	}
	return &Listener{l: l}, nil
}

// Accept waits for the next session a client opens. After Close or Shutdown it returns
// ErrServerClosed.
func (l *Listener) Accept(ctx context.Context) (*Session, error) { return wrap(l.l.Accept(ctx)) }

// Addr returns the address the Listener listens on.
func (l *Listener) Addr() net.Addr { return l.l.Addr() }

// Close stops accepting and aborts every session and connection at once.
func (l *Listener) Close() error { return l.l.Close() }

// Shutdown stops accepting, closes every session gracefully (each delivers what it has sent) and
// the single-path connections between frames. If ctx ends first, sessions still closing are
// aborted (their peers see ErrShuttingDown) and ctx's error is returned.
func (l *Listener) Shutdown(ctx context.Context) error { return l.l.Shutdown(ctx) }

// Sessions returns the number of sessions the Listener holds, accepted or not.
func (l *Listener) Sessions() int { return l.l.Sessions() }

// Fingerprint returns the fingerprint of the key the Listener's certificate carries, which a
// client pins with Config.ServerFingerprint; "" without TLS (Config.Insecure) or when the
// certificate is chosen per connection (TLS.GetCertificate).
func (l *Listener) Fingerprint() string { return l.l.Fingerprint() }

// ListenerStats is a snapshot of what a Listener has accepted and refused since it started.
type ListenerStats struct {
	Sessions        int    `json:"sessions"`         // sessions held now, accepted or not
	SessionsOpened  uint64 `json:"sessions_opened"`  // sessions created (SESSION_NEW accepted)
	SessionsRefused uint64 `json:"sessions_refused"` // SESSION_NEW handshakes refused
	// Refused counts what was refused, by reason: "conn_limit" (closed at accept by MaxConns,
	// MaxConnsPerIP or MaxHandshakes), "tls_handshake" (the TLS handshake failed), and the
	// lower-case ERROR code sent otherwise: a handshake refused ("unauthorized",
	// "too_many_sessions", "bad_token", ...) or a session ended for a frame that broke the
	// protocol ("invalid_chunk", "over_budget", "frame_too_large", "protocol", ...).
	Refused map[string]uint64 `json:"refused"`
}

// Stats returns a snapshot of what the Listener has accepted and refused.
func (l *Listener) Stats() ListenerStats { return ListenerStats(l.l.Stats()) }
