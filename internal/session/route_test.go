package session

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// TestSessionIDsRoutable: a server with a ServerID gives every session an id that carries it
// (and its config codepoint), the same id at both ends; a server without one gives unroutable
// ids.
func TestSessionIDsRoutable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    *Config
		prefix []byte // the id's first bytes
		config uint8  // the top three bits of the first
	}{
		{"server id", &Config{ServerID: []byte{0xab, 0xcd}, ServerIDConfig: 3}, []byte{0x62, 0xab, 0xcd}, 3},
		{"one byte", &Config{ServerID: []byte{0x07}}, []byte{0x01, 0x07}, 0},
		{"seven bytes", &Config{ServerID: []byte{1, 2, 3, 4, 5, 6, 7}}, []byte{0x07, 1, 2, 3, 4, 5, 6, 7}, 0},
		{"none", nil, nil, wire.RouteUnroutable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := dialPair(t, tc.cfg, &Config{Paths: 2})
			if c.id != s.id {
				t.Fatalf("client id %x, server id %x", c.id, s.id)
			}
			if c.id[0]>>wire.RouteConfigShift != tc.config || !slices.Equal(c.id[:len(tc.prefix)], tc.prefix) {
				t.Fatalf("id %x: want prefix %x, config %d", c.id, tc.prefix, tc.config)
			}
			// The logged id keeps at least 6 random bytes after the server id.
			if c.ID() != s.ID() || len(c.ID()) != 2*max(8, len(tc.prefix)+6) {
				t.Fatalf("logged ids %s and %s, want %d bytes", c.ID(), s.ID(), max(8, len(tc.prefix)+6))
			}
			echoOnce(t, c, s)
		})
	}
}

// issueName makes a leaf certificate of ca for the DNS name.
func (ca *testCA) issueName(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// sniRecorder is a server TLS base configuration that records the server name of every
// ClientHello; with swap set, a hello whose name is in swap gets that certificate instead.
type sniRecorder struct {
	mu    sync.Mutex
	names []string
	swap  map[string]tls.Certificate
}

func (r *sniRecorder) config(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		r.mu.Lock()
		r.names = append(r.names, h.ServerName)
		other, ok := r.swap[h.ServerName]
		r.mu.Unlock()
		if !ok {
			return nil, nil
		}
		return secure.ServerConfig(secure.Options{}, other)
	}}
}

func (r *sniRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// TestAttachPathsSendRouteName: with a routable session, every attaching path's ClientHello
// names the server id first ("abcd.<name>"), while the first path sends what it always did
// (nothing for an IP address, else its server name); the server is verified as without
// routing, both by a pinned key and by a CA chain for the configured ServerName. A certificate
// valid for the routing name but not for ServerName is refused.
func TestAttachPathsSendRouteName(t *testing.T) {
	ca := newTestCA(t)
	good := ca.issueName(t, "braid.test")
	goodFP, _ := secure.CertFingerprint(good)
	for _, tc := range []struct {
		name        string
		client      Config
		first, rest string
	}{
		{"pinned key, IP address", Config{ServerFingerprint: goodFP}, "", "abcd." + secure.RouteDomain},
		{"pinned key and a server name", Config{ServerFingerprint: goodFP, TLS: &tls.Config{ServerName: "braid.test"}}, "braid.test", "abcd.braid.test"},
		{"CA chain for the server name", Config{TLS: &tls.Config{RootCAs: ca.pool, ServerName: "braid.test"}}, "braid.test", "abcd.braid.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &sniRecorder{}
			l, _ := startListener(t, &Config{ServerID: []byte{0xab, 0xcd}, TLS: rec.config(good)})
			cfg := tc.client
			cfg.Paths = 4
			c, err := Dial(context.Background(), l.Addr().String(), &cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			s := acceptOne(t, l)
			defer s.Abort()
			echoOnce(t, c, s)
			names := rec.seen()
			want := []string{tc.first, tc.rest, tc.rest, tc.rest}
			if !slices.Equal(names, want) {
				t.Fatalf("server names %q, want %q", names, want)
			}
		})
	}

	t.Run("certificate for the routing name only", func(t *testing.T) {
		rec := &sniRecorder{swap: map[string]tls.Certificate{"abcd.braid.test": ca.issueName(t, "abcd.braid.test")}}
		l, _ := startListener(t, &Config{ServerID: []byte{0xab, 0xcd}, TLS: rec.config(good)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Dial(ctx, l.Addr().String(), &Config{Paths: 2, TLS: &tls.Config{RootCAs: ca.pool, ServerName: "braid.test"}})
		var verr *tls.CertificateVerificationError
		if !errors.Is(err, ErrTLS) || !errors.As(err, &verr) {
			t.Fatalf("Dial: %v, want ErrTLS with a certificate verification error", err)
		}
		if names := rec.seen(); !slices.Equal(names, []string{"braid.test", "abcd.braid.test"}) {
			t.Fatalf("server names %q", names)
		}
	})
}

// TestUnroutableSessionSendsNoRouteName: without a server id, attaching paths send the same
// server name as the first.
func TestUnroutableSessionSendsNoRouteName(t *testing.T) {
	rec := &sniRecorder{}
	l, _ := startListener(t, &Config{TLS: rec.config(testCert())})
	c, err := Dial(context.Background(), l.Addr().String(), pinned(&Config{Paths: 3, TLS: &tls.Config{ServerName: "braid.test"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	acceptOne(t, l).Abort()
	if names := rec.seen(); !slices.Equal(names, []string{"braid.test", "braid.test", "braid.test"}) {
		t.Fatalf("server names %q", names)
	}
}

// TestMisroutedAttachSaysWhere: an attach whose id names another server is refused
// UNKNOWN_SESSION with both server ids in the reason, so that a misrouting balancer is plain in
// the client's error; an id naming this server (or none) gets the plain refusal.
func TestMisroutedAttachSaysWhere(t *testing.T) {
	l, _ := startListener(t, &Config{ServerID: []byte{0x01}})
	for _, tc := range []struct {
		name  string
		first []byte // the id's first bytes; the rest is zero
		want  string // in the reason; "" for none of it
	}{
		{"another server", []byte{0x01, 0x02}, "its id names server 02; this is server 01"},
		{"a longer server id", []byte{0x42, 0xbe, 0xef}, "its id names server beef; this is server 01"},
		{"this server", []byte{0x01, 0x01}, ""},
		{"unroutable", []byte{0xe0}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var id wire.SessionID
			copy(id[:], tc.first)
			p := dialRaw(t, l.Addr().String())
			p.send(wire.TypeSessionAttach, wire.AppendSessionAttach(nil, wire.SessionAttach{ID: id}))
			f := p.recv()
			e, err := wire.ParseError(f.Payload)
			if f.Type != wire.TypeError || err != nil || e.Code != wire.CodeUnknownSession {
				t.Fatalf("answer %s %+v (%v), want ERROR UNKNOWN_SESSION", f.Type, e, err)
			}
			if got := strings.Contains(e.Message, "names server"); got != (tc.want != "") || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("reason %q, want %q", e.Message, tc.want)
			}
		})
	}
}
