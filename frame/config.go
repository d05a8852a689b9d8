package frame

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/braidnet/braid/internal/wire"
)

// Config holds the limits and timeouts of a Server or Client. A nil *Config means
// DefaultConfig(); a zero field means that field's default.
type Config struct {
	// MaxFrameSize is the largest frame payload accepted, in bytes. Checked against each header
	// before its payload is read or allocated. Default 16 MiB, at most 256 MiB.
	MaxFrameSize int

	// IdleTimeout is how long a connection may wait between frames before it is closed.
	// Default 2 minutes.
	IdleTimeout time.Duration

	// FirstFrameTimeout bounds the wait for a connection's first frame. Default 10 seconds.
	FirstFrameTimeout time.Duration

	// ReadTimeout is how long one frame may take to arrive once its first byte has, so that a
	// peer that stalls mid-frame is dropped. Default 30 seconds.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write, so that a peer that stops reading is dropped.
	// Default 30 seconds.
	WriteTimeout time.Duration

	// Logger receives connection events; frame-level tracing is logged at slog.LevelDebug.
	// Default: discard.
	Logger *slog.Logger

	// TLS, if set, makes Dial run a TLS 1.3 client handshake with it before the first frame, as
	// a braid.Listener (unless Insecure) requires. Dial offers the "braid/2" ALPN if NextProtos
	// is empty. A Server ignores it (a braid.Listener terminates TLS itself).
	TLS *tls.Config
}

// DefaultConfig returns the configuration used when none is given.
func DefaultConfig() *Config {
	return &Config{
		MaxFrameSize:      wire.DefaultMaxPayload,
		IdleTimeout:       2 * time.Minute,
		FirstFrameTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate reports the first field, in declaration order, outside its allowed range. The error
// matches ErrBadOptions.
func (c *Config) Validate() error {
	if c.MaxFrameSize < 0 || c.MaxFrameSize > wire.MaxPayloadLimit {
		return fmt.Errorf("%w: MaxFrameSize %d outside 0..%d", ErrBadOptions, c.MaxFrameSize, wire.MaxPayloadLimit)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"IdleTimeout", c.IdleTimeout}, {"FirstFrameTimeout", c.FirstFrameTimeout}, {"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrBadOptions, d.name, d.v)
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
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := *c
	setDefault(&out.MaxFrameSize, d.MaxFrameSize)
	setDefault(&out.IdleTimeout, d.IdleTimeout)
	setDefault(&out.FirstFrameTimeout, d.FirstFrameTimeout)
	setDefault(&out.ReadTimeout, d.ReadTimeout)
	setDefault(&out.WriteTimeout, d.WriteTimeout)
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	return &out, nil
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
