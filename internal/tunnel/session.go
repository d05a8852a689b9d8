package tunnel

import (
	"context"
	"fmt"
	"log/slog"

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
// ctx does), and returns why the mux ended. It does not close s.
func ServeSession(ctx context.Context, s *braid.Session, first []byte, sv *Server, mcfg *mux.Config) error {
	ended := make(chan error, 1)
	if _, err := StartSession(ctx, s, first, sv, mcfg, func(err error) { ended <- err }); err != nil {
		return err
	}
	return <-ended
}

// StartSession is ServeSession without waiting: it starts the server end of the mux on s and
// returns it. done is called once, on a goroutine of its own, with why the mux ended, when it has
// ended (the session's end, ctx's, or a protocol violation) and every stream it served has
// finished. Until then nothing holds a goroutine for the session while no stream is open: the
// mux reads with the session's AfterReady, and streams are handed to sv as they open (mux
// Config.Handler). It does not close s. An error means the mux did not start, and done will not
// be called.
func StartSession(ctx context.Context, s *braid.Session, first []byte, sv *Server, mcfg *mux.Config, done func(error)) (*mux.Mux, error) {
	log := sv.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("session", s.ID())
	cfg := muxConfig(s, mcfg)
	var sg *serving
	cfg.Handler, sg = sv.handler(ctx, log)
	m, err := mux.ServerWith(s, first, cfg)
	if err != nil {
		return nil, err
	}
	// done comes only from sg.end, which only the AfterDone below calls: after this.
	sg.done = func() {
		m.Close() // waits for the mux's own goroutines
		done(m.Err())
	}
	stopCtx := context.AfterFunc(ctx, func() { m.Close() })
	m.AfterDone(func() {
		stopCtx()
		sg.end()
	})
	return m, nil
}
