package secure

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Options are the TLS settings of one end of a session.
type Options struct {
	// Base is the caller's TLS configuration (certificates, roots, server name, client
	// authentication); it is cloned, never modified. Nil means none.
	Base *tls.Config
	// ServerFingerprint, on a client, accepts exactly the server whose key has this fingerprint,
	// instead of verifying its certificate chain.
	ServerFingerprint string
	// RequirePQ refuses a connection whose key exchange is not X25519MLKEM768.
	RequirePQ bool
	// AuthorizedClients, on a server, lists the fingerprints of client keys that authenticate a
	// client.
	AuthorizedClients []string
}

// PostQuantum is the key exchange Braid prefers and, with RequirePQ, demands.
const PostQuantum = tls.X25519MLKEM768

// ClientConfig returns the TLS configuration of a client path to addr ("host:port").
func ClientConfig(o Options, addr string) (*tls.Config, error) {
	c := baseClone(o)
	if len(c.Certificates) == 1 && c.GetClientCertificate == nil {
		// A client presents its one certificate whenever the server asks, as ssh presents its
		// key: crypto/tls would send none to a server naming CAs that did not issue it, though
		// the server may accept the key itself (AuthorizedClients).
		cert := &c.Certificates[0]
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	if c.ServerName == "" && !c.InsecureSkipVerify && o.ServerFingerprint == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = host
	}
	if o.ServerFingerprint != "" {
		want, err := ParseFingerprint(o.ServerFingerprint)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain verification; a VerifyConnection the caller set still runs.
		c.InsecureSkipVerify = true
		next := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			got, err := leafFingerprint(cs)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%w: server presented %s, expected %s", ErrFingerprint, got, want)
			}
			if next != nil {
				return next(cs)
			}
			return nil
		}
	}
	return c, nil
}

// ServerConfig returns the TLS configuration of a server presenting cert.
func ServerConfig(o Options, cert tls.Certificate) (*tls.Config, error) {
	c := baseClone(o)
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		c.Certificates = []tls.Certificate{cert}
	}
	if len(o.AuthorizedClients) > 0 && c.ClientAuth < tls.RequestClientCert {
		c.ClientAuth = tls.RequestClientCert
	}
	for _, fp := range o.AuthorizedClients {
		if _, err := ParseFingerprint(fp); err != nil {
			return nil, fmt.Errorf("authorized client: %w", err)
		}
	}
	if len(o.AuthorizedClients) > 0 && c.ClientCAs != nil &&
		(c.ClientAuth == tls.VerifyClientCertIfGiven || c.ClientAuth == tls.RequireAndVerifyClientCert) {
		// A client key on the list authenticates without a chain to ClientCAs (it is usually
		// self-signed), which crypto/tls's own verification would refuse: verify here instead,
		// accepting either.
		c.ClientAuth = map[tls.ClientAuthType]tls.ClientAuthType{
			tls.VerifyClientCertIfGiven:    tls.RequestClientCert,
			tls.RequireAndVerifyClientCert: tls.RequireAnyClientCert,
		}[c.ClientAuth]
		roots, authorized := c.ClientCAs, o.AuthorizedClients
		// Nor may the server name its CAs in the certificate request: a client holding only a
		// listed self-signed key would then send none (crypto/tls picks a certificate issued by
		// one of those CAs).
		c.ClientCAs = nil
		next := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && !ClientAuthenticated(cs, authorized, roots) {
				return fmt.Errorf("%w: client certificate neither authorized nor issued by a trusted CA", ErrUntrustedClient)
			}
			if next != nil {
				return next(cs)
			}
			return nil
		}
	}
	// Every path runs a full handshake: its key exchange is fresh and checked, and no ticket
	// outlives the server's view of who may attach.
	c.SessionTicketsDisabled = true
	return c, nil
}

