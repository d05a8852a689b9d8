package session

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
)

// faultConfig makes failures quick to detect, so that each scenario takes seconds.
func faultConfig(logs *testutil.SyncBuffer) *Config {
	return &Config{
		ChunkSize:        64 << 10,
		KeepAlive:        100 * time.Millisecond,
		PathTimeout:      time.Second,
		MinRTO:           100 * time.Millisecond,
		HandshakeTimeout: time.Second,
		ResumeGrace:      5 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// faultSetup is a listener, one fault proxy per path, and a session dialed through them.
type faultSetup struct {
	proxies    []*faultproxy.Proxy
	client     *Session
	server     *Session
	clientLogs *testutil.SyncBuffer
	serverLogs *testutil.SyncBuffer
}

func newFaultSetup(t *testing.T, paths int, tweak func(*Config)) *faultSetup {
	t.Helper()
	testutil.CheckLeaks(t)
	f := &faultSetup{clientLogs: &testutil.SyncBuffer{}, serverLogs: &testutil.SyncBuffer{}}
	scfg := faultConfig(f.serverLogs)
	ccfg := faultConfig(f.clientLogs)
	if tweak != nil {
		tweak(scfg)
		tweak(ccfg)
	}
	l, _ := startListener(t, scfg)
	var specs []PathSpec
	for range paths {
		p, err := faultproxy.New(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		f.proxies = append(f.proxies, p)
		specs = append(specs, PathSpec{Remote: p.Addr()})
	}
	var err error
	if f.client, err = DialPaths(context.Background(), specs, ccfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.client.Abort() })
	f.server = acceptOne(t, l)
	t.Cleanup(func() { f.server.Abort() })
	for len(f.server.Paths()) < paths {
		time.Sleep(time.Millisecond)
	}
	return f
}

// run exchanges messages both ways, calling inject once the client has sent message at, and
// returns each side's error.
func (f *faultSetup) run(t *testing.T, n, at int, inject func()) (clientErr, serverErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		serverErr = exchangeMessages(ctx, f.server, 2, n, 1<<20, nil)
	}()
	clientErr = exchangeMessages(ctx, f.client, 1, n, 1<<20, func(i int) {
		if i == at {
			inject()
		}
	})
	wg.Wait()
	return clientErr, serverErr
}

// closeBoth ends the session cleanly from the client and checks the server sees end of stream.
func (f *faultSetup) closeBoth(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := f.server.Receive(context.Background())
		done <- err
	}()
	if err := f.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err.Error() != "EOF" {
		t.Fatalf("server after client Close: %v, want io.EOF", err)
	}
	f.server.Close()
	// Every chunk was acknowledged and every path's writer has stopped: all went back to the pool.
	for _, s := range []*Session{f.client, f.server} {
		if n := danglingHolds(s); n != 0 {
			t.Fatalf("%s: %d chunk holds never let go of", s, n)
		}
	}
}

func expectLog(t *testing.T, logs *testutil.SyncBuffer, want ...string) {
	t.Helper()
	for _, w := range want {
		testutil.WaitFor(t, func() bool { return strings.Contains(logs.String(), w) }, "log line %q", w)
	}
}

// TestFaultResetOnePath: one of four paths is reset mid-transfer; every message arrives intact, in
// order, exactly once, and the client re-dials the path.
func TestFaultResetOnePath(t *testing.T) {
	before := heapInUse()
	f := newFaultSetup(t, 4, nil)
	cerr, serr := f.run(t, 40, 10, func() { f.proxies[1].Reset() })
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	expectLog(t, f.clientLogs, "path down", "path re-dialed")
	f.closeBoth(t)
	// Both directions moved about 40 MiB and resent chunks; once closed, nothing is kept.
	if grown := int64(heapInUse()) - int64(before); grown > 8<<20 {
		t.Fatalf("heap grew by %d KiB after the session closed", grown>>10)
	}
}

// heapInUse returns the live heap after collecting garbage (twice, so that pooled buffers
// released by the first collection go too).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestFaultBlackholeOnePath: a path stops carrying anything, with no FIN or RST. The session
// resends its chunks elsewhere (RTO), declares it dead (PathTimeout) and goes on.
func TestFaultBlackholeOnePath(t *testing.T) {
	f := newFaultSetup(t, 4, nil)
	cerr, serr := f.run(t, 40, 10, func() { f.proxies[2].Blackhole() })
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	expectLog(t, f.clientLogs, "path down", "nothing received for")
	f.proxies[2].Restore()
	f.closeBoth(t)
}

// TestFaultTrickleOnePath: one path throttled to 16 KiB/s; its chunks are resent on the others.
func TestFaultTrickleOnePath(t *testing.T) {
	f := newFaultSetup(t, 4, nil)
	cerr, serr := f.run(t, 30, 5, func() { f.proxies[0].Throttle(16 << 10) })
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	f.proxies[0].Restore()
	f.closeBoth(t)
}

// TestFaultLatencyOnePath: 80 ms added to one path; delivery stays exact and in order.
func TestFaultLatencyOnePath(t *testing.T) {
	f := newFaultSetup(t, 4, nil)
	cerr, serr := f.run(t, 30, 5, func() { f.proxies[3].Latency(80 * time.Millisecond) })
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	f.closeBoth(t)
}

// TestFaultCutAllWithinGrace: every path is cut for less than the grace period, then restored;
// the client re-dials and the session resumes with nothing lost or duplicated.
func TestFaultCutAllWithinGrace(t *testing.T) {
	f := newFaultSetup(t, 3, nil)
	cerr, serr := f.run(t, 30, 8, func() {
		for _, p := range f.proxies {
			p.Cut()
		}
		go func() {
			time.Sleep(1500 * time.Millisecond)
			for _, p := range f.proxies {
				p.Restore()
			}
		}()
	})
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	expectLog(t, f.clientLogs, "path re-dialed")
	f.closeBoth(t)
}

// TestFaultCutAllBeyondGrace: every path is cut for longer than the grace period; both ends fail
// with ErrPathLost.
func TestFaultCutAllBeyondGrace(t *testing.T) {
	f := newFaultSetup(t, 2, func(c *Config) { c.ResumeGrace = time.Second })
	cerr, serr := f.run(t, 30, 5, func() {
		for _, p := range f.proxies {
			p.Cut()
		}
	})
	if !errors.Is(cerr, ErrPathLost) || !errors.Is(serr, ErrPathLost) {
		t.Fatalf("client: %v; server: %v; want ErrPathLost at both ends", cerr, serr)
	}
	if !errors.Is(f.client.Err(), ErrPathLost) || !errors.Is(f.server.Err(), ErrPathLost) {
		t.Fatalf("session errors: %v / %v", f.client.Err(), f.server.Err())
	}
}
