package braid

import (
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

	// ReadTimeout is how long one frame may take to arrive once its first byte has, so that a
	// peer that stalls mid-frame is dropped. Default 30 seconds.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write, so that a peer that stops reading is dropped.
	// Default 30 seconds.
	WriteTimeout time.Duration

	// Logger receives connection events; frame-level tracing is logged at slog.LevelDebug.
	// Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration used when none is given.
func DefaultConfig() *Config {
	return &Config{
		MaxFrameSize: wire.DefaultMaxPayload,
		IdleTimeout:  2 * time.Minute,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate reports the first field outside its allowed range.
func (c *Config) Validate() error {
	if c.MaxFrameSize < 0 || c.MaxFrameSize > wire.MaxPayloadLimit {
		return fmt.Errorf("braid: MaxFrameSize %d outside 0..%d", c.MaxFrameSize, wire.MaxPayloadLimit)
	}
	for name, d := range map[string]time.Duration{"IdleTimeout": c.IdleTimeout, "ReadTimeout": c.ReadTimeout, "WriteTimeout": c.WriteTimeout} {
		if d < 0 {
			return fmt.Errorf("braid: %s %v is negative", name, d)
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
	if out.MaxFrameSize == 0 {
		out.MaxFrameSize = d.MaxFrameSize
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = d.IdleTimeout
	}
	if out.ReadTimeout == 0 {
		out.ReadTimeout = d.ReadTimeout
	}
	if out.WriteTimeout == 0 {
		out.WriteTimeout = d.WriteTimeout
	}
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	return &out, nil
}
