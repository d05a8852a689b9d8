package braid

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/braidnet/braid/internal/secure"
)

// Fingerprint returns the fingerprint of a certificate's key as Braid prints and pins it:
// "SHA256:" and the unpadded base64 SHA-256 of its SubjectPublicKeyInfo (so a certificate
// renewed with the same key keeps it).
func Fingerprint(cert *x509.Certificate) string { return secure.Fingerprint(cert) }

// SelfSignedCertificate makes a new ECDSA P-256 key and a self-signed certificate for it, valid
// for ten years and naming hosts (DNS names or IP addresses), for a Listener's Config.TLS.
func SelfSignedCertificate(hosts ...string) (tls.Certificate, error) {
	return secure.SelfSigned(hosts...)
}

// LoadOrCreateIdentity loads the server identity kept in dir (key.pem and cert.pem) or, if dir
// holds neither, creates dir, a new key (mode 0600) and a self-signed certificate, and reports
// created. It is what `braid serve` does with its identity directory.
func LoadOrCreateIdentity(dir string) (cert tls.Certificate, created bool, err error) {
	return secure.LoadOrCreate(dir)
}

// PinnedTLS returns a client TLS configuration that accepts exactly the server whose key has
// fingerprint, for a frame.Config talking to a Listener. (A session client sets
// Config.ServerFingerprint instead.)
func PinnedTLS(fingerprint string) (*tls.Config, error) {
	conf, err := secure.ClientConfig(secure.Options{ServerFingerprint: fingerprint}, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return conf, nil
}
