package session

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchSession opens a session of paths loopback paths and returns both ends.
func benchSession(b *testing.B, paths int) (client, server *Session) {
	return benchSessionConfig(b, &Config{Paths: paths})
}

// benchSessionConfig opens a loopback session dialed with cfg and returns both ends (over TLS
// unless cfg is Insecure, which the server then is too).
func benchSessionConfig(b *testing.B, cfg *Config) (client, server *Session) {
	l, err := Listen("127.0.0.1:0", serving(&Config{Insecure: cfg.Insecure}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ctx := context.Background()
	c, err := Dial(ctx, l.Addr().String(), pinned(cfg))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Abort)
	s, err := l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Abort)
	return c, s
}

// BenchmarkSessionThroughput moves 1 MiB messages over a session of N loopback paths; compare its
// MB/s with BenchmarkRawTCPUpload/1048576B, which moves the same bytes on one plain connection.
func BenchmarkSessionThroughput(b *testing.B) {
	for _, paths := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("paths=%d", paths), func(b *testing.B) { benchThroughput(b, &Config{Paths: paths}) })
	}
}

// BenchmarkSessionThroughputNoCopy is BenchmarkSessionThroughput with SendNoCopy: the messages
// handed back are sent again, as a bulk sender with a buffer pool would. Each path count runs over
// TLS and over plain TCP, so that TLS ÷ plaintext can be read off the same run.
func BenchmarkSessionThroughputNoCopy(b *testing.B) {
	for _, paths := range []int{1, 4} {
		for _, insecure := range []bool{false, true} {
			b.Run(fmt.Sprintf("paths=%d/%s", paths, securityName(insecure)), func(b *testing.B) {
				benchThroughputWith(b, &Config{Paths: paths, Insecure: insecure}, true)
			})
		}
	}
}

// BenchmarkSessionModes moves 1 MiB messages over 3 loopback paths in each dispersal mode; the
// plain row is the baseline (shamir:2/3 sends 3× the bytes, erasure:2/3 and aont:2/3 1.5×,
// redundant up to 3×).
func BenchmarkSessionModes(b *testing.B) {
	for _, mode := range []string{"plain", "shamir:2/3", "erasure:2/3", "aont:2/3", "redundant"} {
		for _, cs := range []int{64 << 10, 256 << 10} {
			b.Run(fmt.Sprintf("mode=%s/chunk=%dKiB", strings.ReplaceAll(mode, "/", "of"), cs>>10), func(b *testing.B) {
				benchThroughput(b, &Config{Paths: 3, Mode: mode, ChunkSize: cs})
			})
		}
	}
}

func benchThroughput(b *testing.B, cfg *Config) { benchThroughputWith(b, cfg, false) }

func benchThroughputWith(b *testing.B, cfg *Config, noCopy bool) {
	ctx := context.Background()
	c, s := benchSessionConfig(b, cfg)
	done := make(chan int64)
	go func() {
		var n int64
		for {
			msg, err := s.Receive(ctx)
			if err != nil {
				done <- n
				return
			}
			n += int64(len(msg))
			s.Release(msg)
		}
	}()
	msg := make([]byte, 1<<20)
	free := make(chan []byte, 128)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !noCopy {
			if err := c.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
			continue
		}
		buf := msg
		select {
		case buf = <-free:
		default:
			buf = make([]byte, len(msg))
		}
		if err := c.SendNoCopy(ctx, buf, func() { free <- buf }); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(b.N)*int64(len(msg)) {
		b.Fatalf("received %d bytes", n)
	}
}

// BenchmarkSessionMessageRTT times a one-chunk message echoed back over a session of N paths.
func BenchmarkSessionMessageRTT(b *testing.B) {
	for _, paths := range []int{1, 4} {
		for _, insecure := range []bool{false, true} {
			b.Run(fmt.Sprintf("paths=%d/%s", paths, securityName(insecure)), func(b *testing.B) {
				benchRTT(b, &Config{Paths: paths, Insecure: insecure})
			})
		}
	}
}

// securityName names a benchmark case by its path security.
func securityName(insecure bool) string {
	if insecure {
		return "insecure"
	}
	return "tls"
}

func benchRTT(b *testing.B, cfg *Config) {
	ctx := context.Background()
	c, s := benchSessionConfig(b, cfg)
	go func() {
		for {
			msg, err := s.Receive(ctx)
			if err != nil || s.Send(ctx, msg) != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Receive(ctx); err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}
