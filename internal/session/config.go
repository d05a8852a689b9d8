package session

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// Config is the engine's configuration. It has exactly the fields of braid.Config, which
// documents them and converts to it (a field added to one and not the other does not compile);
// a nil *Config means DefaultConfig() and a zero field its default.
type Config struct {
	MaxFrameSize     int
	IdleTimeout      time.Duration
	ReadTimeout      time.Duration
	WriteTimeout     time.Duration
	Logger           *slog.Logger
	Paths            int
	ChunkSize        int
	MaxPaths         int
	MaxSessions      int
	MaxConns         int
	MaxConnsPerIP    int
	AcceptBacklog    int
	HandshakeTimeout time.Duration
	SessionWindow    int64
	MaxMessageSize   int
	Mode             string
	Scheduler        string
	KeepAlive        time.Duration
	PathTimeout      time.Duration
	IdleKeepAlive    time.Duration
	MinRTO           time.Duration
	ResumeGrace      time.Duration
	Linger           time.Duration

	TLS                *tls.Config
	Insecure           bool
	ServerFingerprint  string
	RequirePostQuantum bool
	AuthorizedClients  []string
	Token              string
	MaxHandshakes      int
	MaxHandshakesPerIP int

	MaxPendingSessionsPerIP int
	MaxMemory               int64
	MinPaths                int

	ServerID       []byte
	ServerIDConfig int
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
		MaxConns:         16384,
		MaxConnsPerIP:    1024,
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

		MaxHandshakes:      256,
		MaxHandshakesPerIP: 32,

		MaxPendingSessionsPerIP: 16,
	}
}

