package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/braidnet/braid/mux"
)

// RefusedError is why a server did not connect a stream to its target: the code the opener
// receives, and a reason for it and for the server's log.
type RefusedError struct {
	Code   mux.Code // what the opener's OPEN is answered with
	Reason string   // why, for the opener and the log
}

// Error returns the reason.
func (e *RefusedError) Error() string { return e.Reason }

func refused(code mux.Code, format string, args ...any) *RefusedError {
	return &RefusedError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Dialer connects streams to their targets under an AllowList.
type Dialer struct {
	Allow   *AllowList    // the targets that may be reached; nil allows nothing
	Timeout time.Duration // for resolving and connecting, all addresses together; default 10 s
	// LookupNetIP resolves names; default net.DefaultResolver.LookupNetIP.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// DialContext connects; default a net.Dialer's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial checks target ("host:port") against the allow-list and connects to it. A refusal (not
// allowed, or the target could not be reached) is a *RefusedError with the code to send.
func (d *Dialer) Dial(ctx context.Context, target string) (net.Conn, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, refused(mux.CodeFailure, "%v", err)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var addrs []string
	switch {
	case d.Allow.AllowsName(t):
		addrs = []string{t.String()} // the operator trusts the name: whatever it resolves to
	case t.Name == "":
		if !d.Allow.AllowsAddr(t.Addr, t.Port) {
			return nil, refused(mux.CodeNotAllowed, "%s is not on the server's allow-list", t)
		}
		addrs = []string{t.String()}
	default:
		if !d.Allow.MayAllowAddr(t.Port) {
			return nil, refused(mux.CodeNotAllowed, "%s is not on the server's allow-list", t)
		}
		lookup := d.LookupNetIP
		if lookup == nil {
			lookup = net.DefaultResolver.LookupNetIP
		}
		ips, err := lookup(ctx, "ip", t.Name)
		if err != nil {
			return nil, refused(mux.CodeOf(err), "resolving %s: %v", t.Name, err)
		}
		for _, ip := range ips {
			if d.Allow.AllowsAddr(ip, t.Port) {
				addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), t.Port).String())
			}
		}
		if len(addrs) == 0 {
			return nil, refused(mux.CodeNotAllowed, "%s (%v) is not on the server's allow-list", t, ips)
		}
	}
	dial := d.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var errs []error
	for _, a := range addrs {
		c, err := dial(ctx, "tcp", a)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err = errs[len(errs)-1]
	if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return nil, refused(mux.CodeOf(err), "connecting to %s: %v", t, errors.Join(errs...))
}
