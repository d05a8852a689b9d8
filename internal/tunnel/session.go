package tunnel

import (
	"context"
	"fmt"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/mux"
)

// muxConfig returns mcfg (nil for defaults) with its message size set to s's chunk size, so that
// every DATA message is one chunk.
func muxConfig(s *braid.Session, mcfg *mux.Config) *mux.Config {
	c := mux.Config{}
	if mcfg != nil {
		c = *mcfg
	}
	if c.MessageSize == 0 {
		c.MessageSize = min(s.Stats().ChunkSize, mux.MaxData)
	}
	return &c
}

// Dial opens a session over specs and starts the client end of a mux on it.
func Dial(ctx context.Context, specs []braid.PathSpec, cfg *braid.Config, mcfg *mux.Config) (*braid.Session, *mux.Mux, error) {
	s, err := braid.DialPaths(ctx, specs, cfg)
	if err != nil {
		return nil, nil, err
	}
	m, err := mux.Client(s, muxConfig(s, mcfg))
	if err != nil {
		s.Abort()
		return nil, nil, fmt.Errorf("starting the tunnel: %w", err)
	}
	return s, m, nil
}

// ServeSession serves a session whose first message, first, is a mux HELLO (mux.IsHello): it
// starts the server end of the mux and serves its streams with sv until the session ends (or
// ctx does). It does not close s.
func ServeSession(ctx context.Context, s *braid.Session, first []byte, sv *Server, mcfg *mux.Config) error {
	m, err := mux.ServerWith(s, first, muxConfig(s, mcfg))
	if err != nil {
		return err
	}
	defer m.Close()
	return sv.Serve(ctx, m, "session", s.ID())
}
