package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/tunnel"
	"github.com/braidnet/braid/mux"
)

// tunnelFlags are the flags of a command that carries streams over one session: the session's
// (sessionFlags), the mux's stream limit, and how the server is trusted.
type tunnelFlags struct {
	*sessionFlags
	maxStreams int
	ct         *clientTrust
}

func addTunnelFlags(fs *flag.FlagSet) *tunnelFlags {
	tf := &tunnelFlags{sessionFlags: addSessionFlags(fs)}
	fs.IntVar(&tf.maxStreams, "max-streams", 1024, "most streams (connections) open at once over the session")
	tf.ct = addClientTrustFlags(fs)
	return tf
}

// dial opens the session, to the one address in args or over the --path flags, and starts the
// client end of a mux on it. Flag errors are usage errors.
func (tf *tunnelFlags) dial(ctx context.Context, fs *flag.FlagSet, args []string, log *slog.Logger, stdout, stderr io.Writer) (*braid.Session, *mux.Mux, error) {
	specs, cfg, err := tf.config(fs, args)
	if err != nil {
		return nil, nil, err
	}
	cfg.Logger = log
	if err := tf.ct.apply(cfg, specs[0].Remote, stderr); err != nil {
		return nil, nil, usageError(fs, "%v", err)
	}
	s, mx, err := tunnel.Dial(ctx, specs, cfg, &mux.Config{MaxStreams: tf.maxStreams, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	st := s.Stats()
	fmt.Fprintln(stdout, sessionLine(st, len(st.Paths)))
	return s, mx, nil
}

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }

func (r *repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

func runTunnel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tunnel", "[flags] (-L [bind:]port:host:hostport | -D [bind:]port)... ADDR  or  ... --path LOCAL=REMOTE ...", stderr)
	var locals, dynamics repeated
	fs.Var(&locals, "L", "forward [bind:]port on this machine to host:hostport, which the server connects to (repeatable; bind defaults to 127.0.0.1, * for all)")
	fs.Var(&dynamics, "D", "run a SOCKS5 proxy on [bind:]port whose connections the server makes (repeatable; names are resolved by the server)")
	socksAuth := fs.String("socks-auth", "", "file of user:password lines: SOCKS clients must authenticate with one (RFC 1929)")
	openTimeout := fs.Duration("open-timeout", 30*time.Second, "how long to wait for the server to connect a stream to its target")
	sf := addTunnelFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(locals) == 0 && len(dynamics) == 0 {
		return usageError(fs, "give at least one -L or -D")
	}
	var fwds []tunnel.Forwarding
	for _, l := range locals {
		f, err := tunnel.ParseForwarding(l)
		if err != nil {
			return usageError(fs, "%v", err)
		}
		fwds = append(fwds, f)
	}
	var socksAddrs []string
	for _, d := range dynamics {
		a, err := tunnel.ParseDynamic(d)
		if err != nil {
			return usageError(fs, "%v", err)
		}
		socksAddrs = append(socksAddrs, a)
	}
	var users tunnel.SOCKSUsers
	if *socksAuth != "" {
		var err error
		if users, err = tunnel.LoadSOCKSUsers(*socksAuth); err != nil {
			return usageError(fs, "--socks-auth: %v", err)
		}
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	// Listen first, so that a port in use fails before any session is made.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, a := range append(bindsOf(fwds), socksAddrs...) {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	s, m, err := sf.dial(ctx, fs, fs.Args(), log, stdout, stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	defer m.Close()
	cl := &tunnel.Client{Mux: m, OpenTimeout: *openTimeout, Logger: log}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for i, ln := range lns {
		wg.Add(1)
		if i < len(fwds) {
			fmt.Fprintf(stdout, "forwarding %s to %s (the server connects)\n", ln.Addr(), fwds[i].Target)
			go func() { defer wg.Done(); errc <- cl.Forward(ctx, ln, fwds[i].Target) }()
		} else {
			auth := "no authentication"
			if users != nil {
				auth = fmt.Sprintf("username/password, %d users", len(users))
			}
			fmt.Fprintf(stdout, "SOCKS5 on %s (%s; names resolved by the server)\n", ln.Addr(), auth)
			go func() { defer wg.Done(); errc <- cl.SOCKS(ctx, ln, users) }()
		}
	}
	select {
	case <-ctx.Done():
		err = nil
	case <-m.Done():
		err = fmt.Errorf("the session ended: %w", m.Err())
		if errors.Is(m.Err(), io.EOF) {
			err = errors.New("the server closed the session")
		}
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}

func bindsOf(fwds []tunnel.Forwarding) []string {
	var out []string
	for _, f := range fwds {
		out = append(out, f.Bind)
	}
	return out
}
