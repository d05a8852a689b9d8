package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/frame"

	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/tap"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// TestTLSKeyExchangeRecorded: by default every path, at both ends, runs TLS 1.3 with the hybrid
// post-quantum key exchange, and says so in its stats.
func TestTLSKeyExchangeRecorded(t *testing.T) {
	l, logs := startListener(t, nil)
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 3}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	s := acceptOne(t, l)
	defer s.Abort()
	echoOnce(t, c, s)
	testutil.WaitFor(t, func() bool { return len(s.Stats().Paths) == 3 }, "three server paths")
	for _, end := range []*Session{c, s} {
		for _, p := range end.Stats().Paths {
			if p.KeyExchange != "X25519MLKEM768" {
				t.Errorf("%s path %d: key exchange %q", end, p.Index, p.KeyExchange)
			}
		}
	}
	expectLog(t, logs, "key_exchange=X25519MLKEM768")
}

// TestTLSServerIdentityRefused: a client refuses a server it cannot trust, with an error it can
// match, and the server keeps serving others.
func TestTLSServerIdentityRefused(t *testing.T) {
	ca := newTestCA(t)
	ctx := context.Background()
	dialWith := func(l *Listener, cfg *Config) error {
		c, err := Dial(ctx, l.Addr().String(), cfg)
		if err == nil {
			c.Abort()
		}
		return err
	}
	t.Run("wrong fingerprint", func(t *testing.T) {
		l, _ := startListener(t, nil)
		other, _ := secure.SelfSigned()
		fp, _ := secure.CertFingerprint(other)
		err := dialWith(l, &Config{Paths: 2, ServerFingerprint: fp})
		if !errors.Is(err, ErrTLS) || !errors.Is(err, ErrFingerprint) || !strings.Contains(err.Error(), testFingerprint()) {
			t.Fatalf("Dial: %v, want ErrTLS and ErrFingerprint naming the key presented", err)
		}
		if err := dialWith(l, pinned(&Config{Paths: 2})); err != nil {
			t.Fatalf("the right fingerprint: %v", err)
		}
	})
	t.Run("no trust anchor", func(t *testing.T) {
		l, _ := startListener(t, nil) // self-signed, and the client pins nothing
		if err := dialWith(l, &Config{Paths: 1}); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Dial: %v, want ErrTLS (unknown authority)", err)
		}
	})
	t.Run("chain verified", func(t *testing.T) {
		l, _ := startListener(t, &Config{TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "127.0.0.1", time.Now().Add(time.Hour))}}})
		if err := dialWith(l, &Config{Paths: 2, TLS: &tls.Config{RootCAs: ca.pool}}); err != nil {
			t.Fatalf("a CA-issued certificate for the address: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		l, _ := startListener(t, &Config{TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "127.0.0.1", time.Now().Add(-time.Minute))}}})
		if err := dialWith(l, &Config{Paths: 1, TLS: &tls.Config{RootCAs: ca.pool}}); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Dial: %v, want ErrTLS (expired)", err)
		}
	})
	t.Run("mismatched name", func(t *testing.T) {
		l, _ := startListener(t, &Config{TLS: &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "10.9.9.9", time.Now().Add(time.Hour))}}})
		if err := dialWith(l, &Config{Paths: 1, TLS: &tls.Config{RootCAs: ca.pool}}); !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("Dial: %v, want ErrTLS (not valid for 127.0.0.1)", err)
		}
	})
	t.Run("plaintext client, TLS server", func(t *testing.T) {
		l, _ := startListener(t, nil)
		if err := dialWith(l, &Config{Paths: 1, Insecure: true, HandshakeTimeout: 2 * time.Second}); err == nil {
			t.Fatal("an insecure client was served by a TLS listener")
		}
	})
	t.Run("TLS client, plaintext server", func(t *testing.T) {
		l, _ := startListener(t, &Config{Insecure: true})
		if err := dialWith(l, pinned(&Config{Paths: 1, HandshakeTimeout: 2 * time.Second})); !errors.Is(err, ErrTLS) {
			t.Fatalf("Dial: %v, want ErrTLS", err)
		}
	})
}

