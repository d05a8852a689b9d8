// Package secure holds Braid's path security: the TLS 1.3 settings every path uses, server
// identities (self-signed certificates and their fingerprints), the trust-on-first-use store of
// server fingerprints, and the attach proof that binds a path to the session's first TLS
// connection (see "Path security" in docs/PROTOCOL.md).
package secure

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ALPN is the application protocol every Braid path negotiates.
const ALPN = "braid/2"

// Exporter labels (RFC 8446 §7.5): the session key is exported from the session's first path,
// the binding from the path being attached.
const (
	SessionKeyLabel = "EXPORTER-braid-session-key"
	BindingLabel    = "EXPORTER-braid-path-binding"
	ExportSize      = 32
)

// ProofSize is the size of an attach proof.
const ProofSize = sha256.Size

// ErrFingerprint is a server (or client) certificate whose fingerprint is not the expected one.
var ErrFingerprint = errors.New("certificate fingerprint mismatch")

// ErrClassical is a TLS connection that agreed a classical key exchange where a post-quantum one
// was required.
var ErrClassical = errors.New("key exchange is not post-quantum")

// ErrUntrustedClient reports a client certificate that is neither on the server's list of
// authorized keys nor issued by a CA it trusts.
var ErrUntrustedClient = errors.New("untrusted client certificate")

// fingerprintPrefix starts every fingerprint, as in ssh-keygen -l.
const fingerprintPrefix = "SHA256:"

// Fingerprint returns the fingerprint of a certificate: SHA-256 of its public key
// (SubjectPublicKeyInfo), as "SHA256:" and unpadded base64. A certificate renewed with the same
// key keeps its fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return fingerprintPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ParseFingerprint checks that s is a fingerprint as Fingerprint writes it ("SHA256:" may be
// given in any case, or left out) and returns it in that form.
func ParseFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) >= len(fingerprintPrefix) && strings.EqualFold(s[:len(fingerprintPrefix)], fingerprintPrefix) {
		s = s[len(fingerprintPrefix):]
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want SHA256: and 43 base64 characters", s)
	}
	return fingerprintPrefix + base64.RawStdEncoding.EncodeToString(b), nil
}

// leafFingerprint returns the fingerprint of the first certificate a peer presented.
func leafFingerprint(cs tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("the peer presented no certificate")
	}
	return Fingerprint(cs.PeerCertificates[0]), nil
}

// SelfSigned makes a new ECDSA P-256 key and a self-signed certificate for it, valid for ten
// years from now, naming hosts (DNS names or IP addresses) so that a client verifying by name
// may use it too.
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "braid server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Identity file names inside an identity directory.
const (
	KeyFile  = "key.pem"
	CertFile = "cert.pem"
)

// LoadOrCreate loads the key and certificate in dir, or, if neither exists, creates dir (0700),
// a new key (0600) and a self-signed certificate for it, and reports created. A directory holding
// only one of the two files is an error, not overwritten.
func LoadOrCreate(dir string) (cert tls.Certificate, created bool, err error) {
	keyPath, certPath := filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile)
	_, kerr := os.Stat(keyPath)
	_, cerr := os.Stat(certPath)
	switch {
	case kerr == nil && cerr == nil:
		cert, err = LoadKeyPair(certPath, keyPath)
		return cert, false, err
	case !errors.Is(kerr, os.ErrNotExist) && kerr != nil:
		return cert, false, kerr
	case !errors.Is(cerr, os.ErrNotExist) && cerr != nil:
		return cert, false, cerr
	case kerr == nil || cerr == nil:
		return cert, false, fmt.Errorf("identity %s: one of %s and %s is missing; remove the other to create a new identity", dir, KeyFile, CertFile)
	}
	if cert, err = SelfSigned(); err != nil {
		return cert, false, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return cert, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, false, err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return cert, false, err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		os.Remove(keyPath)
		return cert, false, err
	}
	return cert, true, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	return f.Close()
}

// LoadKeyPair loads a PEM certificate (chain) and key, with the leaf parsed.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, err
	}
	if cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	return cert, err
}

// CertFingerprint returns the fingerprint of a certificate's leaf.
func CertFingerprint(cert tls.Certificate) (string, error) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return "", errors.New("empty certificate")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return "", err
		}
	}
	return Fingerprint(leaf), nil
}

// Proof computes the proof with which a connection attaches to a session in slot: HMAC-SHA256,
// keyed by the session key, of a label, the session id, the slot and the connection's binding
// (its own exporter value; empty without TLS).
func Proof(key []byte, id []byte, slot uint16, binding []byte) [ProofSize]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("braid attach v2\x00"))
	m.Write(id)
	m.Write(binary.BigEndian.AppendUint16(nil, slot))
	m.Write(binding)
	var out [ProofSize]byte
	m.Sum(out[:0])
	return out
}

// CheckProof reports whether proof is Proof(key, id, slot, binding), in constant time.
func CheckProof(proof []byte, key []byte, id []byte, slot uint16, binding []byte) bool {
	want := Proof(key, id, slot, binding)
	return hmac.Equal(proof, want[:])
}
