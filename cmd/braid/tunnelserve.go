package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/tunnel"
	"github.com/braidnet/braid/mux"
)

// tunnelServeFlags are braid serve's flags for tunnel sessions (braid tunnel, braid cat).
type tunnelServeFlags struct {
	allow       repeated
	allowFile   string
	stdout      bool
	dialTimeout time.Duration
	maxStreams  int
}

func addTunnelServeFlags(fs *flag.FlagSet) *tunnelServeFlags {
	tf := &tunnelServeFlags{}
	fs.Var(&tf.allow, "allow", "tunnel targets clients may reach, as HOST:PORTS rules (comma-separated, repeatable): "+
		"a name (db.internal:5432), *.domain, an address or CIDR (127.0.0.1:6379, 10.0.0.0/8:*, [::1]:22), * for any host; "+
		"PORTS is a port, a range A-B, or *. Nothing is allowed without a rule")
	fs.StringVar(&tf.allowFile, "allow-file", "", "file of --allow rules, one or more per line, # for comments")
	fs.BoolVar(&tf.stdout, "stdout", false, "write a tunnel stream that names no target (braid cat ADDR) to standard output, one at a time")
	fs.DurationVar(&tf.dialTimeout, "dial-timeout", 10*time.Second, "how long the server tries to connect a stream to its target")
	fs.IntVar(&tf.maxStreams, "max-streams", 1024, "most tunnel streams open at once per session")
	return tf
}

// server builds the tunnel server the flags describe; data goes to stdout with --stdout.
func (tf *tunnelServeFlags) server(stdout io.Writer, log *slog.Logger) (*tunnel.Server, error) {
	allow, err := tunnel.ParseAllowList(tf.allow...)
	if err != nil {
		return nil, err
	}
	if tf.allowFile != "" {
		if err := allow.AddFile(tf.allowFile); err != nil {
			return nil, err
		}
	}
	sv := &tunnel.Server{Dialer: tunnel.Dialer{Allow: allow, Timeout: tf.dialTimeout}, Logger: log}
	if tf.stdout {
		sv.Stdout = stdout
	}
	switch {
	case allow.Len() > 0:
		log.Info("tunnel targets allowed", "rules", allow.String())
	case !tf.stdout:
		log.Info("no --allow rules: tunnel streams will be refused")
	}
	for _, r := range allow.AnyHost() {
		log.Warn("an allow rule for any host makes this server an open proxy on its ports", "rule", r)
	}
	return sv, nil
}

// serveSession serves one session: a tunnel if its first message is a mux HELLO, file and
// message transfers otherwise. A tunnel's logger carries the session id; it is made only then,
// as an idle session that never sends holds nothing for it.
func serveSession(ctx context.Context, s *braid.Session, rx *receiver, tf *tunnelServeFlags, sv *tunnel.Server, log *slog.Logger) error {
	first, err := s.Receive(ctx)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	if !mux.IsHello(first) {
		return rx.receiveTransfers(ctx, s, first)
	}
	log = log.With("session", s.ID())
	log.Info("tunnel session")
	err = tunnel.ServeSession(ctx, s, first, sv, &mux.Config{MaxStreams: tf.maxStreams, Logger: log})
	if errors.Is(err, io.EOF) || errors.Is(err, mux.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	return nil
}
