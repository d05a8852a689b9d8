package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/faultproxy"
	"github.com/braidnet/braid/internal/testutil"
)

// TestSendProgressDisplay: on a terminal, send draws the total and one line per path; elsewhere
// (or with -q) it draws nothing.
func TestSendProgressDisplay(t *testing.T) {
	dir := t.TempDir()
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"))
	file := filepath.Join(dir, "p.bin")
	os.WriteFile(file, bytes.Repeat([]byte("progress"), 1<<20), 0o644)
	for _, c := range []struct {
		terminal bool
		extra    []string
		drawn    bool
	}{{true, nil, true}, {false, nil, false}, {true, []string{"-q"}, false}} {
		old := isTerminal
		isTerminal = func(io.Writer) bool { return c.terminal }
		var out, errOut testutil.SyncBuffer
		code := run(context.Background(), append([]string{"send", "--server-fingerprint", fp, "--file", file, "--paths", "3", addr}, c.extra...), &out, &errOut)
		isTerminal = old
		if code != 0 {
			t.Fatalf("%+v: exit %d: %s", c, code, errOut.String())
		}
		drawn := strings.Contains(errOut.String(), "p.bin") && regexp.MustCompile(`path 2 +up .*bit/s +rtt .* share +\d+%`).MatchString(errOut.String()) &&
			strings.Contains(errOut.String(), "8.0 MiB / 8.0 MiB  100%")
		if drawn != c.drawn {
			t.Errorf("%+v: progress drawn %v:\n%s", c, drawn, errOut.String())
		}
		if quiet := len(c.extra) > 0; quiet != (out.String() == "") {
			t.Errorf("%+v: standard output %q", c, out.String())
		}
	}
}

// TestProgressCompleteShowsAll: a transfer that completed is drawn whole, though its count of
// acknowledged bytes lags (the receiver's receipt can come before its last acknowledgements).
func TestProgressCompleteShowsAll(t *testing.T) {
	const size = 8 << 20
	var out testutil.SyncBuffer
	pr := startProgress(&out, "f.bin", size, func() braid.Stats { return braid.Stats{} }, sending, func() uint64 { return size - 300<<10 })
	time.Sleep(3 * progressRefresh)
	pr.finish(true)
	if !strings.Contains(out.String(), "8.0 MiB / 8.0 MiB  100%") {
		t.Errorf("a complete transfer not drawn whole:\n%s", out.String())
	}
}

// TestSendTimeout: --timeout limits the whole send, and its error says so; without it (the
// default) a send has no limit of its own.
func TestSendTimeout(t *testing.T) {
	dir := t.TempDir()
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"))
	gate := make(chan struct{})
	defer close(gate)
	withStdin(t, &gatedReader{first: bytes.NewReader([]byte("some")), rest: bytes.NewReader(nil), gate: gate})
	start := time.Now()
	code, _, e := runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--file", "-", "--timeout", "500ms", addr)
	if code == 0 || !strings.Contains(e, "gave up after --timeout 500ms") {
		t.Errorf("a send held past --timeout: exit %d: %s", code, e)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("--timeout 500ms ended the send after %v", el)
	}
	if code, out, _ := runCmd(t, context.Background(), "help", "send"); code != 0 || !strings.Contains(out, "(0: no limit;") || strings.Contains(out, "(default 10m0s)") {
		t.Errorf("send --timeout's help does not show it unlimited by default:\n%s", out)
	}
}

// TestSendIntervals: -i prints a line per path and their sum each interval, iperf3 style.
func TestSendIntervals(t *testing.T) {
	dir := t.TempDir()
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"))
	gate := make(chan struct{})
	withStdin(t, &gatedReader{first: bytes.NewReader(make([]byte, 2*transferPiece)), rest: bytes.NewReader(make([]byte, transferPiece)), gate: gate})
	go func() {
		time.Sleep(300 * time.Millisecond) // a few intervals go by with the transfer held
		close(gate)
	}()
	code, out, e := runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--file", "-", "--paths", "2", "-i", "50ms", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	sums := regexp.MustCompile(`(?m)^\[SUM\]  \d+\.\d\d-\d+\.\d\d s +[\d.]+ [KMG]?i?B +[\d.]+ [kMG]?bit/s`).FindAllString(out, -1)
	lines := regexp.MustCompile(`(?m)^\[  [01]\]  \d+\.\d\d-\d+\.\d\d s `).FindAllString(out, -1)
	if !strings.Contains(out, "[ ID]  interval") || len(sums) < 3 || len(lines) < 2*len(sums) {
		t.Errorf("%d sums, %d path lines:\n%s", len(sums), len(lines), out)
	}
}

// scrape fetches a metrics endpoint and parses the text exposition format.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include want, summed over
// the series that match, and whether any did.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	sum, found := 0.0, false
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum, found
}

