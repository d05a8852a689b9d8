package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/internal/secure"
)

// HandshakeBaseline is what setting up a 2-path session's paths costs without Braid: crypto/tls
// handshakes on loopback, two per "session" (one per path, one after the other), concurrency
// sessions at a time, with the TLS settings of a Braid path (TLS 1.3, Go's default key exchange
// X25519MLKEM768, an ECDSA P-256 self-signed certificate checked by its key fingerprint). Server
// and client are both in this process. It returns sessions set up per second. With insecure it
// is plain TCP connections instead, each closed once connected. source gives the local address
// a session's connections are bound to ("" for any).
func HandshakeBaseline(ctx context.Context, sessions, concurrency int, insecure bool, source func(i int) string) (float64, error) {
	cert, err := secure.SelfSigned("127.0.0.1")
	if err != nil {
		return 0, err
	}
	want := secure.Fingerprint(cert.Leaf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"braid/2"}}
	go AcceptLoop(ln, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if !insecure {
			tc := tls.Server(c, srvCfg)
			if tc.Handshake() != nil {
				return
			}
			c = tc
		}
		io.Copy(io.Discard, c) // until the client closes
	})
	cliCfg := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{"braid/2"},
		InsecureSkipVerify: true, // verified by fingerprint, as a Braid client does
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || secure.Fingerprint(cs.PeerCertificates[0]) != want {
				return errors.New("fingerprint mismatch")
			}
			return nil
		},
	}
	var (
		next     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(sessions) || ctx.Err() != nil {
					break
				}
				var d net.Dialer
				if src := source(int(i)); src != "" {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
				}
				for range 2 {
					c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
					if err == nil && !insecure {
						tc := tls.Client(c, cliCfg)
						if err = tc.HandshakeContext(ctx); err != nil {
							c.Close()
						}
						c = tc
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("baseline handshake: %w", err)
	}
	return float64(sessions) / el.Seconds(), nil
}
