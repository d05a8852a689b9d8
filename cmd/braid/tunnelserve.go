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

// servedSession is one session of braid serve: a tunnel if its first message is a mux HELLO,
// file and message transfers otherwise. Between transfers it holds no goroutine: it waits for
// the next message with AfterReady, so a server's idle sessions cost it no stack each. A
// tunnel's logger carries the session id; it is made only for a tunnel, as an idle session
// holds nothing for it.
type servedSession struct {
	ctx     context.Context
	s       *braid.Session
	rx      *receiver
	tf      *tunnelServeFlags
	tsv     *tunnel.Server
	log     *slog.Logger
	started bool        // the first message was taken: a tunnel is no longer possible
	end     func(error) // called once, when the session is served
}

// wait has step run once the session has a message, or has ended.
func (v *servedSession) wait() { v.s.AfterReady(v.step) }

// serveLinger is how long a session's service waits in Receive for the next transfer after
// one, before it leaves the wait to AfterReady. Transfers often come back to back (a sender's
// several files, a bench's runs); a Receive waiting reads the next header off the path itself,
// with no hand-off from the path's reader to a goroutine started for it.
const serveLinger = 100 * time.Millisecond

// step takes the session's next messages: a tunnel's HELLO, which serves the tunnel to its end,
// or transfers' headers, each of which serves its transfer; after serveLinger with no new one
// it waits for the next with AfterReady and returns.
func (v *servedSession) step() {
	ctx, cancel := v.ctx, context.CancelFunc(nil) // AfterReady ran it: the first Receive does not wait
	for {
		msg, err := v.s.Receive(ctx)
		if cancel != nil {
			cancel()
		}
		switch {
		case err == io.EOF:
			v.end(nil)
			return
		case cancel != nil && errors.Is(err, context.DeadlineExceeded) && v.ctx.Err() == nil:
			v.wait()
			return
		case err != nil:
			v.end(err)
			return
		case !v.started && mux.IsHello(msg):
			v.tunnel(msg)
			return
		}
		v.started = true
		if err := v.rx.receiveTransfer(v.ctx, v.s, msg); err != nil {
			v.end(err)
			return
		}
		ctx, cancel = context.WithTimeout(v.ctx, serveLinger)
	}
}

// tunnel serves the session as a tunnel: it starts the tunnel and returns; the session is
// served (end) when the tunnel ends. Like the transfers' wait, an idle tunnel holds no
// goroutine: its mux reads with AfterReady, and a stream gets a goroutine as it opens.
func (v *servedSession) tunnel(hello []byte) {
	log := v.log.With("session", v.s.ID())
	log.Info("tunnel session")
	_, err := tunnel.StartSession(v.ctx, v.s, hello, v.tsv, &mux.Config{MaxStreams: v.tf.maxStreams, Logger: log}, func(err error) {
		v.end(tunnelEnd(err))
	})
	if err != nil {
		v.end(tunnelEnd(err))
	}
}

// tunnelEnd is how a tunnel's end is reported: nil for the session's clean end or the
// server's own close.
func tunnelEnd(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, mux.ErrClosed) {
		return nil
	}
	return fmt.Errorf("tunnel: %w", err)
}