// TestMetricsEndpoints: serve --metrics and send --metrics expose their sessions, paths and
// refusals in the Prometheus text format.
func TestMetricsEndpoints(t *testing.T) {
	dir := t.TempDir()
	serverMetrics := freeAddr(t)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--metrics", serverMetrics)
	// A refused client: the wrong key pinned.
	if code, _, _ := runCmd(t, context.Background(), "send", "--server-fingerprint", "SHA256:"+strings.Repeat("A", 43), "--message", "x", addr); code != 1 {
		t.Fatalf("a client pinning the wrong key: exit %d", code)
	}
	clientMetrics := freeAddr(t)
	gate := make(chan struct{})
	withStdin(t, &gatedReader{first: bytes.NewReader(make([]byte, 3*transferPiece)), rest: bytes.NewReader(make([]byte, transferPiece/2)), gate: gate})
	done := make(chan int, 1)
	go func() {
		code, _, _ := runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--file", "-", "--paths", "3", "--metrics", clientMetrics, addr)
		done <- code
	}()
	// While the transfer waits for the rest of its input, the client's endpoint shows it.
	var fams map[string]*dto.MetricFamily
	testutil.WaitFor(t, func() bool {
		if c, err := net.Dial("tcp", clientMetrics); err != nil {
			return false
		} else {
			c.Close()
		}
		fams = scrape(t, clientMetrics)
		v, _ := value(fams, "braid_bytes_total", map[string]string{"what": "acked"})
		return v >= 3*transferPiece
	}, "the client's metrics to show the bytes acknowledged")
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"braid_sessions_open", nil, 1},
		{"braid_sessions_total", map[string]string{"mode": "plain"}, 1},
		{"braid_path_sent_bytes_total", nil, 3 * transferPiece},
		{"braid_path_sent_chunks_total", map[string]string{"path": "2"}, 0},
		{"braid_path_rtt_seconds", map[string]string{"path": "0"}, 1e-9},
		{"braid_path_state", map[string]string{"state": "up"}, 3},
		{"braid_path_delivery_rate_bytes_per_second", nil, 0},
		{"braid_path_resent_chunks_total", nil, 0},
		{"braid_session_path_changes_total", map[string]string{"change": "up"}, 3},
		{"braid_path_changes_total", map[string]string{"change": "up"}, 3},
		{"braid_redials_total", nil, 0},
		{"braid_integrity_failures_total", nil, 0},
		{"go_goroutines", nil, 1},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v < c.min {
			t.Errorf("client %s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	close(gate)
	if code := <-done; code != 0 {
		t.Fatalf("send: exit %d", code)
	}
	// The client's endpoint went with the command.
	if _, err := http.Get("http://" + clientMetrics + "/metrics"); err == nil {
		t.Error("the client's metrics endpoint outlived send")
	}
	fams = scrape(t, serverMetrics)
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"braid_listener_sessions_opened_total", nil, 1},
		{"braid_listener_sessions_refused_total", nil, 0},
		{"braid_listener_refused_total", map[string]string{"reason": "tls_handshake"}, 1},
		{"braid_sessions_total", map[string]string{"mode": "plain"}, 1},
		{"braid_bytes_total", map[string]string{"what": "received"}, 3.5 * transferPiece},
		{"braid_path_changes_total", map[string]string{"change": "up"}, 3},
	} {
		if v, ok := value(fams, c.name, c.labels); !ok || v < c.min {
			t.Errorf("server %s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
}

// TestServeJSONSummary: serve --json prints what it received when it stops.
func TestServeJSONSummary(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--identity", filepath.Join(dir, "id"), "--json"}, &out, &errOut)
	}()
	var fp []string
	testutil.WaitFor(t, func() bool {
		fp = regexp.MustCompile(`server fingerprint (SHA256:\S+)`).FindStringSubmatch(out.String())
		return fp != nil && strings.Contains(errOut.String(), "listening")
	}, "the server to start")
	for range 2 {
		if code, o, e := runCmd(t, context.Background(), "send", "--server-fingerprint", fp[1], "--message", "hello", addr); code != 0 {
			t.Fatalf("send: %d %q %q", code, o, e)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d: %s", code, errOut.String())
	}
	_, js, _ := strings.Cut(out.String(), "\n{")
	var sm struct {
		Command  string
		Received struct {
			Sessions  int
			Transfers map[string]int
			Bytes     int64
		}
		Listener struct {
			SessionsOpened uint64 `json:"sessions_opened"` // snake_case, as every other key
		}
	}
	if err := json.Unmarshal([]byte("{"+js), &sm); err != nil || sm.Command != "serve" || sm.Received.Sessions != 2 ||
		sm.Received.Transfers["message"] != 2 || sm.Received.Bytes != 10 || sm.Listener.SessionsOpened != 2 {
		t.Fatalf("summary %v: %+v\n%s", err, sm, out.String())
	}
}

// TestPingLossAndTimeout: an unanswered probe counts as lost and ping goes on (and answers
// resume when the path does); a server that accepts and never answers costs -W per probe.
func TestPingLossAndTimeout(t *testing.T) {
	dir := t.TempDir()
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"))
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Cut()
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"ping", "--server-fingerprint", fp, "-c", "6", "-i", "100ms", "-W", "500ms", p.Addr()}, &out, &errOut)
	}()
	testutil.WaitFor(t, func() bool { return strings.Count(out.String(), "no answer from") >= 2 }, "two probes to be lost")
	p.Restore()
	if code := <-done; code != 0 {
		t.Fatalf("ping exit %d: %s%s", code, out.String(), errOut.String())
	}
	m := regexp.MustCompile(`6 probes transmitted, (\d) received, (\d+)% loss`).FindStringSubmatch(out.String())
	if m == nil || m[1] == "0" || m[1] == "6" || !strings.Contains(out.String(), "rtt min/avg/median/p99/max/mdev = ") {
		t.Fatalf("ping output:\n%s", out.String())
	}

	// A listener that accepts and says nothing: no TLS handshake, no PONG.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, extra := range [][]string{nil, {"--insecure"}} {
		start := time.Now()
		code, o, e := runCmd(t, context.Background(), append([]string{"ping", "-c", "2", "-i", "10ms", "-W", "200ms", "--json", ln.Addr().String()}, extra...)...)
		var sm pingSummary
		if err := json.Unmarshal([]byte(o), &sm); code != 1 || err != nil || sm.Transmitted != 2 || sm.Received != 0 || sm.LossPercent != 100 || sm.RTT != nil {
			t.Errorf("%v: exit %d, %v, %+v, %q", extra, code, err, sm, e)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%v: ping took %v", extra, el)
		}
	}
}

