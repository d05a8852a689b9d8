package braid

import (
	"context"

	"github.com/braidnet/braid/internal/session"
)

// PathSpec says how to open one path: from which local address (empty for any) to which remote
// one. Giving each path its own local address makes the paths leave through different
// interfaces.
type PathSpec struct {
	Local  string // local "host:port" or "host" to bind; empty for any
	Remote string // server "host:port"
}

// Dial opens a session of Config.Paths connections to the server at addr. It returns once the
// session is open and every path has attached, or with the first error (matched with errors.Is:
// ErrBadOptions for a Config that Validate rejects, the server's refusal otherwise).
func Dial(ctx context.Context, addr string, cfg *Config) (*Session, error) {
	return wrap(session.Dial(ctx, addr, cfg.engine()))
}

// DialPaths opens a session with one path per spec, in order: path j is slot j.
func DialPaths(ctx context.Context, specs []PathSpec, cfg *Config) (*Session, error) {
	engine := make([]session.PathSpec, len(specs))
	for i, sp := range specs {
		engine[i] = session.PathSpec(sp)
	}
	return wrap(session.DialPaths(ctx, engine, cfg.engine()))
}
