package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// pathReadBuffer is the read buffer of each session path. Chunk payloads bypass it (they are read
// straight into their message), so it only batches small frames; it is most of a path's idle
// memory.
const pathReadBuffer = 16 << 10

// tlsReadBuffer replaces pathReadBuffer on a TLS path: crypto/tls already holds a whole record
// and hands it out in one Read, so a second large buffer on top would only cost idle memory.
const tlsReadBuffer = 4 << 10

// readBufferSize is the read buffer of a path over conn.
func readBufferSize(conn net.Conn) int {
	if _, ok := conn.(*tlsConn); ok {
		return tlsReadBuffer
	}
	return pathReadBuffer
}

// PathSpec says how to open one path: from which local address (empty for any) to which remote
// one. Giving each path its own local address makes the paths leave through different
// interfaces.
type PathSpec struct {
	Local  string // local "host:port" or "host" to bind; empty for any
	Remote string // server "host:port"
}

// Dial opens a session of Config.Paths connections to the server at addr.
func Dial(ctx context.Context, addr string, cfg *Config) (*Session, error) {
	return dial(ctx, addr, cfg, nil)
}

// dial is Dial with test hooks (nil outside tests) for the session.
func dial(ctx context.Context, addr string, cfg *Config, hooks *testHooks) (*Session, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	specs := make([]PathSpec, c.Paths)
	for i := range specs {
		specs[i].Remote = addr
	}
	return dialPaths(ctx, specs, c, hooks)
}

// DialPaths opens a session with one path per spec. The first path creates the session
// (SESSION_NEW); the others attach to it concurrently (SESSION_ATTACH). If any path fails to
// attach, the session is aborted and the error returned.
func DialPaths(ctx context.Context, specs []PathSpec, cfg *Config) (*Session, error) {
	return dialPathsHooked(ctx, specs, cfg, nil)
}

// dialPathsHooked is DialPaths with test hooks (nil outside tests) for the session.
func dialPathsHooked(ctx context.Context, specs []PathSpec, cfg *Config, hooks *testHooks) (*Session, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: DialPaths needs at least one path", ErrBadOptions)
	}
	if len(specs) > maxPathsLimit {
		return nil, fmt.Errorf("%w: %d requested, at most %d", ErrTooManyPaths, len(specs), maxPathsLimit)
	}
	return dialPaths(ctx, specs, c, hooks)
}

