package braid

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// Config holds the limits and timeouts of a Server or Client. A nil *Config means
// DefaultConfig(); a zero field means that field's default.
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
	// nothing) or "erasure:K/N" (N Reed–Solomon shards, any K rebuild it). The coded modes need
	// exactly N paths (Dial opens N when Paths is left zero) and carry an integrity tag whose key
	// is secret-shared across the paths. A server accepts any mode its MaxPaths allows; this field
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

	hooks *testHooks // tests only; nil otherwise
}

// Chunk size limits.
const (
	MinChunkSize = 1 << 10 // 1 KiB
	MaxChunkSize = 1 << 20 // 1 MiB
)

// DefaultConfig returns the configuration used when none is given.
func DefaultConfig() *Config {
	return &Config{
		MaxFrameSize: wire.DefaultMaxPayload,
		IdleTimeout:  2 * time.Minute,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),

		Paths:            4,
		ChunkSize:        256 << 10,
		MaxPaths:         16,
		MaxSessions:      1024,
		AcceptBacklog:    128,
		HandshakeTimeout: 10 * time.Second,
		SessionWindow:    64 << 20,
		MaxMessageSize:   16 << 20,
		Scheduler:        sched.DefaultName,
		KeepAlive:        time.Second,
		PathTimeout:      4 * time.Second,
		MinRTO:           200 * time.Millisecond,
		ResumeGrace:      30 * time.Second,
		Linger:           5 * time.Second,
	}
}

// Validate reports the first field outside its allowed range.
func (c *Config) Validate() error {
	if c.MaxFrameSize < 0 || c.MaxFrameSize > wire.MaxPayloadLimit {
		return fmt.Errorf("braid: MaxFrameSize %d outside 0..%d", c.MaxFrameSize, wire.MaxPayloadLimit)
	}
	for name, d := range map[string]time.Duration{"IdleTimeout": c.IdleTimeout, "ReadTimeout": c.ReadTimeout,
		"WriteTimeout": c.WriteTimeout, "HandshakeTimeout": c.HandshakeTimeout, "KeepAlive": c.KeepAlive, "Linger": c.Linger,
		"PathTimeout": c.PathTimeout, "MinRTO": c.MinRTO, "ResumeGrace": c.ResumeGrace} {
		if d < 0 {
			return fmt.Errorf("braid: %s %v is negative", name, d)
		}
	}
	for name, n := range map[string]int{"Paths": c.Paths, "MaxPaths": c.MaxPaths, "MaxSessions": c.MaxSessions,
		"AcceptBacklog": c.AcceptBacklog, "MaxMessageSize": c.MaxMessageSize} {
		if n < 0 {
			return fmt.Errorf("braid: %s %d is negative", name, n)
		}
	}
	if c.ChunkSize != 0 && (c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize) {
		return fmt.Errorf("braid: ChunkSize %d outside %d..%d", c.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if c.MaxPaths > maxPathsLimit || c.Paths > maxPathsLimit {
		return fmt.Errorf("braid: Paths and MaxPaths must not exceed %d", maxPathsLimit)
	}
	if c.SessionWindow < 0 {
		return fmt.Errorf("braid: SessionWindow %d is negative", c.SessionWindow)
	}
	mode, err := disperse.Parse(c.Mode)
	if err != nil {
		return fmt.Errorf("%w: Mode: %w", ErrBadOptions, err)
	}
	if mode.Coded() && c.Paths != 0 && c.Paths != mode.N {
		// Share j travels only on path j: a coded session has exactly N paths.
		return fmt.Errorf("%w: Mode %s needs %d paths, Paths is %d", ErrBadOptions, mode, mode.N, c.Paths)
	}
	if c.Scheduler != "" {
		if _, err := sched.New(c.Scheduler); err != nil {
			return fmt.Errorf("braid: %w", err)
		}
	}
	return nil
}

// maxPathsLimit bounds Paths and MaxPaths: path indexes are 16-bit on the wire, and each path
// costs two goroutines and buffers.
const maxPathsLimit = 1024

// withDefaults validates c and returns a copy with every zero field set to its default.
func (c *Config) withDefaults() (*Config, error) {
	d := DefaultConfig()
	if c == nil {
		return d, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := *c
	setDefault(&out.MaxFrameSize, d.MaxFrameSize)
	setDefault(&out.IdleTimeout, d.IdleTimeout)
	setDefault(&out.ReadTimeout, d.ReadTimeout)
	setDefault(&out.WriteTimeout, d.WriteTimeout)
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	mode, _ := disperse.Parse(out.Mode)
	out.Mode = mode.String()
	if mode.Coded() {
		out.Paths = mode.N // Validate saw that Paths is N or unset
	}
	setDefault(&out.Paths, d.Paths)
	setDefault(&out.ChunkSize, d.ChunkSize)
	setDefault(&out.MaxPaths, d.MaxPaths)
	setDefault(&out.MaxSessions, d.MaxSessions)
	setDefault(&out.AcceptBacklog, d.AcceptBacklog)
	setDefault(&out.HandshakeTimeout, d.HandshakeTimeout)
	winSet := out.SessionWindow != 0
	setDefault(&out.SessionWindow, d.SessionWindow)
	setDefault(&out.MaxMessageSize, d.MaxMessageSize)
	setDefault(&out.Scheduler, d.Scheduler)
	setDefault(&out.KeepAlive, d.KeepAlive)
	setDefault(&out.PathTimeout, d.PathTimeout)
	setDefault(&out.MinRTO, d.MinRTO)
	setDefault(&out.ResumeGrace, d.ResumeGrace)
	if out.PathTimeout <= out.KeepAlive {
		return nil, fmt.Errorf("braid: PathTimeout %v must exceed KeepAlive %v", out.PathTimeout, out.KeepAlive)
	}
	setDefault(&out.Linger, d.Linger)
	// The window must hold two of the largest messages, so that credit returned in eighths
	// always lets a waiting sender through (see flow control in docs/PROTOCOL.md).
	// A coded mode charges each chunk with the pieces a receiver may hold for it, so its default
	// window grows to match.
	minWin := 2 * reasm.Charge(reasm.Chunks(out.MaxMessageSize, out.ChunkSize), mode.ChunkCharge(out.ChunkSize))
	if !winSet && out.SessionWindow < minWin {
		out.SessionWindow = minWin
	}
	if out.SessionWindow < minWin {
		return nil, fmt.Errorf("braid: SessionWindow %d below twice the largest message's charge (%d)", out.SessionWindow, minWin)
	}
	return &out, nil
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