// TestBenchRemote: braid bench --paths N ADDR measures sessions against a braid serve, both
// ways, beside one path, with interval reports and JSON.
func TestBenchRemote(t *testing.T) {
	dir := t.TempDir()
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"))
	code, out, e := runCmd(t, context.Background(), "bench", "--paths", "2", "--time", "300ms", "-i", "100ms", "--server-fingerprint", fp, addr)
	if code != 0 {
		t.Fatalf("bench: %d %s", code, e)
	}
	if !regexp.MustCompile(`(?m)^ +1 +plain +adaptive +\d+ +[\d.]+ +[\d.]+ [kMG]?bit/s +1\.00 +\d+ +100%$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^ +2 +plain +adaptive +\d+ +[\d.]+ +[\d.]+ [kMG]?bit/s +[\d.]+ +\d+ +\d+/\d+%$`).MatchString(out) ||
		strings.Count(out, "[SUM]") < 4 {
		t.Errorf("bench output:\n%s", out)
	}
	code, out, e = runCmd(t, context.Background(), "bench", "--paths", "3", "--reverse", "--bytes", "5MiB", "--modes", "plain,erasure:2/3,aont:2/3",
		"--scheduler", "round-robin", "--json", "--server-fingerprint", fp, addr)
	var rep remoteReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("bench --reverse: %d %v %s %s", code, err, out, e)
	}
	if rep.Direction != "reverse" || len(rep.Rows) != 4 {
		t.Fatalf("report %+v", rep)
	}
	for i, row := range rep.Rows {
		wantPaths := []int{1, 3, 3, 3}[i]
		if row.Bytes != 5<<20 || row.Paths != wantPaths || len(row.PathRows) != wantPaths || row.BitsPerSecond <= 0 || row.Scheduler != "round-robin" {
			t.Errorf("row %d: %+v", i, row)
		}
	}
	if rep.Rows[2].Mode != "erasure:2/3" || rep.Rows[3].Mode != "aont:2/3" {
		t.Errorf("modes: %+v", rep.Rows)
	}
}

// TestEvalFromAnyDirectory: the scenarios are in the binary, so a name works from any
// directory; a file path still works.
func TestEvalFromAnyDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	code, out, e := runCmd(t, context.Background(), "eval", "--list")
	if code != 0 || !strings.Contains(out, "four-rates") || !strings.Contains(out, "smoke") {
		t.Fatalf("eval --list: %d %q %q", code, out, e)
	}
	sc := `{"duration": "1s", "paths": [{"rate": "20mbit"}], "workload": {"kind": "bulk", "message_size": "64KiB"}}`
	os.WriteFile(filepath.Join(dir, "mine.json"), []byte(sc), 0o644)
	for _, name := range []string{"smoke", "./mine.json"} {
		code, out, e := runCmd(t, context.Background(), "eval", "--no-tcp", "--json", name)
		var results []map[string]any
		if err := json.Unmarshal([]byte(out), &results); code != 0 || err != nil || len(results) == 0 || results[0]["scheduler"] != "adaptive" {
			t.Errorf("eval %s: %d %v %q %q", name, code, err, out, e)
		}
	}
}