// TestTLSDowngradeRefused: a server that requires the post-quantum key exchange refuses a
// classical-only client, and a client that requires it refuses a classical-only server; without
// the requirement the classical exchange is used and reported as such.
func TestTLSDowngradeRefused(t *testing.T) {
	classical := func(c *tls.Config) *tls.Config { c.CurvePreferences = []tls.CurveID{tls.X25519}; return c }
	ctx := context.Background()

	pq, _ := startListener(t, &Config{RequirePostQuantum: true})
	_, err := Dial(ctx, pq.Addr().String(), pinned(&Config{Paths: 1, TLS: classical(&tls.Config{})}))
	if !errors.Is(err, ErrTLS) || !errors.Is(err, ErrNotPostQuantum) {
		t.Fatalf("classical client to a PQ-only server: %v, want ErrTLS and ErrNotPostQuantum", err)
	}
	c, err := Dial(ctx, pq.Addr().String(), pinned(&Config{Paths: 2}))
	if err != nil {
		t.Fatalf("default client to a PQ-only server: %v", err)
	}
	c.Abort()

	old, _ := startListener(t, &Config{TLS: classical(&tls.Config{Certificates: []tls.Certificate{testCert()}})})
	_, err = Dial(ctx, old.Addr().String(), pinned(&Config{Paths: 1, RequirePostQuantum: true}))
	if !errors.Is(err, ErrTLS) || !errors.Is(err, ErrNotPostQuantum) {
		t.Fatalf("PQ-only client to a classical server: %v, want ErrTLS and ErrNotPostQuantum", err)
	}
	c, err = Dial(ctx, old.Addr().String(), pinned(&Config{Paths: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	if kex := c.Stats().Paths[0].KeyExchange; kex != "X25519" {
		t.Fatalf("classical server: key exchange %q, want X25519", kex)
	}
}

// TestTLSAttachForgedOrReplayed: over TLS an attach proof is bound to the connection that carries
// it. A proof replayed on another connection, a forged one, and one keyed by the session token
// (what suffices without TLS) are all refused; the session's paths are untouched and a proof
// made for its own connection joins.
func TestTLSAttachForgedOrReplayed(t *testing.T) {
	l, logs := startListener(t, nil)
	addr := l.Addr().String()
	healthy := healthySession(t, l) // a legitimate client, served throughout
	first, acc := openRaw(t, addr, 4096)
	srv := acceptOne(t, l)
	defer srv.Abort()

	a := dialRaw(t, addr)
	proofForA := acc.attach(a, 1)
	b := dialRaw(t, addr)
	b.send(wire.TypeSessionAttach, proofForA) // replayed on another connection
	b.expectError(wire.CodeBadToken)

	forged := dialRaw(t, addr)
	f := wire.SessionAttach{ID: acc.ID, Slot: 1}
	rand.Read(f.Proof[:])
	forged.send(wire.TypeSessionAttach, wire.AppendSessionAttach(nil, f))
	forged.expectError(wire.CodeBadToken)

	tokenKeyed := dialRaw(t, addr)
	tk := rawSession{SessionAccept: acc.SessionAccept, Key: acc.Token[:]}
	tokenKeyed.send(wire.TypeSessionAttach, tk.attach(tokenKeyed, 1))
	tokenKeyed.expectError(wire.CodeBadToken)

	if live := liveInSlot(srv, 0); len(live) != 1 {
		t.Fatalf("live paths in slot 0 after the refused attaches: %v", live)
	}
	a.send(wire.TypeSessionAttach, proofForA) // on its own connection
	a.expectAttachOK()
	testutil.WaitFor(t, func() bool { return len(liveInSlot(srv, 1)) == 1 }, "the legitimate path to join")
	expectLog(t, logs, "bad attach proof")
	healthy()
	first.conn.Close()
}

// TestTLSCorruptRecord: a byte flipped in one path's TLS stream fails that record's
// authentication: the path drops, the client re-dials it, and every message arrives intact.
func TestTLSCorruptRecord(t *testing.T) {
	f := newFaultSetup(t, 2, nil)
	f.proxies[0].Corrupt(256 << 10) // well past the handshake, inside the data
	clientErr, serverErr := f.run(t, 40, 10, func() {})
	if clientErr != nil || serverErr != nil {
		t.Fatalf("client: %v; server: %v", clientErr, serverErr)
	}
	expectLog(t, f.serverLogs, "path down", "bad record MAC")
	f.proxies[0].Restore()
	f.closeBoth(t)
}

// TestTLSClientAuthentication: a server with a token or authorized client keys accepts only
// clients that present one, and refuses the others with ErrUnauthorized.
func TestTLSClientAuthentication(t *testing.T) {
	ctx := context.Background()
	clientCert, _ := secure.SelfSigned()
	clientFP, _ := secure.CertFingerprint(clientCert)
	strangerCert, _ := secure.SelfSigned()
	l, _ := startListener(t, &Config{Token: "s3cret", AuthorizedClients: []string{clientFP}})
	for _, c := range []struct {
		name string
		cfg  *Config
		ok   bool
	}{
		{"nothing", &Config{}, false},
		{"wrong token", &Config{Token: "guess"}, false},
		{"token", &Config{Token: "s3cret"}, true},
		{"authorized certificate", &Config{TLS: &tls.Config{Certificates: []tls.Certificate{clientCert}}}, true},
		{"unknown certificate", &Config{TLS: &tls.Config{Certificates: []tls.Certificate{strangerCert}}}, false},
	} {
		cfg := pinned(c.cfg)
		cfg.Paths = 2
		s, err := Dial(ctx, l.Addr().String(), cfg)
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Dial: %v", c.name, err)
		}
		if err == nil {
			srv := acceptOne(t, l)
			echoOnce(t, s, srv)
			s.Abort()
			srv.Abort()
		}
	}
}

// TestInsecureWarns: turning TLS off is logged as a warning at both ends.
func TestInsecureWarns(t *testing.T) {
	l, serverLogs := startListener(t, &Config{Insecure: true})
	clientLogs := &testutil.SyncBuffer{}
	c, err := Dial(context.Background(), l.Addr().String(), &Config{Insecure: true,
		Logger: slog.New(slog.NewTextHandler(clientLogs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	acceptOne(t, l).Abort()
	for end, logs := range map[string]*testutil.SyncBuffer{"client": clientLogs, "server": serverLogs} {
		if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "TLS is off") {
			t.Errorf("%s log has no warning that TLS is off:\n%s", end, out)
		}
	}
}

// TestClientCAAndAuthorizedKeys: a server that trusts both a client CA and a list of client
// keys accepts a CA-issued certificate and a listed self-signed key, and refuses a stranger.
func TestClientCAAndAuthorizedKeys(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	issued := ca.issue(t, "127.0.0.1", time.Now().Add(time.Hour))
	listed, _ := secure.SelfSigned()
	listedFP, _ := secure.CertFingerprint(listed)
	stranger, _ := secure.SelfSigned()
	for _, auth := range []tls.ClientAuthType{tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert} {
		l, _ := startListener(t, &Config{AuthorizedClients: []string{listedFP},
			TLS: &tls.Config{Certificates: []tls.Certificate{testCert()}, ClientCAs: ca.pool, ClientAuth: auth}})
		for _, c := range []struct {
			name string
			cert tls.Certificate
			ok   bool
		}{{"CA-issued", issued, true}, {"listed key", listed, true}, {"stranger", stranger, false}} {
			cfg := pinned(&Config{Paths: 2, TLS: &tls.Config{Certificates: []tls.Certificate{c.cert}}})
			s, err := Dial(ctx, l.Addr().String(), cfg)
			if c.ok != (err == nil) {
				t.Errorf("%v, %s: Dial: %v", auth, c.name, err)
			}
			if err == nil {
				srv := acceptOne(t, l)
				echoOnce(t, s, srv)
				s.Abort()
				srv.Abort()
			}
		}
	}
}

// TestFrameProtocolNeedsClientAuth: a server that accepts only authenticated clients serves the
// single-path frame protocol (which carries no token) only to a client with a trusted
// certificate; anyone else is refused with UNAUTHORIZED before a frame is answered.
func TestFrameProtocolNeedsClientAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clientCert, _ := secure.SelfSigned()
	clientFP, _ := secure.CertFingerprint(clientCert)
	l, logs := startListener(t, &Config{Token: "s3cret", AuthorizedClients: []string{clientFP}})
	base, err := secure.ClientConfig(secure.Options{ServerFingerprint: testFingerprint()}, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stranger := base.Clone()
	c, err := frame.Dial(ctx, l.Addr().String(), &frame.Config{TLS: stranger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx, []byte("hi")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("PING without a certificate: %v, want ErrUnauthorized", err)
	}
	c.Close()
	testutil.WaitFor(t, func() bool { return strings.Contains(logs.String(), "frame connection refused") }, "the refusal logged")
	known := base.Clone()
	known.Certificates = []tls.Certificate{clientCert}
	if c, err = frame.Dial(ctx, l.Addr().String(), &frame.Config{TLS: known}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(ctx, []byte("hi")); err != nil {
		t.Fatalf("PING with an authorized certificate: %v", err)
	}
}

// TestPreAuthFlood: connections that never finish their handshake are held only up to
// MaxHandshakesPerIP per address (and MaxHandshakes in all); beyond that they are closed at once,
// and a client from another address is served meanwhile. Once past its handshake a connection no
// longer counts, so established sessions are never refused by the flood.
func TestPreAuthFlood(t *testing.T) {
	testutil.CheckLeaks(t)
	l, logs := startListener(t, &Config{MaxHandshakesPerIP: 8, MaxHandshakes: 12, HandshakeTimeout: time.Minute})
	addr := l.Addr().String()
	// A session from 127.0.0.3, established before the flood.
	est, err := DialPaths(context.Background(), []PathSpec{{Local: "127.0.0.3", Remote: addr}, {Local: "127.0.0.3", Remote: addr}}, pinned(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer est.Abort()
	estSrv := acceptOne(t, l)
	defer estSrv.Abort()

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	dialFrom := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
		return c
	}
	pending := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.pending
	}
	for range 8 { // silent: no ClientHello
		dialFrom("127.0.0.1")
	}
	testutil.WaitFor(t, func() bool { return pending() == 8 }, "8 handshakes pending")
	// closedAtOnce checks that the server closed c without waiting for anything.
	closedAtOnce := func(c net.Conn, what string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("a handshake over the %s limit: read %v, want the connection closed", what, err)
		}
	}
	// The ninth from the same address is closed at once.
	closedAtOnce(dialFrom("127.0.0.1"), "per-address")
	expectLog(t, logs, "MaxHandshakesPerIP 8")
	// Another address is served, and the established session still carries data.
	c, err := DialPaths(context.Background(), []PathSpec{{Local: "127.0.0.2", Remote: addr}, {Local: "127.0.0.2", Remote: addr}}, pinned(nil))
	if err != nil {
		t.Fatalf("a client from another address during the flood: %v", err)
	}
	srv := acceptOne(t, l)
	echoOnce(t, c, srv)
	c.Abort()
	srv.Abort()
	echoOnce(t, est, estSrv)
	// The total is bounded too: 4 more silent ones from 127.0.0.4 fill MaxHandshakes (12).
	for range 4 {
		dialFrom("127.0.0.4")
	}
	testutil.WaitFor(t, func() bool { return pending() == 12 }, "12 handshakes pending")
	closedAtOnce(dialFrom("127.0.0.5"), "total")
	echoOnce(t, est, estSrv)
	// As the flood ends, the counts return to zero.
	for _, c := range flood {
		c.Close()
	}
	testutil.WaitFor(t, func() bool { return pending() == 0 }, "no handshake pending")
}

// TestPreAuthFrameBounded: before its session handshake succeeds, a connection cannot make the
// server read (or allocate for) more than a small frame, whatever MaxFrameSize allows.
func TestPreAuthFrameBounded(t *testing.T) {
	l, _ := startListener(t, nil)
	p := dialRaw(t, l.Addr().String())
	var hdr [wire.HeaderSize]byte
	wire.PutHeader(hdr[:], wire.Header{Length: 8 << 20, Type: wire.TypeSessionNew})
	if _, err := p.conn.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	p.expectError(wire.CodeFrameTooLarge)
}

// TestSecurityConstantsPinned ties the engine's pre-authentication and replacement rules to
// docs/PROTOCOL.md (5.2, 5.9).
func TestSecurityConstantsPinned(t *testing.T) {
	if maxHandshakeFrame != 256 {
		t.Errorf("maxHandshakeFrame = %d, want 256", maxHandshakeFrame)
	}
	s := &Session{cfg: &Config{KeepAlive: 3 * time.Second}}
	if got := s.replaceAfter(); got != 6*time.Second {
		t.Errorf("replaceAfter = %v, want 2 × KeepAlive", got)
	}
	d := DefaultConfig()
	if d.MaxHandshakes != 256 || d.MaxHandshakesPerIP != 32 || d.MaxPendingSessionsPerIP != 16 {
		t.Errorf("MaxHandshakes %d, MaxHandshakesPerIP %d, want 256 and 32", d.MaxHandshakes, d.MaxHandshakesPerIP)
	}
}

// TestTLSObserverLearnsNothing: what a passive observer of every path records contains neither
// the session id, nor its token, nor the data — the attack of issue 18 started by reading the
// id and token off one path. Without TLS (the contrast) all three are there.
func TestTLSObserverLearnsNothing(t *testing.T) {
	secret := bytes.Repeat([]byte("the quick brown fox "), 4096)
	for _, insecure := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		taps := &tap.Listener{Listener: ln, Limit: 4 << 20}
		l, err := NewListener(taps, serving(&Config{Insecure: insecure}))
		if err != nil {
			t.Fatal(err)
		}
		c, s := sendOneWay(t, l, &Config{Paths: 3, Insecure: insecure}, [][]byte{secret})
		id, token := s.id, s.token
		seen := map[string]bool{}
		for _, tc := range taps.Conns() {
			stream := append(tc.Bytes(), tc.Written()...) // both directions
			seen["id"] = seen["id"] || bytes.Contains(stream, id[:])
			seen["token"] = seen["token"] || bytes.Contains(stream, token[:])
			seen["data"] = seen["data"] || bytes.Contains(stream, []byte("quick brown fox"))
		}
		for _, what := range []string{"id", "token", "data"} {
			if seen[what] == !insecure {
				t.Errorf("insecure %v: the %s on the wire: %v", insecure, what, seen[what])
			}
		}
		c.Abort()
		s.Abort()
		l.Close()
	}
}

// TestPreAuthHandshakeTimeout: a connection that starts a TLS handshake and stalls (here, half a
// ClientHello) is closed at HandshakeTimeout, and a client connecting meanwhile is served.
func TestPreAuthHandshakeTimeout(t *testing.T) {
	l, logs := startListener(t, &Config{HandshakeTimeout: 300 * time.Millisecond})
	stall, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	stall.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a record header and one byte of ClientHello
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 2}))
	if err != nil {
		t.Fatalf("a client during the stalled handshake: %v", err)
	}
	s := acceptOne(t, l)
	echoOnce(t, c, s)
	c.Abort()
	s.Abort()
	// Closed by the handshake deadline, not left to ReadTimeout (30 s, beyond this wait).
	stall.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, stall); err != nil {
		t.Fatalf("the stalled connection was not closed: %v", err)
	}
	expectLog(t, logs, "TLS handshake failed")
}

// TestFrameBadInputThroughTLS: the single-path frame protocol's bad-input cases, sent inside TLS
// to a Listener (after a valid PING, so that the frame server reads them): each connection gets
// its ERROR code and is closed, while a client pinging throughout is served.
func TestFrameBadInputThroughTLS(t *testing.T) {
	l, _ := startListener(t, &Config{MaxFrameSize: 1 << 20, ReadTimeout: 300 * time.Millisecond})
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conf, err := secure.ClientConfig(secure.Options{ServerFingerprint: testFingerprint()}, addr)
	if err != nil {
		t.Fatal(err)
	}
	good, err := frame.Dial(ctx, addr, &frame.Config{TLS: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	stop, goodDone := make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				goodDone <- nil
				return
			default:
			}
			if _, err := good.Ping(ctx, []byte{byte(i)}); err != nil {
				goodDone <- err
				return
			}
		}
	}()
	header := func(n uint32, typ wire.Type) []byte {
		b := make([]byte, wire.HeaderSize)
		wire.PutHeader(b, wire.Header{Length: n, Type: typ})
		return b
	}
	for _, c := range []struct {
		name string
		send []byte
		half bool // close the write side after sending
		code wire.Code
	}{
		{"oversize length", header(1<<20+1, wire.TypeData), false, wire.CodeFrameTooLarge},
		{"max length", header(0xffffffff, wire.TypeData), false, wire.CodeFrameTooLarge},
		{"unknown type", header(3, 0x7e), false, wire.CodeUnknownType},
		{"truncated header then EOF", []byte{0, 0}, true, wire.CodeProtocol},
		{"header then EOF", header(100, wire.TypeData), true, wire.CodeProtocol},
		{"header then stall", append(header(100, wire.TypeData), 1, 2, 3), false, wire.CodeTimeout},
		{"invalid UTF-8 text", append(header(2, wire.TypeText), 0xff, 0xfe), false, wire.CodeProtocol},
		{"oversize ping", append(header(65, wire.TypePing), make([]byte, 65)...), false, wire.CodeProtocol},
		{"unexpected PONG", header(0, wire.TypePong), false, wire.CodeProtocol},
		{"malformed ERROR", append(header(1, wire.TypeError), 0), false, wire.CodeProtocol},
		{"chunk with no session", header(0, wire.TypeChunk), false, wire.CodeUnknownSession},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			conn := tls.Client(raw, conf)
			if err := conn.HandshakeContext(ctx); err != nil {
				t.Fatal(err)
			}
			w, r := wire.NewWriter(conn), wire.NewReader(conn, 0)
			if err := w.WriteFrame(wire.TypePing, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if f, err := r.ReadFrame(); err != nil || f.Type != wire.TypePong {
				t.Fatalf("the valid PING: %v %v", f.Type, err)
			}
			if _, err := conn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			if c.half {
				conn.CloseWrite()
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				f, err := r.ReadFrame()
				if err != nil {
					t.Fatalf("no ERROR frame: %v", err)
				}
				if f.Type != wire.TypeError {
					continue
				}
				e, err := wire.ParseError(f.Payload)
				if err != nil || e.Code != c.code {
					t.Fatalf("ERROR %v (%v), want %s", e, err, c.code)
				}
				break
			}
			if _, err := r.ReadFrame(); err == nil {
				t.Fatal("the connection stayed open after ERROR")
			}
		})
	}
	close(stop)
	if err := <-goodDone; err != nil {
		t.Fatalf("the good client was disturbed: %v", err)
	}
}

// TestSecurityMismatchNamed: a TLS client of a plain-TCP server, and a plain-TCP client of a
// TLS server, each fail with an error that says what to change, and the plain server logs why
// it closed the connection.
func TestSecurityMismatchNamed(t *testing.T) {
	ctx := context.Background()
	plain, logs := startListener(t, &Config{Insecure: true})
	_, err := Dial(ctx, plain.Addr().String(), pinned(&Config{Paths: 1}))
	if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "the client must be insecure too") {
		t.Errorf("TLS client, plain server: %v", err)
	}
	testutil.WaitFor(t, func() bool {
		return strings.Contains(logs.String(), "the client speaks TLS and this server is plain TCP")
	},
		"the plain server to log why it closed the connection")

	withTLS, _ := startListener(t, nil)
	_, err = Dial(ctx, withTLS.Addr().String(), &Config{Paths: 1, Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "if it speaks TLS, the client must too") {
		t.Errorf("plain client, TLS server: %v", err)
	}
}
