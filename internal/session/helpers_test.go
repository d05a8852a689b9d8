package session

// Helpers shared by the engine's white-box tests: listeners and sessions on loopback, the test
// TLS identity, raw paths driven frame by frame, message generators and log checks.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// The tests' server identity: one self-signed certificate for the whole test binary (making a key
// per listener would only slow the tests down).
var testCert = sync.OnceValue(func() tls.Certificate {
	cert, err := secure.SelfSigned("127.0.0.1")
	if err != nil {
		panic(err)
	}
	return cert
})

// testFingerprint is the fingerprint of testCert.
func testFingerprint() string {
	fp, err := secure.CertFingerprint(testCert())
	if err != nil {
		panic(err)
	}
	return fp
}

// serving returns a copy of cfg (nil for none) that presents the test certificate, unless it is
// Insecure or has a TLS configuration of its own.
func serving(cfg *Config) *Config {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if !c.Insecure && c.TLS == nil {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{testCert()}}
	}
	return &c
}

// pinned returns a copy of cfg (nil for none) that trusts the test certificate, unless it is
// Insecure or pins another key.
func pinned(cfg *Config) *Config {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if !c.Insecure && c.ServerFingerprint == "" {
		c.ServerFingerprint = testFingerprint()
	}
	return &c
}

// rawSession is what a hand-driven client learns from SESSION_ACCEPT, plus the attach key its
// first path's TLS session exported.
type rawSession struct {
	wire.SessionAccept
	Key []byte
}

// attach is a SESSION_ATTACH payload for slot, with the proof bound to p's connection.
func (rs rawSession) attach(p *rawPath, slot int) []byte {
	return wire.AppendSessionAttach(nil, wire.SessionAttach{ID: rs.ID, Slot: uint16(slot), Proof: secure.Proof(rs.Key, rs.ID[:], uint16(slot), p.binding)})
}

// startListener runs a Listener on loopback for the test.
func startListener(t *testing.T, cfg *Config) (*Listener, *testutil.SyncBuffer) {
	t.Helper()
	return startHookedListener(t, cfg, nil)
}