func dialPaths(ctx context.Context, specs []PathSpec, c *Config, hooks *testHooks) (*Session, error) {
	mode, err := disperse.Parse(c.Mode)
	if err != nil {
		return nil, err
	}
	if mode.Coded() && len(specs) != mode.N {
		return nil, fmt.Errorf("%w: mode %s needs %d paths, %d given", ErrBadOptions, mode, mode.N, len(specs))
	}
	if c.MinPaths > len(specs) {
		return nil, fmt.Errorf("%w: MinPaths %d, but %d paths given", ErrBadOptions, c.MinPaths, len(specs))
	}
	if c.Insecure {
		c.Logger.Warn("TLS is off (Insecure): paths are plain TCP, readable and forgeable by anyone on them, and an observer of the first path can join the session", "remote", specs[0].Remote)
	}
	first, hs, down, err := dialFirst(ctx, specs, c, mode)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.HandshakeTimeout)
	defer cancel()
	// The path that opened the session is slot 0; the others keep their order after it.
	specs = append([]PathSpec{specs[first]}, append(slices.Clone(specs[:first]), specs[first+1:]...)...)
	acc, err := wire.ParseSessionAccept(hs.reply.Payload)
	if err != nil {
		err = fmt.Errorf("%w: SESSION_ACCEPT: %w", ErrProtocol, err)
	}
	if err == nil && (acc.ChunkSize != uint32(c.ChunkSize) || acc.PathIndex != 0) {
		err = fmt.Errorf("%w: server answered chunk size %d, path %d", ErrProtocol, acc.ChunkSize, acc.PathIndex)
	}
	if err == nil && (acc.Window < uint64(2*reasm.Charge(1, mode.ChunkCharge(int(acc.ChunkSize)))) || acc.Window > 1<<62) {
		err = fmt.Errorf("%w: server window %d", ErrBadOptions, acc.Window)
	}
	if err == nil && len(specs) > int(acc.MaxPaths) {
		err = fmt.Errorf("%w: %d requested, the server allows %d", ErrTooManyPaths, len(specs), acc.MaxPaths)
	}
	if err != nil {
		hs.conn.Close()
		return nil, err
	}
	s, err := newSession(c, sessionTerms{id: acc.ID, token: acc.Token, key: hs.sec.key, chunkSize: int(acc.ChunkSize), peerWindow: int64(acc.Window), client: true, mode: mode})
	if err != nil {
		hs.conn.Close()
		return nil, err
	}
	s.hooks = hooks
	if err := s.startPath(hs, 0, 0, specs[0]); err != nil {
		s.Abort()
		return nil, err
	}

	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := 1; i < len(specs); i++ {
		if slices.Contains(down, specs[i]) {
			errs[i] = fmt.Errorf("path %d: %w", i, errSpecDown)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs, err := s.dialAttach(ctx, specs[i], i)
			if err != nil {
				errs[i] = fmt.Errorf("path %d: %w", i, err)
				return
			}
			idx, err := wire.ParseAttachOK(hs.reply.Payload)
			if err != nil {
				hs.conn.Close()
				errs[i] = fmt.Errorf("path %d: %w: ATTACH_OK: %w", i, ErrProtocol, err)
				return
			}
			errs[i] = s.startPath(hs, int(idx), i, specs[i])
		}()
	}
	wg.Wait()
	// A path that could not be reached is re-dialed later, if enough others are up; any other
	// failure (a refusal, an untrusted server) fails the session.
	var fatal, unreached []error
	for _, err := range errs {
		switch {
		case err == nil:
		case unreachable(err):
			unreached = append(unreached, err)
		default:
			fatal = append(fatal, err)
		}
	}
	if up := len(specs) - len(unreached); len(fatal) == 0 && up < c.MinPaths {
		fatal = append(unreached, fmt.Errorf("braid: %d of %d paths attached, MinPaths is %d", up, len(specs), c.MinPaths))
	}
	if err := errors.Join(fatal...); err != nil {
		s.Abort()
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			s.log.Warn("path down at the start; re-dialing it", "slot", i, "remote", specs[i].Remote, "reason", err)
			s.ctr.pathsDown.Add(1)
			s.wg.Add(1)
			go s.redial(specs[i], i)
		}
	}
	return s, nil
}

// errSpecDown stands for a path not dialed at the start because the same spec had just failed
// to open the session.
var errSpecDown = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("the same path failed to open the session")}

// dialFirst opens the session (SESSION_NEW) on the first spec that can be reached, trying them
// in order but each distinct spec once, each within HandshakeTimeout. It returns which spec did, its handshake, and the specs
// found unreachable on the way. A failure other than an unreachable path, or fewer reachable
// paths left than c.MinPaths, ends the attempt.
func dialFirst(ctx context.Context, specs []PathSpec, c *Config, mode disperse.Mode) (int, *handshake, []PathSpec, error) {
	m, k, n := mode.Wire()
	var down []PathSpec
	var errs []error
	for i, spec := range specs {
		if slices.Contains(down, spec) {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, c.HandshakeTimeout)
		hs, err := dialHandshake(hctx, spec, c, "", wire.TypeSessionNew, func([]byte) []byte {
			return wire.AppendSessionNew(nil, wire.SessionNew{
				Version: wire.ProtocolVersion, Mode: m, K: k, N: n, ChunkSize: uint32(c.ChunkSize), Window: uint64(c.SessionWindow),
				Token: []byte(c.Token),
			})
		})
		cancel()
		if err == nil {
			return i, hs, down, nil
		}
		errs = append(errs, err)
		if !unreachable(err) || ctx.Err() != nil {
			break
		}
		down = append(down, spec)
		reachable := 0
		for _, sp := range specs {
			if !slices.Contains(down, sp) {
				reachable++
			}
		}
		if reachable < c.MinPaths {
			break
		}
		c.Logger.Warn("path down at the start; opening the session on the next", "remote", spec.Remote, "reason", err)
	}
	return 0, nil, nil, errors.Join(errs...)
}