// Validate reports the first rule c breaks: each field's range, in declaration order, then the
// rules that relate fields (with zero fields taken as their defaults). Dial and Listen accept
// exactly what Validate accepts. Every error matches ErrBadOptions.
func (c *Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// maxPathsLimit bounds Paths and MaxPaths: path indexes are 16-bit on the wire, and each path
// costs two goroutines and buffers.
const maxPathsLimit = 1024

// Upper bounds of the memory settings, so that every configuration that validates can be
// built: a receiver's record of chunks received is a bitmap of SessionWindow ÷ ChunkSize bits
// (maxWindowChunks bounds it at 128 KiB), and a message's chunk count is 32 bits on the wire.
const (
	maxSessionWindow = 1 << 40 // 1 TiB
	maxWindowChunks  = 1 << 20
	maxMessageSize   = 1 << 40
	maxMemory        = 1 << 50
)

// checkRanges checks each field on its own, in declaration order, and reports the first that is
// out of range.
func (c *Config) checkRanges() error {
	negative := func(name string, v any) string { return fmt.Sprintf("%s %v is negative", name, v) }
	mode, modeErr := disperse.Parse(c.Mode)
	var schedErr, fpErr, authErr, certErr error
	routeErr := wire.CheckRoute(c.ServerIDConfig, c.ServerID)
	if c.Scheduler != "" {
		_, schedErr = sched.New(c.Scheduler)
	}
	if c.ServerFingerprint != "" {
		_, fpErr = secure.ParseFingerprint(c.ServerFingerprint)
	}
	for _, fp := range c.AuthorizedClients {
		if _, err := secure.ParseFingerprint(fp); err != nil && authErr == nil {
			authErr = err
		}
	}
	if c.TLS != nil {
		for i, cert := range c.TLS.Certificates {
			if _, err := secure.CertFingerprint(cert); err != nil && certErr == nil {
				certErr = fmt.Errorf("certificate %d: %w", i, err)
			}
		}
	}
	chunk := cmp.Or(c.ChunkSize, DefaultConfig().ChunkSize)
	for _, rule := range []struct {
		broken bool
		msg    string
	}{
		{c.MaxFrameSize < 0 || c.MaxFrameSize > wire.MaxPayloadLimit, fmt.Sprintf("MaxFrameSize %d outside 0..%d", c.MaxFrameSize, wire.MaxPayloadLimit)},
		{c.IdleTimeout < 0, negative("IdleTimeout", c.IdleTimeout)},
		{c.ReadTimeout < 0, negative("ReadTimeout", c.ReadTimeout)},
		{c.WriteTimeout < 0, negative("WriteTimeout", c.WriteTimeout)},
		{c.Paths < 0 || c.Paths > maxPathsLimit, fmt.Sprintf("Paths %d outside 0..%d", c.Paths, maxPathsLimit)},
		{c.ChunkSize != 0 && (c.ChunkSize < MinChunkSize || c.ChunkSize > MaxChunkSize), fmt.Sprintf("ChunkSize %d outside %d..%d", c.ChunkSize, MinChunkSize, MaxChunkSize)},
		{c.MaxPaths < 0 || c.MaxPaths > maxPathsLimit, fmt.Sprintf("MaxPaths %d outside 0..%d", c.MaxPaths, maxPathsLimit)},
		{c.MaxSessions < 0, negative("MaxSessions", c.MaxSessions)},
		{c.MaxConns < 0, negative("MaxConns", c.MaxConns)},
		{c.MaxConnsPerIP < 0, negative("MaxConnsPerIP", c.MaxConnsPerIP)},
		{c.AcceptBacklog < 0, negative("AcceptBacklog", c.AcceptBacklog)},
		{c.HandshakeTimeout < 0, negative("HandshakeTimeout", c.HandshakeTimeout)},
		{c.SessionWindow < 0 || c.SessionWindow > maxSessionWindow, fmt.Sprintf("SessionWindow %d outside 0..%d", c.SessionWindow, int64(maxSessionWindow))},
		{c.SessionWindow/int64(chunk) > maxWindowChunks, fmt.Sprintf("SessionWindow %d holds more than %d chunks of %d bytes", c.SessionWindow, maxWindowChunks, chunk)},
		{c.MaxMessageSize < 0 || c.MaxMessageSize > maxMessageSize, fmt.Sprintf("MaxMessageSize %d outside 0..%d", c.MaxMessageSize, int64(maxMessageSize))},
		{modeErr != nil, fmt.Sprintf("Mode: %v", modeErr)},
		// Share j travels only on path j: a coded session has exactly N paths.
		{modeErr == nil && mode.Coded() && c.Paths != 0 && c.Paths != mode.N, fmt.Sprintf("Mode %s needs %d paths, Paths is %d", mode, mode.N, c.Paths)},
		{schedErr != nil, fmt.Sprintf("Scheduler: %v", schedErr)},
		{c.KeepAlive < 0, negative("KeepAlive", c.KeepAlive)},
		{c.PathTimeout < 0, negative("PathTimeout", c.PathTimeout)},
		{c.IdleKeepAlive < 0, negative("IdleKeepAlive", c.IdleKeepAlive)},
		{c.MinRTO < 0, negative("MinRTO", c.MinRTO)},
		{c.ResumeGrace < 0, negative("ResumeGrace", c.ResumeGrace)},
		{c.Linger < 0, negative("Linger", c.Linger)},
		{c.Insecure && (c.TLS != nil || c.ServerFingerprint != "" || c.RequirePostQuantum || len(c.AuthorizedClients) > 0),
			"Insecure turns TLS off; TLS, ServerFingerprint, RequirePostQuantum and AuthorizedClients need it"},
		{fpErr != nil, fmt.Sprintf("ServerFingerprint: %v", fpErr)},
		{authErr != nil, fmt.Sprintf("AuthorizedClients: %v", authErr)},
		{len(c.Token) > wire.MaxAuthToken, fmt.Sprintf("Token of %d bytes, at most %d", len(c.Token), wire.MaxAuthToken)},
		{c.Insecure && c.Token != "", "Token needs TLS: without it the token would cross the path in the clear"},
		{c.MaxHandshakes < 0, negative("MaxHandshakes", c.MaxHandshakes)},
		{c.MaxHandshakesPerIP < 0, negative("MaxHandshakesPerIP", c.MaxHandshakesPerIP)},
		{c.MaxPendingSessionsPerIP < 0, negative("MaxPendingSessionsPerIP", c.MaxPendingSessionsPerIP)},
		{c.MaxMemory < 0 || c.MaxMemory > maxMemory, fmt.Sprintf("MaxMemory %d outside 0..%d", c.MaxMemory, int64(maxMemory))},
		{certErr != nil, fmt.Sprintf("TLS: %v", certErr)},
		{c.MinPaths < 0 || c.MinPaths > maxPathsLimit, fmt.Sprintf("MinPaths %d outside 0..%d", c.MinPaths, maxPathsLimit)},
		{c.MinPaths > 0 && c.Paths > 0 && c.MinPaths > c.Paths, fmt.Sprintf("MinPaths %d above Paths %d", c.MinPaths, c.Paths)},
		{routeErr != nil, fmt.Sprintf("ServerID: %v", routeErr)},
		{len(c.ServerID) == 0 && c.ServerIDConfig != 0, fmt.Sprintf("ServerIDConfig %d without a ServerID", c.ServerIDConfig)},
	} {
		if rule.broken {
			return fmt.Errorf("%w: %s", ErrBadOptions, rule.msg)
		}
	}
	return nil
}

// withDefaults validates c and returns a copy with every zero field set to its default.
func (c *Config) withDefaults() (*Config, error) {
	d := DefaultConfig()
	if c == nil {
		return d, nil
	}
	if err := c.checkRanges(); err != nil {
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
		out.Paths = mode.N // checkRanges saw that Paths is N or unset
	}
	setDefault(&out.Paths, d.Paths)
	setDefault(&out.ChunkSize, d.ChunkSize)
	setDefault(&out.MaxPaths, d.MaxPaths)
	setDefault(&out.MaxSessions, d.MaxSessions)
	setDefault(&out.MaxConns, d.MaxConns)
	setDefault(&out.MaxConnsPerIP, d.MaxConnsPerIP)
	setDefault(&out.AcceptBacklog, d.AcceptBacklog)
	setDefault(&out.HandshakeTimeout, d.HandshakeTimeout)
	winSet := out.SessionWindow != 0
	setDefault(&out.SessionWindow, d.SessionWindow)
	setDefault(&out.MaxMessageSize, d.MaxMessageSize)
	setDefault(&out.Scheduler, d.Scheduler)
	setDefault(&out.KeepAlive, d.KeepAlive)
	setDefault(&out.PathTimeout, d.PathTimeout)
	setDefault(&out.IdleKeepAlive, idleKeepAliveFactor*out.KeepAlive)
	out.IdleKeepAlive = max(out.IdleKeepAlive, out.KeepAlive)
	setDefault(&out.MinRTO, d.MinRTO)
	setDefault(&out.ResumeGrace, d.ResumeGrace)
	setDefault(&out.Linger, d.Linger)
	setDefault(&out.MaxHandshakes, d.MaxHandshakes)
	setDefault(&out.MaxHandshakesPerIP, d.MaxHandshakesPerIP)
	setDefault(&out.MaxPendingSessionsPerIP, d.MaxPendingSessionsPerIP)
	if mode.Coded() && out.MinPaths == 0 {
		out.MinPaths = mode.K // fewer pieces rebuild nothing
	}
	setDefault(&out.MinPaths, 1)
	if out.PathTimeout <= out.KeepAlive {
		return nil, fmt.Errorf("%w: PathTimeout %v must exceed KeepAlive %v", ErrBadOptions, out.PathTimeout, out.KeepAlive)
	}
	if out.ChunkSize+wire.ChunkHeaderSize > out.MaxFrameSize {
		return nil, fmt.Errorf("%w: ChunkSize %d does not fit in MaxFrameSize %d", ErrBadOptions, out.ChunkSize, out.MaxFrameSize)
	}
	if mode.Coded() && wire.PieceHeaderSize+mode.PieceSize(out.ChunkSize) > out.MaxFrameSize {
		return nil, fmt.Errorf("%w: pieces of %d-byte chunks do not fit in MaxFrameSize %d", ErrBadOptions, out.ChunkSize, out.MaxFrameSize)
	}
	// The window must hold two of the largest messages, so that credit returned in eighths
	// always lets a waiting sender through (see flow control in docs/PROTOCOL.md).
	// A coded mode charges each chunk with the pieces a receiver may hold for it, so its default
	// window grows to match.
	minWin := 2 * reasm.Charge(reasm.Chunks(out.MaxMessageSize, out.ChunkSize), mode.ChunkCharge(out.ChunkSize))
	if !winSet && out.SessionWindow < minWin {
		out.SessionWindow = minWin
	}
	if out.SessionWindow < minWin {
		return nil, fmt.Errorf("%w: SessionWindow %d below twice the largest message's charge (%d)", ErrBadOptions, out.SessionWindow, minWin)
	}
	if out.SessionWindow > maxSessionWindow || out.SessionWindow/int64(out.ChunkSize) > maxWindowChunks {
		// The default window, raised to hold two of the largest messages.
		return nil, fmt.Errorf("%w: MaxMessageSize %d needs a window of %d bytes: more than %d bytes, or %d chunks of %d bytes", ErrBadOptions, out.MaxMessageSize, out.SessionWindow, int64(maxSessionWindow), maxWindowChunks, out.ChunkSize)
	}
	return &out, nil
}

// tlsOptions is the configuration's TLS part, for package secure.
func (c *Config) tlsOptions() secure.Options {
	return secure.Options{Base: c.TLS, ServerFingerprint: c.ServerFingerprint, RequirePQ: c.RequirePostQuantum, AuthorizedClients: c.AuthorizedClients}
}

// requiresClientAuth reports whether a server accepts only authenticated clients.
func (c *Config) requiresClientAuth() bool {
	return c.Token != "" || len(c.AuthorizedClients) > 0 || c.TLS != nil && c.TLS.ClientAuth >= tls.RequireAnyClientCert
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// frameConfig is the configuration of the frame.Server a Listener hands single-path connections
// to.
func (c *Config) frameConfig() *frame.Config {
	return &frame.Config{
		MaxFrameSize:      c.MaxFrameSize,
		IdleTimeout:       c.IdleTimeout,
		FirstFrameTimeout: c.HandshakeTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		Logger:            c.Logger,
	}
}