// startHookedListener runs a Listener on loopback whose sessions run the given test hooks.
func startHookedListener(t *testing.T, cfg *Config, hooks *testHooks) (*Listener, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := newListener(ln, serving(cfg), hooks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, logs
}

func acceptOne(t *testing.T, l *Listener) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomMessage(r *rand.Rand, max int) []byte {
	n := r.IntN(max + 1)
	if r.IntN(8) == 0 {
		n = 0
	}
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// exchangeMessages announces a seed, then sends n messages derived from it, while it receives
// the peer's seed and checks each of the peer's n messages, regenerated from that seed, byte for
// byte. Nothing is held beyond the message in hand. afterSend, if set, runs after each message
// sent (fault tests inject their faults from it, mid-transfer).
func exchangeMessages(ctx context.Context, s *Session, seed uint64, n, maxSize int, afterSend func(i int)) error {
	errc := make(chan error, 1)
	go func() {
		if err := s.Send(ctx, binary.BigEndian.AppendUint64(nil, seed)); err != nil {
			errc <- err
			return
		}
		g := newMessageGen(seed, maxSize)
		for i := range n {
			if err := s.Send(ctx, g.next()); err != nil {
				errc <- fmt.Errorf("sending message %d: %w", i, err)
				return
			}
			if afterSend != nil {
				afterSend(i)
			}
		}
		errc <- nil
	}()
	first, err := s.Receive(ctx)
	if err != nil || len(first) != 8 {
		return fmt.Errorf("seed message: %d bytes, %w", len(first), err)
	}
	g := newMessageGen(binary.BigEndian.Uint64(first), maxSize)
	for i := range n {
		got, err := s.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receiving message %d: %w", i, err)
		}
		if want := g.next(); !bytes.Equal(got, want) {
			return fmt.Errorf("message %d: got %d bytes, want %d: corrupted or out of order", i, len(got), len(want))
		}
		s.Release(got)
	}
	return <-errc
}

// messageGen derives a sequence of messages from a seed: mostly small and medium, sometimes up
// to max bytes, and sometimes empty.
type messageGen struct {
	r   *rand.Rand
	max int
}

func newMessageGen(seed uint64, max int) *messageGen {
	return &messageGen{r: rand.New(rand.NewPCG(seed, 7)), max: max}
}

func (g *messageGen) next() []byte {
	return randomMessage(g.r, []int{0, 100, 70_000, g.max}[g.r.IntN(4)])
}

// drain receives and releases messages until the session ends, counting them.
func drain(s *Session, n *atomic.Int64) {
	for {
		m, err := s.Receive(context.Background())
		if err != nil {
			return
		}
		n.Add(1)
		s.Release(m)
	}
}

// rawPath is a hand-driven session path for sending what a correct peer never would.
type rawPath struct {
	t       *testing.T
	conn    net.Conn // the TLS connection
	tcp     net.Conn // under it
	r       *wire.Reader
	w       *wire.Writer
	key     []byte // its exported session key and binding
	binding []byte
}

// plainAddrs holds the addresses of the tests' Insecure listeners, to which dialRaw speaks plain
// TCP.
var plainAddrs sync.Map

// dialRaw opens a TLS connection (plain TCP to an address in plainAddrs) to addr trusting the test certificate.
func dialRaw(t *testing.T, addr string) *rawPath {
	t.Helper()
	return dialRawPinned(t, addr, testFingerprint())
}

// dialRawPinned is dialRaw trusting the server key with fingerprint fp.
func dialRawPinned(t *testing.T, addr, fp string) *rawPath {
	t.Helper()
	tcp, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	tcp.SetDeadline(time.Now().Add(10 * time.Second))
	if _, plain := plainAddrs.Load(addr); plain {
		return &rawPath{t: t, conn: tcp, tcp: tcp, r: wire.NewReader(tcp, 0), w: wire.NewWriter(tcp)}
	}
	conf, err := secure.ClientConfig(secure.Options{ServerFingerprint: fp}, addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(tcp, conf)
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	p := &rawPath{t: t, conn: conn, tcp: tcp, r: wire.NewReader(conn, 0), w: wire.NewWriter(conn)}
	if p.key, p.binding, err = secure.Exporters(conn.ConnectionState()); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *rawPath) send(typ wire.Type, payload []byte) {
	p.t.Helper()
	if err := p.w.WriteFrame(typ, payload); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPath) recv() wire.Frame {
	p.t.Helper()
	f, err := p.r.ReadFrame()
	if err != nil {
		p.t.Fatalf("reading: %v", err)
	}
	return f
}

// expectClosed reads until the server ends the connection (skipping whatever frames it sends first).
func (p *rawPath) expectClosed() {
	p.t.Helper()
	for {
		if _, err := p.r.ReadFrame(); err != nil {
			if isTimeout(err) {
				p.t.Fatalf("connection still open: %v", err)
			}
			return
		}
	}
}

// expectError reads until an ERROR frame (skipping keepalives and credit) and checks its code,
// then that the server closed the connection.
func (p *rawPath) expectError(code wire.Code) {
	p.t.Helper()
	for {
		f, err := p.r.ReadFrame()
		if err != nil {
			p.t.Fatalf("no ERROR %s: %v", code, err)
		}
		if f.Type != wire.TypeError {
			continue
		}
		e, err := wire.ParseError(f.Payload)
		if err != nil {
			p.t.Fatal(err)
		}
		if e.Code != code {
			p.t.Fatalf("ERROR %s (%s), want %s", e.Code, e.Message, code)
		}
		if _, err := p.r.ReadFrame(); err == nil {
			p.t.Fatal("connection still open after ERROR")
		}
		return
	}
}

// openRaw performs SESSION_NEW by hand and returns the path and the server's terms.
func openRaw(t *testing.T, addr string, chunk uint32) (*rawPath, rawSession) {
	t.Helper()
	return openRawWith(t, addr, wire.SessionNew{Version: wire.ProtocolVersion, ChunkSize: chunk, Window: 1 << 20})
}

// openRawWith performs SESSION_NEW with sn by hand and returns the path and the server's terms.
func openRawWith(t *testing.T, addr string, sn wire.SessionNew) (*rawPath, rawSession) {
	t.Helper()
	p := dialRaw(t, addr)
	p.send(wire.TypeSessionNew, wire.AppendSessionNew(nil, sn))
	f := p.recv()
	if f.Type != wire.TypeSessionAccept {
		t.Fatalf("got %s", f.Type)
	}
	acc, err := wire.ParseSessionAccept(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	key := p.key
	if key == nil { // no TLS: the token keys attach proofs
		key = acc.Token[:]
	}
	return p, rawSession{SessionAccept: acc, Key: key}
}

func chunkFrame(item uint64, chunk, total uint32, n int) []byte {
	b := wire.AppendChunkHeader(nil, wire.ChunkHeader{Item: item, Chunk: chunk, Total: total})
	return append(b, make([]byte, n)...)
}

// healthySession dials a session, and returns a check that it still carries a message both ways.
func healthySession(t *testing.T, l *Listener) func() {
	t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, l.Addr().String(), pinned(&Config{Paths: 2, ChunkSize: 4 << 10}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Abort() })
	s := acceptOne(t, l)
	t.Cleanup(func() { s.Abort() })
	return func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		msg := []byte(strings.Repeat("still here ", 1000))
		if err := c.Send(ctx, msg); err != nil {
			t.Fatalf("healthy session broke: %v", err)
		}
		if got, err := s.Receive(ctx); err != nil || string(got) != string(msg) {
			t.Fatalf("healthy session broke: %v", err)
		}
	}
}

// attachRaw sends SESSION_ATTACH for slot on a new raw connection.
func attachRaw(t *testing.T, addr string, acc rawSession, slot int) *rawPath {
	t.Helper()
	p := dialRaw(t, addr)
	p.send(wire.TypeSessionAttach, acc.attach(p, slot))
	return p
}

// expectAttachOK reads the server's answer to SESSION_ATTACH and returns the path index.
func (p *rawPath) expectAttachOK() int {
	p.t.Helper()
	f := p.recv()
	if f.Type == wire.TypeError {
		e, _ := wire.ParseError(f.Payload)
		p.t.Fatalf("attach answered with ERROR %s: %s", e.Code, e.Message)
	}
	if f.Type != wire.TypeAttachOK {
		p.t.Fatalf("attach answered with %s", f.Type)
	}
	idx, err := wire.ParseAttachOK(f.Payload)
	if err != nil {
		p.t.Fatal(err)
	}
	return int(idx)
}

// readUntil reads frames until one of type want, failing if the connection ends first.
func (p *rawPath) readUntil(want wire.Type, why string) {
	p.t.Helper()
	for {
		f, err := p.r.ReadFrame()
		if err != nil {
			p.t.Fatalf("%s: connection ended before %s: %v", why, want, err)
		}
		if f.Type == want {
			return
		}
	}
}

// openRawSession performs SESSION_NEW by hand with a window large enough for the test's
// messages, without deadlines, and returns the path and the server's terms.
func openRawSession(t *testing.T, addr string, mode uint8, chunk uint32) (*rawPath, rawSession) {
	t.Helper()
	p, acc := openRawWith(t, addr, wire.SessionNew{Version: wire.ProtocolVersion, Mode: mode, ChunkSize: chunk, Window: 1 << 30})
	p.tcp.SetDeadline(time.Time{})
	return p, acc
}

// discard reads and drops everything the path receives until it ends.
func (p *rawPath) discard(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, err := p.r.ReadFrame(); err != nil {
				return
			}
		}
	}()
}

