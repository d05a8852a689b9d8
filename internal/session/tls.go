package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"

	"github.com/braidnet/braid/internal/secure"
)

// Path security on the server side: the certificate a Listener presents, and the TLS handshake
// each accepted connection runs before its first frame (see "Path security" in
// docs/PROTOCOL.md).

// maxHandshakeFrame is the largest frame a server reads on a connection before its session
// handshake has succeeded: SESSION_NEW (with its token) and SESSION_ATTACH are far smaller.
const maxHandshakeFrame = 256

// setupTLS prepares the Listener's TLS configuration, making an ephemeral self-signed
// certificate if the configuration names none.
func (l *Listener) setupTLS() error {
	if l.cfg.Insecure {
		l.log.Warn("TLS is off (Insecure): paths are plain TCP, readable and forgeable by anyone on them, and an observer of one path can join its session")
		return nil
	}
	var cert tls.Certificate
	base := l.cfg.TLS
	if base == nil || len(base.Certificates) == 0 && base.GetCertificate == nil && base.GetConfigForClient == nil {
		var err error
		if cert, err = secure.SelfSigned(); err != nil {
			return fmt.Errorf("braid: server certificate: %w", err)
		}
		l.log.Info("no certificate configured: using an ephemeral self-signed one")
	} else if len(base.Certificates) > 0 {
		cert = base.Certificates[0]
	}
	conf, err := secure.ServerConfig(l.cfg.tlsOptions(), cert)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if cert.Certificate != nil {
		if l.fingerprint, err = secure.CertFingerprint(cert); err != nil {
			return fmt.Errorf("%w: server certificate: %w", ErrBadOptions, err)
		}
		l.log.Info("server identity", "fingerprint", l.fingerprint)
	}
	l.tlsConf = conf
	return nil
}

// Fingerprint returns the fingerprint of the key the Listener's certificate carries (the value
// a client pins with ServerFingerprint), or "" without TLS or when the certificate is chosen
// per connection (GetCertificate).
func (l *Listener) Fingerprint() string { return l.fingerprint }

// serverTLS runs the TLS server handshake on raw (within the deadline already set on it) and
// checks what it agreed. Without TLS it returns raw itself.
func (l *Listener) serverTLS(raw net.Conn) (net.Conn, pathSecurity, error) {
	sec := pathSecurity{kex: "none"}
	if l.tlsConf == nil {
		return raw, sec, nil
	}
	bc := &batchConn{Conn: raw}
	tc := tls.Server(bc, l.tlsConf)
	// On a goroutine of its own: the key exchange (ML-KEM above all) grows a goroutine's stack
	// to tens of KiB, which this one, the path's reader for as long as it lives, would keep
	// while it waits for frames (stacks shrink by half at a garbage collection at most, and an
	// idle server hardly collects).
	hs := make(chan error, 1)
	go func() { hs <- tc.HandshakeContext(context.Background()) }()
	if err := <-hs; err != nil {
		return nil, sec, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	cs := tc.ConnectionState()
	if err := secure.Check(cs, l.cfg.RequirePostQuantum); err != nil {
		tc.Close()
		return nil, sec, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	sec.kex = secure.KexName(cs.CurveID)
	var roots *x509.CertPool // the configured client CAs (ServerConfig may hide them from TLS)
	if l.cfg.TLS != nil {
		roots = l.cfg.TLS.ClientCAs
	}
	sec.clientCert = secure.ClientAuthenticated(cs, l.cfg.AuthorizedClients, roots)
	var err error
	if sec.key, sec.binding, err = secure.Exporters(cs); err != nil {
		tc.Close()
		return nil, sec, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	bc.batching = true // authenticated as far as TLS goes: the server knows its key
	return &tlsConn{Conn: tc, batch: bc}, sec, nil
}