// baseClone copies the caller's configuration and fixes what every Braid path needs: TLS 1.3
// only, the braid ALPN, and (with RequirePQ) the post-quantum key exchange alone.
func baseClone(o Options) *tls.Config {
	var c *tls.Config
	if o.Base != nil {
		c = o.Base.Clone()
	} else {
		c = &tls.Config{}
	}
	c.MinVersion = tls.VersionTLS13
	c.MaxVersion = 0
	c.NextProtos = []string{ALPN}
	if o.RequirePQ {
		c.CurvePreferences = []tls.CurveID{PostQuantum}
	}
	return c
}

// Check verifies a finished handshake: TLS 1.3, the braid ALPN, and, with requirePQ, the
// post-quantum key exchange.
func Check(cs tls.ConnectionState, requirePQ bool) error {
	switch {
	case cs.Version != tls.VersionTLS13:
		return fmt.Errorf("TLS version %s, want TLS 1.3", tls.VersionName(cs.Version))
	case cs.NegotiatedProtocol != ALPN:
		return fmt.Errorf("application protocol %q, want %q", cs.NegotiatedProtocol, ALPN)
	case requirePQ && cs.CurveID != PostQuantum:
		return fmt.Errorf("%w: %s", ErrClassical, KexName(cs.CurveID))
	}
	return nil
}

// KexName names a key exchange for stats and logs.
func KexName(id tls.CurveID) string {
	if id == 0 {
		return "none"
	}
	return id.String()
}

// ClientAuthenticated reports whether a server-side handshake authenticated the client by
// certificate: a chain verified (by crypto/tls, or here against roots if not nil) to a trusted
// CA, or a key in authorized.
func ClientAuthenticated(cs tls.ConnectionState, authorized []string, roots *x509.CertPool) bool {
	if len(cs.VerifiedChains) > 0 {
		return true
	}
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	leaf := cs.PeerCertificates[0]
	fp := Fingerprint(leaf)
	if slices.ContainsFunc(authorized, func(a string) bool {
		n, err := ParseFingerprint(a)
		return err == nil && n == fp
	}) {
		return true
	}
	if roots == nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// Exporters returns a path's two exported secrets: the session key (used when the path is a
// session's first) and the binding (used when it attaches).
func Exporters(cs tls.ConnectionState) (key, binding []byte, err error) {
	key, err = cs.ExportKeyingMaterial(SessionKeyLabel, nil, ExportSize)
	if err == nil {
		binding, err = cs.ExportKeyingMaterial(BindingLabel, nil, ExportSize)
	}
	if err != nil {
		return nil, nil, errors.Join(errors.New("TLS exporter"), err)
	}
	return key, binding, nil
}

// RouteDomain is the name after a routing label when a path has no DNS name of its own to
// send (it dials an IP address and no ServerName is configured). The .invalid top-level domain
// (RFC 6761) never resolves: the name only carries the label to a load balancer.
const RouteDomain = "braid.invalid"

// maxServerName is the longest DNS name (RFC 1035: 253 characters in text form).
const maxServerName = 253

// RouteName is the TLS server name of a path attaching to a routable session: label (the
// session's server id in hex) as the first DNS label, then the name the path would otherwise
// send — serverName if set, else the host of addr if it is a DNS name — or RouteDomain.
func RouteName(label, serverName, addr string) string {
	base := serverName
	if base == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		base = host
	}
	base = strings.TrimSuffix(base, ".")
	if base == "" || net.ParseIP(base) != nil || len(label)+1+len(base) > maxServerName {
		base = RouteDomain
	}
	return label + "." + base
}

// SendServerName changes c, a client configuration from ClientConfig, to send sni in its
// ClientHello while verifying the server exactly as before: a pinned key (or a caller's
// InsecureSkipVerify) ignores names anyway; a certificate chain is still verified against the
// RootCAs for the configured ServerName, not for sni, by a VerifyConnection that takes over
// crypto/tls's own verification (a caller's VerifyConnection then runs after it; a caller's
// VerifyPeerCertificate is given no verified chains).
func SendServerName(c *tls.Config, sni string) {
	if c.InsecureSkipVerify {
		c.ServerName = sni
		return
	}
	name, roots, now := c.ServerName, c.RootCAs, c.Time
	c.ServerName = sni
	c.InsecureSkipVerify = true
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: server presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
		if now != nil {
			opts.CurrentTime = now()
		}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}