// reset ends the raw connection with a TCP reset.
func (p *rawPath) reset() {
	p.tcp.(*net.TCPConn).SetLinger(0)
	p.tcp.Close()
}

// quietConfig keeps the timers out of the way: nothing is resent, and no path declared dead,
// except as the test makes happen.
func quietConfig() *Config {
	return &Config{MinRTO: time.Minute, PathTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute,
		Scheduler: "round-robin"}
}

func expectLog(t *testing.T, logs *testutil.SyncBuffer, want ...string) {
	t.Helper()
	for _, w := range want {
		testutil.WaitFor(t, func() bool { return strings.Contains(logs.String(), w) }, "log line %q", w)
	}
}

// testCA is a certificate authority for the chain-verification tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a leaf certificate for ip, valid until notAfter.
func (ca *testCA) issue(t *testing.T, ip string, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, IPAddresses: []net.IP{net.ParseIP(ip)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// echoOnce checks that a session carries a message to its peer.
func echoOnce(t *testing.T, c, s *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Send(ctx, []byte("over TLS")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Receive(ctx); err != nil || string(m) != "over TLS" {
		t.Fatalf("received %q, %v", m, err)
	}
}

// dialPair opens a session from a client with ccfg to a loopback server with scfg (nil for the
// defaults; TLS with the test identity unless Insecure) and returns both ends, aborted when the
// test ends.
func dialPair(t *testing.T, scfg, ccfg *Config) (client, server *Session) {
	t.Helper()
	l, _ := startListener(t, scfg)
	return dialTo(t, l, ccfg)
}

// dialTo opens a session from a client with ccfg (nil for the defaults; it trusts the test
// identity) to l and returns both ends, aborted when the test ends.
func dialTo(t *testing.T, l *Listener, ccfg *Config) (client, server *Session) {
	t.Helper()
	c, err := Dial(context.Background(), l.Addr().String(), pinned(ccfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Abort)
	s := acceptOne(t, l)
	t.Cleanup(s.Abort)
	return c, s
}

// waitPaths waits until s has n live paths or has ended.
func waitPaths(s *Session, n int) {
	for s.Err() == nil {
		live := 0
		for _, p := range s.Stats().Paths {
			if p.Live {
				live++
			}
		}
		if live >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// twoRawPaths opens a session on a listener with cfg from two raw client paths (slots 0 and 1,
// 4096-byte chunks, mode plain) whose incoming frames are read and dropped, and returns them
// and the server's session; all are closed when the test ends.
func twoRawPaths(t *testing.T, cfg *Config) (a, b *rawPath, srv *Session) {
	t.Helper()
	l, _ := startListener(t, cfg)
	addr := l.Addr().String()
	a, acc := openRawSession(t, addr, 0, 4096)
	srv = acceptOne(t, l)
	t.Cleanup(srv.Abort)
	b = attachRaw(t, addr, acc, 1)
	b.conn.SetDeadline(time.Time{})
	b.expectAttachOK()
	var readers sync.WaitGroup
	t.Cleanup(readers.Wait)
	t.Cleanup(func() { a.conn.Close() })
	t.Cleanup(func() { b.conn.Close() })
	a.discard(&readers)
	b.discard(&readers)
	return a, b, srv
}
