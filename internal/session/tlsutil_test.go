package session

import (
	"crypto/tls"
	"sync"

	"github.com/braidnet/braid/internal/secure"
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