// unreachable reports whether err, from dialing a path, says that the path could not be reached
// (its connection refused or unreachable, a timeout, the connection cut during the handshake)
// rather than that the server refused it or could not be trusted.
func unreachable(err error) bool {
	var re *RemoteError
	var oe *net.OpError
	switch {
	case errors.As(err, &re), errors.Is(err, ErrFingerprint), errors.Is(err, ErrNotPostQuantum),
		errors.Is(err, ErrBadOptions), errors.Is(err, ErrProtocol):
		return false
	case errors.As(err, &oe) && oe.Op == "remote error": // a TLS alert from the peer
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNRESET)
}

// dialAttach dials a path for slot of s and attaches it (SESSION_ATTACH, with the proof bound
// to the new connection).
func (s *Session) dialAttach(ctx context.Context, spec PathSpec, slot int) (*handshake, error) {
	return dialHandshake(ctx, spec, s.cfg, s.routeLabel(), wire.TypeSessionAttach, func(binding []byte) []byte {
		return wire.AppendSessionAttach(nil, wire.SessionAttach{ID: s.id, Slot: uint16(slot), Proof: secure.Proof(s.key, s.id[:], uint16(slot), binding)})
	})
}

// routeLabel is the label naming the server that holds s, for the server name of the paths
// that attach to it, or "" if its id is not routable (or not well formed: a server that does
// not lay its ids out this way).
func (s *Session) routeLabel() string {
	r, ok, err := wire.ParseRoute(&s.id)
	if !ok || err != nil {
		return ""
	}
	return r.Label()
}

// pathSecurity is what a connection's TLS handshake established (all zero without TLS).
type pathSecurity struct {
	kex        string // the key exchange, or "none"
	key        []byte // the exported session key: the attach key if the path is a session's first
	binding    []byte // the exported binding: what an attach proof on this path covers
	clientCert bool   // server side: the client authenticated with a certificate
}

// handshake is a connection that has sent its first frame and read the answer.
type handshake struct {
	conn  net.Conn // a *tls.Conn, or the TCP connection with Insecure
	r     *wire.Reader
	w     *wire.Writer
	reply wire.Frame
	rtt   time.Duration // from sending the first frame to reading the answer
	sec   pathSecurity
}

// dialHandshake connects as spec says, runs TLS (routed by route, if not empty: see dialConn),
// sends one frame (built knowing the connection's binding) and reads the answer, which must be
// the type that follows t (SESSION_ACCEPT or ATTACH_OK); an ERROR answer becomes a RemoteError.
func dialHandshake(ctx context.Context, spec PathSpec, c *Config, route string, t wire.Type, build func(binding []byte) []byte) (*handshake, error) {
	conn, sec, err := dialConn(ctx, spec, c, route)
	if err != nil {
		return nil, err
	}
	hs := &handshake{conn: conn, r: wire.NewReaderSize(conn, c.MaxFrameSize, readBufferSize(conn)), w: wire.NewWriter(conn), sec: sec}
	start := time.Now()
	err = hs.w.WriteFrame(t, build(sec.binding))
	if err == nil {
		hs.reply, err = hs.r.ReadFrame()
		hs.rtt = time.Since(start)
	}
	want := wire.TypeSessionAccept
	if t == wire.TypeSessionAttach {
		want = wire.TypeAttachOK
	}
	switch {
	case err != nil:
	case hs.reply.Type == wire.TypeError:
		e, perr := wire.ParseError(hs.reply.Payload)
		err = perr
		if perr == nil {
			err = remoteError(e)
		}
	case hs.reply.Type != want:
		err = fmt.Errorf("%w: %s answered with %s", ErrProtocol, t, hs.reply.Type)
	}
	if err != nil {
		conn.Close()
		if c.Insecure && secure.ClosedByPeer(err) {
			return nil, fmt.Errorf("braid: %s to %s: %w (the server closed the connection at the first frame: %s)", t, spec.Remote, err, secure.PlainClientHint)
		}
		return nil, fmt.Errorf("braid: %s to %s: %w", t, spec.Remote, err)
	}
	conn.SetDeadline(time.Time{})
	return hs, nil
}

