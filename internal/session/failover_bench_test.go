package session

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/faultproxy"
)

// BenchmarkFailover measures what losing one of four equal paths costs: four paths throttled to
// the same rate by their proxies, a steady stream of 256 KiB messages, and mid-stream one path is
// reset or blackholed (and stays unreachable). Reported:
//
//	recovery-ms  longest gap between deliveries around the cut (data flowing again)
//	before-MiB/s throughput on four paths
//	after-MiB/s  throughput on the three left, measured from 1 s after the cut
//	after/before the ratio of the two (three of four equal paths: 0.75 at best)
//
// "throttled" makes the paths equal and capacity-limited (16 MiB/s each) with quick failure
// detection; "defaults" uses unthrottled loopback paths and the default Config.
//
// Run with: go test -run '^$' -bench Failover -benchtime 1x .
func BenchmarkFailover(b *testing.B) {
	for _, fault := range []string{"reset", "blackhole"} {
		for _, defaults := range []bool{false, true} {
			name := fault + "/throttled"
			if defaults {
				name = fault + "/defaults"
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					runFailover(b, fault, defaults)
				}
			})
		}
	}
}

// runFailover runs one scenario. throttled: paths limited to 16 MiB/s each by their proxies,
// with quick failure detection; defaults: unthrottled loopback paths and the default Config.
func runFailover(b *testing.B, fault string, defaults bool) {
	const (
		rate    = 16 << 20 // bytes per second per path, each direction
		msgSize = 256 << 10
		phase   = 3 * time.Second
	)
	cfg := &Config{ChunkSize: 64 << 10, KeepAlive: 100 * time.Millisecond, PathTimeout: time.Second,
		MinRTO: 100 * time.Millisecond, HandshakeTimeout: time.Second}
	if defaults {
		cfg = &Config{}
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l, err := Listen("127.0.0.1:0", serving(cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var proxies []*faultproxy.Proxy
	var specs []PathSpec
	for range 4 {
		p, err := faultproxy.New(l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		if !defaults {
			p.Throttle(rate)
		}
		proxies = append(proxies, p)
		specs = append(specs, PathSpec{Remote: p.Addr()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := DialPaths(ctx, specs, pinned(cfg))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Abort()
	s, err := l.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Abort()

	var mu sync.Mutex
	var arrivals []time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := s.Receive(ctx)
			if err != nil {
				return
			}
			s.Release(msg)
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	}()
	stop := make(chan struct{})
	go func() {
		msg := make([]byte, msgSize)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c.Send(ctx, msg) != nil {
				return
			}
		}
	}()

	time.Sleep(phase)
	cut := time.Now()
	switch fault {
	case "reset":
		proxies[1].Cut() // reset now, and refuse the re-dial
	case "blackhole":
		proxies[1].Blackhole()
	}
	time.Sleep(phase + time.Second)
	close(stop)
	c.Abort()
	<-done

	mu.Lock()
	defer mu.Unlock()
	rateIn := func(from, to time.Time) float64 {
		n := 0
		for _, t := range arrivals {
			if !t.Before(from) && t.Before(to) {
				n++
			}
		}
		return float64(n*msgSize) / (1 << 20) / to.Sub(from).Seconds()
	}
	// The longest gap between deliveries from just before the cut until well after it.
	var gaps []time.Duration
	last := cut
	for _, t := range arrivals {
		if t.After(cut) {
			gaps = append(gaps, t.Sub(last))
			last = t
		}
	}
	recovery := slices.Max(append(gaps, 0))
	before := rateIn(cut.Add(-2*time.Second), cut)
	after := rateIn(cut.Add(time.Second), cut.Add(phase+time.Second))
	b.ReportMetric(float64(recovery.Milliseconds()), "recovery-ms")
	b.ReportMetric(before, "before-MiB/s")
	b.ReportMetric(after, "after-MiB/s")
	b.ReportMetric(after/before, "after/before")
}
