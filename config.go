package braid

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/braidnet/braid/internal/session"
)

// Config holds the limits and timeouts of a session end: a Listener and the sessions it
// accepts, or a client's Dial. A nil *Config means DefaultConfig(); a zero field means that
// field's default.
type Config struct {
	// MaxFrameSize is the largest frame payload accepted, in bytes. Checked against each header
	// before its payload is read or allocated. Default 16 MiB, at most 256 MiB.
	MaxFrameSize int

	// IdleTimeout is how long a single-path connection may wait between frames before it is
	// closed. Session paths keep themselves alive with PINGs and are judged by PathTimeout.
	// Default 2 minutes.
	IdleTimeout time.Duration

	// ReadTimeout is how long one frame may take to arrive once its first byte has, so that a
	// peer that stalls mid-frame is dropped. Default 30 seconds.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write, so that a peer that stops reading is dropped.
	// Default 30 seconds.
	WriteTimeout time.Duration

	// Logger receives connection events; frame-level tracing is logged at slog.LevelDebug.
	// Default: discard.
	Logger *slog.Logger

	// Session settings.

	// Paths is the number of connections Dial opens to its address. Default 4.
	Paths int

	// ChunkSize is the chunk size a client proposes in SESSION_NEW, in bytes; the server accepts
	// any proposal within MinChunkSize..MaxChunkSize. Default 256 KiB.
	ChunkSize int

	// MaxPaths is the most paths a server lets one session have. Default 16, at most 1024.
	MaxPaths int

	// MaxSessions is the most sessions a server holds at once. Default 1024.
	MaxSessions int

	// MaxConns is the most connections a Listener holds open at once (paths, handshakes in
	// progress and single-path connections); it accepts and at once closes any beyond. A Listener
	// lowers it to the process's open-file limit less 64 if that is smaller. Default 16384.
	MaxConns int

	// MaxConnsPerIP is the most of those connections from one remote IP address. Default 1024.
	MaxConnsPerIP int

	// AcceptBacklog is the most new sessions a Listener holds for Accept. Default 128.
	AcceptBacklog int

	// HandshakeTimeout bounds the time from connecting to a path being part of a session.
	// Default 10 seconds.
	HandshakeTimeout time.Duration

	// SessionWindow is the receive budget of a session, in bytes: how much of the peer's data
	// it holds at once (being reassembled or waiting for Receive). The peer never sends beyond
	// it, and is cut off with ErrOverBudget if it tries. Default 64 MiB.
	SessionWindow int64

	// MaxMessageSize is the largest message Send accepts. A message must also fit in half the
	// peer's window. Default 16 MiB.
	MaxMessageSize int

	// Mode is the dispersal mode a client asks for in SESSION_NEW: "plain" (each chunk on one
	// path), "redundant" (each chunk on every live path; the first copy wins), "shamir:K/N" (each
	// chunk becomes N Shamir shares, share j only ever on path j, any K rebuild it, fewer reveal
	// nothing), "erasure:K/N" (N Reed–Solomon shards, any K rebuild it) or "aont:K/N" (AONT-RS:
	// the chunk encrypted under a fresh key folded into it, then N Reed–Solomon shards; any K
	// rebuild it, fewer reveal nothing short of breaking AES-256 or SHA-256). The coded modes need
	// exactly N paths (Dial opens N when Paths is left zero) and carry an integrity check: a tag
	// whose key is secret-shared across the paths, or in aont a canary inside the package. A server accepts any mode its MaxPaths allows; this field
	// is ignored there. Default "plain". See docs/SECURITY.md.
	Mode string

	// Scheduler names the policy that spreads chunks across paths: "adaptive" (the path on which
	// a chunk would arrive first, from each path's queue, bytes in flight, delivery rate and RTT),
	// "lowest-rtt" (the lowest-RTT path with room), "round-robin" (the live paths in turn) or
	// "redundant" (adaptive, plus a copy on every other path with room). The coded modes place
	// pieces by slot and do not use it. Default "adaptive".
	Scheduler string

	// KeepAlive is how long a path may go without writing before it sends a PING, so that the
	// peer can tell a quiet path from a dead one. Default 1 second.
	KeepAlive time.Duration

	// PathTimeout is how long a path may go without receiving anything before it is declared
	// dead, even without FIN or RST (a blackholed path). Default 4 seconds.
	PathTimeout time.Duration

	// IdleKeepAlive is KeepAlive for a path of an idle session (nothing sent unacknowledged,
	// nothing arriving, no path stalled): it sends a PING when it has written nothing for this
	// long, and the session declares it dead only after PathTimeout + 2 × IdleKeepAlive of
	// silence. A session that turns busy probes its paths at once and judges them by
	// PathTimeout again. Peers need not agree: one that pings more often is answered. Default
	// 25 × KeepAlive (25 seconds); at least KeepAlive.
	IdleKeepAlive time.Duration

	// MinRTO is the least time a chunk may go unacknowledged before it is sent again on another
	// path; a path's own timeout is its smoothed RTT plus four deviations, doubled on each
	// expiry, and never less than this. Default 200 ms.
	MinRTO time.Duration

	// ResumeGrace is how long a session lives with no path at all, waiting for one to attach
	// again (the client re-dials). After it both ends fail with ErrPathLost. Default 30 seconds.
	ResumeGrace time.Duration

	// Linger bounds how long Close waits without progress (an acknowledgement, a path closing)
	// for the peer to take everything sent and close its side. Default 5 seconds.
	Linger time.Duration

	// Path security (see docs/SECURITY.md).

	// TLS is the base TLS configuration of every path; Braid clones it and forces TLS 1.3 and
	// the "braid/2" ALPN. A Listener presents its Certificates (or GetCertificate); without any
	// it makes an ephemeral self-signed certificate, whose fingerprint Listener.Fingerprint
	// returns. A client verifies the server's chain against RootCAs (the system's if nil) for
	// ServerName (the dial address's host if empty), unless ServerFingerprint pins the key
	// instead; Certificates there are its client certificate. The key exchange is Go's default,
	// X25519MLKEM768 first. Nil means all defaults.
	TLS *tls.Config

	// Insecure turns TLS off: paths are plain TCP, readable and forgeable by anyone on them, and
	// a path observer can attach to the session. Both ends must agree. Default false.
	Insecure bool

	// ServerFingerprint, on a client, pins the server's key: "SHA256:" and the base64 SHA-256 of
	// its certificate's public key, as Fingerprint and `braid serve` print it. It replaces
	// certificate chain verification.
	ServerFingerprint string

	// RequirePostQuantum refuses paths whose key exchange is not the hybrid post-quantum
	// X25519MLKEM768 (a classical-only peer fails with ErrTLS or ErrNotPostQuantum).
	RequirePostQuantum bool

	// AuthorizedClients, on a server, lists the key fingerprints of client certificates that
	// authenticate a client. With it (or Token, or a TLS.ClientAuth that requires a
	// certificate) set, the server accepts sessions only from authenticated clients.
	AuthorizedClients []string

	// Token is a pre-shared secret of at most 64 bytes: a client presents it in SESSION_NEW
	// (inside TLS); a server with it set accepts only clients that present it or authenticate
	// by certificate.
	Token string

	// MaxHandshakes is the most connections a Listener holds that have not finished their
	// TLS and session handshakes (they cost a goroutine and TLS buffers before anything is
	// known of the peer); it accepts and at once closes any beyond. Default 256.
	MaxHandshakes int

	// MaxHandshakesPerIP is the most of those from one remote IP address. Default 32.
	MaxHandshakesPerIP int

	// MaxPendingSessionsPerIP is the most sessions a server holds from one remote IP address
	// that are not yet established (no frame has arrived since SESSION_ACCEPT); a SESSION_NEW
	// beyond is refused with ErrTooManySessions. Established sessions do not count, and are
	// never pushed out. Default 16.
	MaxPendingSessionsPerIP int

	// MaxMemory is a server's memory budget for all its sessions' receive windows together
	// (what they may hold being reassembled or waiting for Receive). Each new session is granted
	// SessionWindow, or what is left of the budget if that is less (its client then sends
	// messages of at most half of it); a session is refused with ErrTooManySessions when what
	// is left is below the smallest usable window. Windows already granted are never taken
	// back. Default: half the machine's RAM (MaxSessions × SessionWindow where RAM is unknown).
	MaxMemory int64

	// MinPaths is how many of a client's paths must attach for Dial (or DialPaths) to succeed.
	// A path that cannot be reached at the start (its connection refused, unreachable or timed
	// out) does not fail the session while at least MinPaths others attach: it is re-dialed in
	// the background, with backoff, like a path lost later. The first path to answer opens the
	// session (path specs are tried in order for it). A refusal by the server (an ERROR frame:
	// unauthorized, too many paths, ...) or a failed TLS verification still fails Dial. Default
	// 1, or K in a coded mode (fewer paths rebuild nothing); at most Paths (DialPaths: the
	// number of specs).
	MinPaths int

	// Scale-out behind a load balancer (see docs/DEPLOY.md).

	// ServerID, on a server, makes its session ids routable: each id carries these 1 to 7
	// bytes, and a client sends every further path of the session with the TLS server name
	// "<ServerID in hex>.<name>", so that a load balancer (HAProxy's req.ssl_sni) can send all
	// paths of a session to this server without shared state. Every server behind one balancer
	// needs its own ServerID. Nil (the default) draws unroutable ids, random but for their
	// first three bits (docs/PROTOCOL.md, 5.2.1).
	ServerID []byte

	// ServerIDConfig is the config rotation codepoint (0 to 6) a server writes into its routable
	// ids beside ServerID: an operator who renumbers servers moves to a new codepoint, so that
	// ids of the old numbering stay distinguishable. Needs ServerID. Default 0.
	ServerIDConfig int
}

// Chunk size limits.
const (
	MinChunkSize = session.MinChunkSize
	MaxChunkSize = session.MaxChunkSize
)

// DefaultConfig returns the configuration used when none is given.
func DefaultConfig() *Config { return (*Config)(session.DefaultConfig()) }

// Validate reports the first rule c breaks, checking fields in declaration order and then the
// rules that relate them (KeepAlive below PathTimeout, a SessionWindow that holds two of the
// largest messages, chunks and pieces that fit in MaxFrameSize), with zero fields taken as their
// defaults. Dial and Listen accept exactly the configurations Validate accepts. The error
// matches ErrBadOptions.
func (c *Config) Validate() error { return c.engine().Validate() }

// engine is c as the engine's configuration (nil for nil): the same fields, by conversion.
func (c *Config) engine() *session.Config { return (*session.Config)(c) }