// dialConn opens the TCP connection spec describes and, unless Insecure, runs the TLS client
// handshake on it, all within ctx's deadline (which stays set on the connection). A route label
// (a routable session's server id, PROTOCOL.md 5.2.1) goes first in the ClientHello's server
// name, for a load balancer to read; the server is verified as without it.
func dialConn(ctx context.Context, spec PathSpec, c *Config, route string) (net.Conn, pathSecurity, error) {
	sec := pathSecurity{kex: "none"}
	var d net.Dialer
	if spec.Local != "" {
		local, err := resolveLocal(spec.Local)
		if err != nil {
			return nil, sec, err
		}
		d.LocalAddr = local
	}
	raw, err := d.DialContext(ctx, "tcp", spec.Remote)
	if err != nil {
		return nil, sec, fmt.Errorf("braid: dial %s: %w", spec.Remote, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	if c.Insecure {
		return raw, sec, nil
	}
	bc := &batchConn{Conn: raw}
	tc, err := clientTLS(ctx, bc, spec.Remote, c, route)
	if err != nil {
		raw.Close()
		return nil, sec, err
	}
	cs := tc.ConnectionState()
	sec.kex = secure.KexName(cs.CurveID)
	if sec.key, sec.binding, err = secure.Exporters(cs); err != nil {
		tc.Close()
		return nil, sec, fmt.Errorf("%w with %s: %w", ErrTLS, spec.Remote, err)
	}
	bc.batching = true
	return &tlsConn{Conn: tc, batch: bc}, sec, nil
}

// clientTLS runs a client TLS handshake on raw and checks what it agreed; with a route label,
// the server name it sends begins with it.
func clientTLS(ctx context.Context, raw net.Conn, addr string, c *Config, route string) (*tls.Conn, error) {
	conf, err := secure.ClientConfig(c.tlsOptions(), addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if route != "" {
		var configured string
		if c.TLS != nil {
			configured = c.TLS.ServerName
		}
		secure.SendServerName(conf, secure.RouteName(route, configured, addr))
	}
	tc := tls.Client(raw, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		if noSharedGroup(err, conf) {
			// TLS 1.3 between Braid ends fails this way only when the key exchanges offered and
			// accepted do not meet: one end insists on X25519MLKEM768, the other lacks it.
			return nil, fmt.Errorf("%w with %s: %w (one end requires the post-quantum key exchange, the other does not offer it): %w", ErrTLS, addr, ErrNotPostQuantum, err)
		}
		if secure.ClosedByPeer(err) {
			return nil, fmt.Errorf("%w with %s: %w (the server closed the connection during the TLS handshake: if it is plain TCP, the client must be insecure too)", ErrTLS, addr, err)
		}
		return nil, fmt.Errorf("%w with %s: %w", ErrTLS, addr, err)
	}
	if err := secure.Check(tc.ConnectionState(), c.RequirePostQuantum); err != nil {
		tc.Close()
		return nil, fmt.Errorf("%w with %s: %w", ErrTLS, addr, err)
	}
	return tc, nil
}

// noSharedGroup reports whether a client handshake under conf failed with the server's
// handshake_failure alert where the key exchange is the likely cause: conf offers only the
// post-quantum one, or does not offer it.
func noSharedGroup(err error, conf *tls.Config) bool {
	// crypto/tls reports the peer's alert as a net.OpError "remote error" around its own
	// (unexported) alert type, whose text is the alert's name.
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil || op.Err.Error() != "tls: handshake failure" {
		return false
	}
	prefs := conf.CurvePreferences
	return len(prefs) > 0 && (slices.Equal(prefs, []tls.CurveID{secure.PostQuantum}) || !slices.Contains(prefs, secure.PostQuantum))
}

// resolveLocal accepts "host:port" or a bare host for a local bind address.
func resolveLocal(s string) (*net.TCPAddr, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, "0")
	}
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil, fmt.Errorf("braid: local address %q: %w", s, err)
	}
	return a, nil
}

// startPath makes a handshaken client connection path idx, in slot, of s and runs its reader.
func (s *Session) startPath(hs *handshake, idx, slot int, spec PathSpec) error {
	p := newPath(s, idx, slot, spec, hs.conn, hs.r, hs.w)
	p.kex = hs.sec.kex
	p.sampleRTT(hs.rtt, false) // the handshake was a round trip: the scheduler has a first estimate
	if err := s.addPath(p); err != nil {
		hs.conn.Close()
		return err
	}
	go s.readPath(p, nil)
	return nil
}
