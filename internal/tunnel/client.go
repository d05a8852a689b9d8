package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/braidnet/braid/mux"
)

// Client feeds local connections into streams of one mux.
type Client struct {
	Mux *mux.Mux // the client end of the tunnel session's mux
	// OpenTimeout bounds waiting for the server's answer to an OPEN (its dial included).
	// Default 30 s.
	OpenTimeout time.Duration
	// Logger receives a line per connection the server refuses (Info) and per stream (Debug).
	// Default slog.Default().
	Logger *slog.Logger
}

func (cl *Client) log() *slog.Logger {
	if cl.Logger == nil {
		return slog.Default()
	}
	return cl.Logger
}

// Open opens a stream to target, waiting at most OpenTimeout for the server's answer.
func (cl *Client) Open(ctx context.Context, target string) (*mux.Stream, error) {
	timeout := cl.OpenTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cl.Mux.Open(ctx, target)
}

// Forward accepts connections on ln and carries each to target ("host:port", which the server
// dials), until ctx ends or ln fails; it closes ln, then waits for the connections it carries,
// closing them if ctx has ended. A connection the server refuses is closed at once (reset).
func (cl *Client) Forward(ctx context.Context, ln net.Listener, target string) error {
	return cl.serve(ctx, ln, func(ctx context.Context, c net.Conn) {
		if st := cl.openFor(ctx, c, target, ln.Addr()); st != nil {
			Pipe(st, c)
		}
	})
}

// openFor opens a stream to target for connection c (accepted on local), or resets c and
// returns nil if the server refuses. Not inlined: see Server.connect.
//
//go:noinline
func (cl *Client) openFor(ctx context.Context, c net.Conn, target string, local net.Addr) *mux.Stream {
	st, err := cl.Open(ctx, target)
	if err != nil {
		cl.log().Warn("tunnel: connection refused by the server", "local", local, "from", c.RemoteAddr(), "target", target, "err", err)
		abort(c)
		return nil
	}
	cl.log().Debug("tunnel: stream opened", "stream", st.ID(), "target", target, "from", c.RemoteAddr())
	return st
}

// serve runs handle for each connection ln accepts until ctx ends or ln fails.
func (cl *Client) serve(ctx context.Context, ln net.Listener, handle func(context.Context, net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := context.AfterFunc(ctx, func() { c.Close() })
			defer done()
			handle(ctx, c)
			c.Close()
		}()
	}
}

// Forwarding is one -L specification: listen on Bind, forward to Target.
type Forwarding struct {
	Bind   string // local "host:port" to listen on
	Target string // "host:port" the server connects to
}

// ParseForwarding reads ssh's -L syntax, [bind:]port:host:hostport, with IPv6 addresses in
// brackets. Without a bind address it listens on loopback only, as ssh does; "*" binds every
// interface.
func ParseForwarding(s string) (Forwarding, error) {
	parts, err := splitSpec(s)
	if err != nil || (len(parts) != 3 && len(parts) != 4) {
		return Forwarding{}, fmt.Errorf("-L %q: want [bind:]port:host:hostport", s)
	}
	bind := ""
	if len(parts) == 4 {
		bind, parts = parts[0], parts[1:]
	}
	addr, err := bindAddr(bind, parts[0])
	if err != nil {
		return Forwarding{}, fmt.Errorf("-L %q: %w", s, err)
	}
	if _, err := parsePort(parts[2]); err != nil || parts[1] == "" {
		return Forwarding{}, fmt.Errorf("-L %q: bad target %s:%s", s, parts[1], parts[2])
	}
	return Forwarding{Bind: addr, Target: net.JoinHostPort(parts[1], parts[2])}, nil
}

// ParseDynamic reads ssh's -D syntax, [bind:]port, listening on loopback without a bind
// address.
func ParseDynamic(s string) (string, error) {
	parts, err := splitSpec(s)
	if err != nil || len(parts) < 1 || len(parts) > 2 {
		return "", fmt.Errorf("-D %q: want [bind:]port", s)
	}
	bind := ""
	if len(parts) == 2 {
		bind, parts = parts[0], parts[1:]
	}
	addr, err := bindAddr(bind, parts[0])
	if err != nil {
		return "", fmt.Errorf("-D %q: %w", s, err)
	}
	return addr, nil
}

func bindAddr(bind, port string) (string, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("bad port %q", port)
	}
	switch bind {
	case "":
		bind = "127.0.0.1"
	case "*":
		bind = ""
	}
	return net.JoinHostPort(bind, strconv.Itoa(int(p))), nil
}

// splitSpec splits at colons outside brackets, removing the brackets.
func splitSpec(s string) ([]string, error) {
	var parts []string
	for len(s) > 0 {
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 || (end+1 < len(s) && s[end+1] != ':') {
				return nil, errors.New("unbalanced brackets")
			}
			parts = append(parts, s[1:end])
			s = s[end+1:]
		} else {
			i := strings.IndexByte(s, ':')
			if i < 0 {
				i = len(s)
			}
			parts = append(parts, s[:i])
			s = s[i:]
		}
		if strings.HasPrefix(s, ":") {
			s = s[1:]
			if s == "" {
				parts = append(parts, "")
			}
		}
	}
	return parts, nil
}
