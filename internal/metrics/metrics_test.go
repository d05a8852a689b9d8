package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/testutil"
)

// scrape serves c over HTTP and parses what a Prometheus server would read.
func scrape(t *testing.T, c *Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry() // also checks the descriptions against the metrics
	reg.MustRegister(c)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// sum adds the values of family name's series that carry the labels want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	v, n := 0.0, 0
	for _, m := range f.Metric {
		ok := true
		for k, val := range want {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == k && l.GetValue() == val
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		n++
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return v, n
}

// TestCollector: a tracked session shows per path and per session while it runs; once it
// ends, its series go and the totals keep its counts; the listener's refusals are counted.
func TestCollector(t *testing.T) {
	testutil.CheckLeaks(t)
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{Token: "open sesame"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := New()
	c.SetListener(l)
	if _, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 1, ServerFingerprint: l.Fingerprint()}); !errors.Is(err, braid.ErrUnauthorized) {
		t.Fatalf("dial without the token: %v", err)
	} else {
		c.DialFailed(err)
	}
	client, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 3, ServerFingerprint: l.Fingerprint(), Token: "open sesame", Mode: "erasure:2/3"})
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Track(server)
	msg := make([]byte, 3<<20)
	if err := client.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Receive(ctx); err != nil || len(got) != len(msg) {
		t.Fatalf("receive: %d bytes, %v", len(got), err)
	}
	fams := scrape(t, c)
	id := server.ID()
	for _, want := range []struct {
		name   string
		labels map[string]string
		min    float64
		series int
	}{
		{"braid_sessions_open", nil, 1, 1},
		{"braid_sessions_total", map[string]string{"mode": "erasure:2/3"}, 1, 1},
		{"braid_path_received_bytes_total", map[string]string{"session": id}, 3 << 20 / 2, 3}, // pieces: each path half a chunk
		{"braid_path_received_chunks_total", map[string]string{"session": id, "path": "1"}, 1, 1},
		{"braid_path_state", map[string]string{"session": id, "state": "up"}, 3, 3},
		{"braid_path_state", map[string]string{"session": id, "state": "down"}, 0, 3},
		{"braid_path_rtt_seconds", map[string]string{"session": id}, 0, 3},
		{"braid_session_path_changes_total", map[string]string{"session": id, "mode": "erasure:2/3", "change": "up"}, 3, 1},
		{"braid_bytes_total", map[string]string{"what": "received"}, 3 << 20 / 2, 1},
		{"braid_listener_sessions_opened_total", nil, 1, 1},
		{"braid_listener_sessions_refused_total", nil, 1, 1},
		{"braid_listener_refused_total", map[string]string{"reason": "unauthorized"}, 1, 1},
		{"braid_listener_sessions", nil, 1, 1},
		{"braid_dial_failures_total", map[string]string{"reason": "unauthorized"}, 1, 1},
	} {
		if v, n := sum(fams, want.name, want.labels); n != want.series || v < want.min {
			t.Errorf("%s%v: %v over %d series, want at least %v over %d", want.name, want.labels, v, n, want.min, want.series)
		}
	}
	received, _ := sum(fams, "braid_bytes_total", map[string]string{"what": "received"})

	// The session ends: its own series go, the totals keep what it did.
	client.Close()
	server.Close()
	testutil.WaitFor(t, func() bool {
		_, n := sum(scrape(t, c), "braid_path_state", nil)
		return n == 0
	}, "the ended session's series to go")
	fams = scrape(t, c)
	if v, _ := sum(fams, "braid_bytes_total", map[string]string{"what": "received"}); v < received {
		t.Errorf("received bytes total fell from %v to %v", received, v)
	}
	if v, _ := sum(fams, "braid_sessions_open", nil); v != 0 {
		t.Errorf("%v sessions open", v)
	}
	if v, _ := sum(fams, "braid_path_changes_total", map[string]string{"change": "up"}); v < 3 {
		t.Errorf("path changes up: %v", v)
	}
}

func TestDialFailure(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&frame.RemoteError{Code: frame.CodeTooManySessions}, "too_many_sessions"},
		{braid.ErrFingerprint, "tls"},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, "unreachable"},
		{errors.New("?"), "other"},
	} {
		if got := DialFailure(c.err); got != c.want {
			t.Errorf("DialFailure(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestTrackForgetsEndedSessions: a Collector nobody scrapes still lets go of ended sessions as
// it tracks new ones, and takes no goroutine per session.
func TestTrackForgetsEndedSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := plainServer(t, ctx)
	c := New()
	before := runtime.NumGoroutine()
	const n = 3 * minSweep
	for i := range n {
		client, server := open()
		c.Track(server)
		if i == 0 {
			// One session's goroutines, at both ends, are all a tracked session may add.
			before = runtime.NumGoroutine()
		}
		client.Abort()
		<-server.Done()
	}
	c.mu.Lock()
	live, ended := len(c.live), c.ended.up
	c.mu.Unlock()
	if live > 2*minSweep {
		t.Errorf("%d of %d ended sessions still held", live, n)
	}
	if ended == 0 {
		t.Error("no ended session's paths counted in the totals")
	}
	if g := runtime.NumGoroutine(); g > before+4 {
		t.Errorf("%d goroutines after %d ended sessions, %d after the first", g, n, before)
	}
}

// TestSessionSeriesLimit: with SessionSeries(n), only the n sessions whose ids sort first have
// series of their own, the same ones at every scrape, while the totals count them all.
func TestSessionSeriesLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := plainServer(t, ctx)
	c := New()
	c.SessionSeries(2)
	var ids []string
	for range 5 {
		_, server := open()
		c.Track(server)
		ids = append(ids, server.ID())
	}
	slices.Sort(ids)
	for range 3 {
		fams := scrape(t, c)
		if v, _ := sum(fams, "braid_sessions_open", nil); v != 5 {
			t.Errorf("sessions open %v, want 5", v)
		}
		var seen []string
		for _, m := range fams["braid_session_acked_bytes_total"].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "session" {
					seen = append(seen, lp.GetValue())
				}
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, ids[:2]) {
			t.Fatalf("sessions with series %v, want the first two ids %v", seen, ids[:2])
		}
	}
	c.SessionSeries(0)
	if _, n := sum(scrape(t, c), "braid_path_state", nil); n != 0 {
		t.Errorf("%d path series with SessionSeries(0)", n)
	}
}

// plainServer is a plaintext loopback listener for tests that open many sessions, closed when
// the test ends; open dials a 1-path session to it and returns both ends.
func plainServer(t *testing.T, ctx context.Context) (open func() (client, server *braid.Session)) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{Insecure: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return func() (*braid.Session, *braid.Session) {
		t.Helper()
		client, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 1, Insecure: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.Abort)
		server, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
}
