package session

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/faultproxy"
)

// goodputRate is each path's rate limit in BenchmarkCodedGoodput, in bytes per second
// (BRAID_GOODPUT_RATE overrides it).
const goodputRate = 8 << 20

// goodputDelay is each path's one-way delay in BenchmarkCodedGoodput (BRAID_GOODPUT_DELAY, a
// time.ParseDuration string, overrides it).
const goodputDelay = 0

// goodputSeconds is about how long each mode's transfer takes at its bound.
const goodputSeconds = 4

// BenchmarkCodedGoodput moves bulk data over three loopback paths, each rate-limited alike by a
// faultproxy token bucket, in each dispersal mode, and reports goodput (message bytes delivered
// per second, as MB/s) and its ratio to the mode's bound ("of-bound"): the path sum for plain;
// the sum × K/N for erasure and aont, whose pieces are 1/K of a chunk each; the sum ÷ N for
// shamir, whose pieces are each as large as the chunk. The rows of one run compare the modes on
// the same machine at the same time: aont:2/3 ÷ shamir:2/3 should be about 2. Run it alone with
// -benchtime 1x (each iteration moves about goodputSeconds of traffic at the bound).
func BenchmarkCodedGoodput(b *testing.B) {
	rate := goodputRate
	if s := os.Getenv("BRAID_GOODPUT_RATE"); s != "" {
		var err error
		if rate, err = strconv.Atoi(s); err != nil || rate <= 0 {
			b.Fatalf("BRAID_GOODPUT_RATE=%q: want bytes per second", s)
		}
	}
	delay := time.Duration(goodputDelay)
	if s := os.Getenv("BRAID_GOODPUT_DELAY"); s != "" {
		var err error
		if delay, err = time.ParseDuration(s); err != nil || delay < 0 {
			b.Fatalf("BRAID_GOODPUT_DELAY=%q: want a duration", s)
		}
	}
	const paths = 3
	for _, mode := range []string{"plain", "erasure:2/3", "aont:2/3", "shamir:2/3"} {
		m, err := disperse.Parse(mode)
		if err != nil {
			b.Fatal(err)
		}
		bound := float64(paths * rate)
		switch m.Kind {
		case disperse.Erasure, disperse.AONT:
			bound = bound * float64(m.K) / float64(m.N)
		case disperse.Shamir:
			bound /= float64(m.N)
		}
		b.Run("mode="+strings.ReplaceAll(mode, "/", "of"), func(b *testing.B) {
			benchGoodput(b, &Config{Paths: paths, Mode: mode}, rate, delay, bound)
		})
	}
}

// benchGoodput opens a session of cfg.Paths paths, each through a faultproxy throttled to rate
// bytes per second and delayed by delay each way, and times moving about goodputSeconds × bound bytes of 1 MiB messages until
// the last is received, b.N times.
func benchGoodput(b *testing.B, cfg *Config, rate int, delay time.Duration, bound float64) {
	ctx := context.Background()
	l, err := Listen("127.0.0.1:0", serving(&Config{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	var specs []PathSpec
	for range cfg.Paths {
		p, err := faultproxy.New(l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		p.Throttle(rate)
		if delay > 0 {
			p.Latency(delay)
		}
		specs = append(specs, PathSpec{Remote: p.Addr()})
	}
	c, err := DialPaths(ctx, specs, pinned(cfg))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Abort)
	s, err := l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Abort)

	const msgSize = 1 << 20
	count := max(1, int(goodputSeconds*bound)/msgSize)
	got := make(chan error, 1)
	go func() {
		for {
			n := 0
			for n < count*msgSize {
				msg, err := s.Receive(ctx)
				if err != nil {
					got <- err
					return
				}
				n += len(msg)
				s.Release(msg)
			}
			got <- nil
		}
	}()
	msg := make([]byte, msgSize)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	b.SetBytes(int64(count * msgSize))
	var elapsed time.Duration
	for b.Loop() {
		start := time.Now()
		for range count {
			if err := c.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	goodput := float64(b.N) * float64(count*msgSize) / elapsed.Seconds()
	b.ReportMetric(goodput/bound, "of-bound")
	b.ReportMetric(bound/1e6, "bound-MB/s")
	b.Logf("%s: %d × %d MiB, goodput %.2f MB/s, bound %.2f MB/s (%d B/s and %v each way per path)", cfg.Mode, count, msgSize>>20, goodput/1e6, bound/1e6, rate, delay)
	c.Close()
}
