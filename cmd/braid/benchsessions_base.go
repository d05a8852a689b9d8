package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/braidnet/braid/internal/secure"
)

// The many-sessions benchmark's baselines and the server's own account of its memory.

// handshakeBaseline is what setting up a session's paths costs without Braid: crypto/tls
// handshakes on loopback, two per "session" (one per path, one after the other), sessionsDialers
// at a time, with the TLS settings of a Braid path (TLS 1.3, Go's default key exchange
// X25519MLKEM768, an ECDSA P-256 self-signed certificate checked by its key fingerprint). Server
// and client are both in this process, on the same cores as the Braid run.
//
// With insecure it is plain TCP connections instead, each closed once connected.
func handshakeBaseline(ctx context.Context, sessions int, insecure bool) (perSecond float64, err error) {
	cert, err := secure.SelfSigned("127.0.0.1")
	if err != nil {
		return 0, err
	}
	want := secure.Fingerprint(cert.Leaf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"braid/2"}}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if insecure {
					io.Copy(io.Discard, c)
					return
				}
				tc := tls.Server(c, srvCfg)
				if tc.Handshake() == nil {
					io.Copy(io.Discard, tc) // until the client closes
				}
			}()
		}
	}()
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
	var firstErr atomic.Value
	start := time.Now()
	eachConcurrently(ctx, 0, sessions, func(int) {
		var d net.Dialer
		for range 2 {
			var c net.Conn
			var err error
			if insecure {
				c, err = d.DialContext(ctx, "tcp", ln.Addr().String())
			} else {
				c, err = tls.DialWithDialer(&d, "tcp", ln.Addr().String(), cliCfg)
			}
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			c.Close()
		}
	})
	el := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("baseline handshake: %w", err)
	}
	return float64(sessions) / el.Seconds(), nil
}

// runtimeStats is the server's Go runtime as its metrics endpoint reports it.
type runtimeStats struct {
	goroutines float64
	heapInuse  float64 // bytes in in-use heap spans
	stackInuse float64 // bytes of goroutine stacks
}

// scrapeRuntime reads the Go runtime figures from a braid serve's --metrics endpoint.
func scrapeRuntime(ctx context.Context, addr string) (runtimeStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return runtimeStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtimeStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return runtimeStats{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return runtimeStats{}, fmt.Errorf("metrics: %w", err)
	}
	get := func(name string) (float64, error) {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0, fmt.Errorf("metrics: no %s", name)
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue(), nil
		}
		return m.GetUntyped().GetValue(), nil
	}
	var st runtimeStats
	for _, v := range []struct {
		name string
		dst  *float64
	}{{"go_goroutines", &st.goroutines}, {"go_memstats_heap_inuse_bytes", &st.heapInuse}, {"go_memstats_stack_inuse_bytes", &st.stackInuse}} {
		if *v.dst, err = get(v.name); err != nil {
			return st, err
		}
	}
	return st, nil
}
