package eval

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// TestMain lets the netns backend start this test binary as its agent inside a namespace.
func TestMain(m *testing.M) {
	if os.Getenv(AgentEnv) == "1" {
		if err := RunAgent(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustParse(t *testing.T, s string) *Scenario {
	t.Helper()
	sc, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name == "" {
		sc.Name = "test"
	}
	return sc
}

func TestAnalyzeSynthetic(t *testing.T) {
	sc := mustParse(t, `{"duration": "3s", "paths": [{"rate": "10mbit"}, {"rate": "10mbit"}],
		"events": [{"at": "1s", "path": 0, "action": "cut"}, {"at": "2s", "path": 0, "action": "restore"}],
		"workload": {"kind": "bulk", "message_size": "12500"}}`)
	rec := &Recording{PathUnit: "test"}
	// 20 Mbit/s (one 12500-byte message every 5 ms) until the cut, nothing for 300 ms, then
	// 10 Mbit/s until the restore, then 20 Mbit/s again from 2.5 s.
	var total [2]int64
	for at := 5 * time.Millisecond; at <= 3*time.Second; at += 5 * time.Millisecond {
		switch {
		case at > time.Second && at < 1300*time.Millisecond:
			continue
		case at >= 1300*time.Millisecond && at < 2500*time.Millisecond && at%(10*time.Millisecond) != 0:
			continue
		}
		rec.Deliveries = append(rec.Deliveries, Delivery{At: at, Bytes: 12500})
		total[(at/(5*time.Millisecond))%2] += 12500
		if at%Bin == 0 {
			rec.Samples = append(rec.Samples, Sample{At: at, Bytes: []int64{total[0], total[1]}})
		}
	}
	rec.Samples = append([]Sample{{At: 0, Bytes: []int64{0, 0}}}, rec.Samples...)
	r := Analyze(sc, rec)
	if r.SumRateMbit != 20 || math.Abs(r.CapacityMbit-(20+10+20)/3.0) > 0.01 {
		t.Errorf("sum %v, capacity %v", r.SumRateMbit, r.CapacityMbit)
	}
	wantBytes := int64(12500 * len(rec.Deliveries))
	if r.Bytes != wantBytes || math.Abs(r.GoodputMbit-float64(wantBytes)*8/3/1e6) > 1e-9 {
		t.Errorf("bytes %d goodput %v; want %d", r.Bytes, r.GoodputMbit, wantBytes)
	}
	if len(r.Events) != 2 {
		t.Fatalf("events %+v", r.Events)
	}
	cut, restore := r.Events[0], r.Events[1]
	if math.Abs(cut.LongestGapMs-300) > 0.5 || cut.RecoveryMs != 300 || cut.TargetMbit != 9 {
		t.Errorf("cut: %+v; want a 300 ms gap and recovery to 9 Mbit/s at 300 ms", cut)
	}
	// From 2.4 s, the next 500 ms average (10 + 4×20) ÷ 5 = 18 Mbit/s.
	if restore.RecoveryMs != 400 || restore.TargetMbit != 18 || math.Abs(restore.LongestGapMs-10) > 0.5 {
		t.Errorf("restore: %+v; want recovery to 18 Mbit/s at 400 ms, 10 ms gaps", restore)
	}
	if len(r.Goodput) != 30 || math.Abs(r.Goodput[5]-20) > 0.01 || r.Goodput[11] != 0 || math.Abs(r.Goodput[15]-10) > 0.01 {
		t.Errorf("goodput series %v", r.Goodput)
	}
	if r.PathBytes[0]+r.PathBytes[1] != wantBytes {
		t.Errorf("path bytes %v", r.PathBytes)
	}
	if got := r.PathSeries[0][5] + r.PathSeries[1][5]; math.Abs(got-20) > 0.01 {
		t.Errorf("path series at 0.5 s sum to %v", got)
	}
}

func TestAnalyzeLatencyAndStallAtEnd(t *testing.T) {
	sc := mustParse(t, `{"duration": "2s", "paths": [{"rate": "100mbit"}], "events": [{"at": "1s", "path": 0, "action": "cut"}],
		"workload": {"kind": "messages", "message_size": "1KiB", "messages_per_sec": 100}}`)
	rec := &Recording{}
	for i := range 100 {
		rec.Deliveries = append(rec.Deliveries, Delivery{At: time.Duration(i) * 10 * time.Millisecond, Bytes: 1024})
		rec.Latencies = append(rec.Latencies, time.Duration(i+1)*time.Millisecond)
	}
	r := Analyze(sc, rec)
	if r.LatP50Ms != 50 || r.LatP99Ms != 99 || r.LatMaxMs != 100 {
		t.Errorf("latency p50 %v p99 %v max %v", r.LatP50Ms, r.LatP99Ms, r.LatMaxMs)
	}
	if e := r.Events[0]; e.LongestGapMs != 1000 || e.RecoveryMs != -1 || e.TargetMbit != 0 {
		t.Errorf("a stall until the end: %+v", e)
	}
	if math.Abs(r.OfferedMbit-100*1024*8/1e6) > 1e-9 {
		t.Errorf("offered %v", r.OfferedMbit)
	}
}

func TestRecorderRestartedCounter(t *testing.T) {
	r := newRecorder(time.Now(), 2, "x")
	r.sample([]int64{100, 50})
	r.sample([]int64{300, 10}) // path 1 was re-dialed: its counter started again
	r.sample([]int64{400, 40})
	s := r.recording().Samples
	if got := s[2].Bytes; got[0] != 400 || got[1] != 90 {
		t.Errorf("cumulative %v; want [400 90]", got)
	}
	if got := movingAverage([]float64{0, 0, 10, 0, 0, 5}, 3); got[0] != 0 || got[1] != 10.0/3 || got[5] != 2.5 {
		t.Errorf("moving average %v", got)
	}
}

// TestInproc runs two short scenarios on the inproc backend, one with every kind of event and
// one measuring latency beside a subset of its paths, and checks that the figures are there
// (not how good they are: no performance threshold in tests).
func TestInproc(t *testing.T) {
	bulk := mustParse(t, `{"name": "inproc-bulk", "duration": "2s", "paths": [{"rate": "40mbit", "delay": "1ms"}, {"rate": "20mbit"}],
		"events": [{"at": "500ms", "path": 0, "action": "throttle", "rate": "30mbit"}, {"at": "700ms", "path": 1, "action": "delay", "delay": "3ms"},
		{"at": "1s", "path": 1, "action": "cut"}, {"at": "1500ms", "path": 1, "action": "restore"}],
		"workload": {"kind": "bulk", "message_size": "128KiB"}}`)
	msgs := mustParse(t, `{"name": "inproc-msgs", "duration": "1s", "paths": [{"rate": "50mbit", "delay": "2ms"}, {"rate": "50mbit", "delay": "10ms"}],
		"workload": {"kind": "messages", "message_size": "64KiB", "messages_per_sec": 20}, "compare": [{"name": "fast path alone", "paths": [0]}]}`)
	ctx := context.Background()
	var progress bytes.Buffer
	rs, err := Run(ctx, bulk, Options{Progress: &progress})
	if err != nil || len(rs) != 2 { // braid, then the TCP baseline
		t.Fatalf("Run: %v, %d results", err, len(rs))
	}
	if b := rs[1]; b.Transport != TransportTCP || b.Error != "" || b.Bytes == 0 || b.PathBytes[0] == 0 || b.PathBytes[1] == 0 || len(b.Events) != 4 {
		t.Errorf("TCP baseline: %+v", b)
	} else if r := rs[0]; r.BaselineMbit != b.GoodputMbit || r.PctOfBaseline != pct(r.GoodputMbit, b.GoodputMbit) {
		t.Errorf("braid run not related to the baseline: %v %v", r.BaselineMbit, r.PctOfBaseline)
	}
	r := rs[0]
	if r.Error != "" || r.Bytes == 0 || r.Messages == 0 || len(r.Events) != 4 || len(r.Goodput) != 20 || r.Scheduler != "round-robin" || r.Mode != "plain" {
		t.Errorf("bulk result: %+v", r)
	}
	if r.PathBytes[0] == 0 || r.PathBytes[1] == 0 {
		t.Errorf("a path carried nothing: %v", r.PathBytes)
	}
	if !strings.Contains(progress.String(), "inproc-bulk on inproc: braid round-robin") {
		t.Errorf("progress: %q", progress.String())
	}

	rs2, err := Run(ctx, msgs, Options{})
	if err != nil || len(rs2) != 2 {
		t.Fatalf("Run: %v, %d results", err, len(rs2))
	}
	for _, r := range rs2 {
		if r.Error != "" || r.Messages == 0 || r.LatP50Ms <= 0 || r.LatP99Ms < r.LatP50Ms {
			t.Errorf("%s: %+v", r.Label(), r)
		}
	}
	if rs2[1].Variant != "fast path alone" || len(rs2[1].PathBytes) != 1 || rs2[1].Paths[0] != 0 {
		t.Errorf("compare run: %+v", rs2[1])
	}

	// The report: tables, JSON, plots.
	var table bytes.Buffer
	if err := WriteTable(&table, bulk, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"goodput Mbit/s", "% of sum", "% of TCP", "of the TCP baseline's", "1s cut path 1", "longest gap ms", "recovery ms", "MiB received"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	table.Reset()
	WriteTable(&table, msgs, rs2)
	if !strings.Contains(table.String(), "p99 ms") || !strings.Contains(table.String(), "braid round-robin (fast path alone)") {
		t.Errorf("latency table:\n%s", table.String())
	}
	dir := t.TempDir()
	rp := Report{Entries: []ReportEntry{{Scenario: bulk, Results: rs}, {Scenario: msgs, Results: rs2}}}
	for i, e := range rp.Entries {
		for _, r := range e.Results {
			p, err := Plot(e.Scenario, r, dir)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(p)
			if err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
				t.Errorf("%s: not a PNG (%v)", p, err)
			}
			rp.Entries[i].Plots = append(rp.Entries[i].Plots, p)
		}
	}
	if err := rp.Write(dir, "test"); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(dir + "/report.md")
	for _, want := range []string{"| backend | run | goodput Mbit/s | % of sum | % of capacity | % of TCP |", "1s cut path 1: gap / recovery ms", "| inproc | tcp |", " p99 ms |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	var back []Result
	data, _ := os.ReadFile(dir + "/results.json")
	if err := json.Unmarshal(data, &back); err != nil || len(back) != 4 {
		t.Errorf("results.json: %v, %d results", err, len(back))
	}
}

func TestRunErrors(t *testing.T) {
	sc := mustParse(t, `{"duration": "1s", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk"}}`)
	if _, err := Run(context.Background(), sc, Options{Backend: "carrier-pigeon"}); err == nil || !strings.Contains(err.Error(), "unknown backend") {
		t.Errorf("unknown backend: %v", err)
	}
	rs, err := Run(context.Background(), sc, Options{Schedulers: []string{"no-such-scheduler"}, NoBaseline: true})
	if err != nil || len(rs) != 1 || !strings.Contains(rs[0].Error, "no-such-scheduler") {
		t.Errorf("unknown scheduler: %v %+v", err, rs)
	}
	for _, c := range []struct {
		mode  string
		paths int
		want  string // the resolved mode, or a part of the error
		ok    bool
	}{
		{"plain", 4, "plain", true},
		{"redundant", 1, "redundant", true},
		{"shamir:2/3", 3, "shamir:2/3", true},
		{"shamir:2/3", 2, "needs 3 paths", false},
		{"erasure:2", 4, "erasure:2/4", true},
		{"aont:2", 3, "aont:2/3", true},
		{"aont:2/3", 3, "aont:2/3", true},
		{"aont:2/3", 4, "needs 3 paths", false},
		{"aont:4", 3, "K <= N", false},
		{"shamir:3", 3, "shamir:3/3", true},
		{"shamir:3", 2, "K <= N", false}, // the fast path alone, say: no K-of-N over it
		{"shamir:1", 3, "2 <= K", false},
		{"stripes", 2, "stripes", false},
	} {
		got, err := ResolveMode(c.mode, c.paths)
		if c.ok && (err != nil || got != c.want) || !c.ok && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("ResolveMode(%q, %d) = %q, %v; want %q (ok %v)", c.mode, c.paths, got, err, c.want, c.ok)
		}
	}
	for mode, ok := range map[string]bool{"plain": true, "shamir:2/3": true, "shamir:2": true, "erasure:5": true, "aont:2": true, "aont:3/5": true, "aont:1": false,
		"shamir:1": false, "shamir:x": false, "shamir:": false, "shamir": false, "plain:2": false} {
		if err := CheckMode(mode); (err == nil) != ok {
			t.Errorf("CheckMode(%q): %v", mode, err)
		}
	}
	if got, err := ParseSchedulers(" a, b,a ,"); err != nil || strings.Join(got, "|") != "a|b" {
		t.Errorf("ParseSchedulers: %v %v", got, err)
	}
	if _, err := ParseSchedulers(" , "); err == nil {
		t.Error("ParseSchedulers accepted nothing")
	}
}

// needNetns skips t unless the netns backend can run here (root and iproute2; in CI, which runs
// as root and installs iproute2, it must), and returns this test binary, the backend's agent.
func needNetns(t *testing.T) string {
	t.Helper()
	if err := NetnsAvailable(); err != nil {
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("CI runs as root and installs iproute2, so the netns backend must run: %v", err)
		}
		t.Skipf("skipping the netns backend: %v", err)
	}
	if testing.Short() {
		t.Skip("skipping the netns backend in -short mode")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestNetns runs a short scenario over real kernel paths in two namespaces, with Braid and
// MPTCP. It needs root and iproute2.
func TestNetns(t *testing.T) {
	exe := needNetns(t)
	// The cut lasts a second: long enough for the sender to find the path stopped (its kernel
	// sees no ACK, or it lags) and send its chunks again on the other path.
	sc := mustParse(t, `{"name": "netns-test", "duration": "3s", "paths": [{"rate": "30mbit", "delay": "2ms"}, {"rate": "20mbit", "delay": "4ms"}],
		"events": [{"at": "800ms", "path": 1, "action": "cut"}, {"at": "1800ms", "path": 1, "action": "restore"}, {"at": "2300ms", "path": 0, "action": "delay", "delay": "1ms"}],
		"workload": {"kind": "bulk", "message_size": "128KiB"}}`)
	logs := t.TempDir()
	rs, err := Run(context.Background(), sc, Options{Backend: Netns, AgentArgv: []string{exe}, LogDir: logs})
	if err != nil {
		t.Fatal(err)
	}
	// The agents wrote the sessions' logs: both paths came up at each end, and the sender found
	// the cut path stopped — rested, its chunks sent again (the path is kept through a cut), or
	// ended and re-dialed.
	for _, role := range []string{"client", "server"} {
		b, err := os.ReadFile(filepath.Join(logs, "netns-test-netns-braid-round-robin-"+role+".log"))
		found := role == "server" || strings.Contains(string(b), "path lagging") || strings.Contains(string(b), "path down")
		if err != nil || strings.Count(string(b), "path up") < 2 || !found {
			t.Errorf("%s log: %v\n%s", role, err, b)
		}
	}
	if len(rs) != 3 { // Braid, the TCP baseline, and MPTCP (reported as failed, with the reason, where unavailable)
		t.Fatalf("%d results", len(rs))
	}
	for _, r := range rs {
		t.Logf("%s: %.1f Mbit/s, paths %v, error %q", r.Label(), r.GoodputMbit, r.PathBytes, r.Error)
		if r.Transport == TransportMPTCP && MPTCPAvailable() != nil {
			if r.Error == "" {
				t.Errorf("MPTCP ran where it is not available")
			}
			continue
		}
		if r.Error != "" || r.Bytes == 0 || r.PathBytes[0] == 0 || r.PathBytes[1] == 0 || len(r.Events) != 3 {
			t.Errorf("%s: %+v", r.Label(), r)
		}
	}
	// The delay is per packet, so it holds for MPTCP too: no message can arrive sooner than the
	// one-way delay of the faster path.
	lat := mustParse(t, `{"name": "netns-delay", "duration": "1s", "paths": [{"rate": "20mbit", "delay": "15ms"}, {"rate": "20mbit", "delay": "30ms"}],
		"workload": {"kind": "messages", "message_size": "16KiB", "messages_per_sec": 20}}`)
	rs, err = Run(context.Background(), lat, Options{Backend: Netns, AgentArgv: []string{exe}, Schedulers: []string{"adaptive"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		t.Logf("%s: p50 %.1f ms, p99 %.1f ms, error %q", r.Label(), r.LatP50Ms, r.LatP99Ms, r.Error)
		if r.Transport == TransportMPTCP && MPTCPAvailable() != nil {
			continue
		}
		if r.Error != "" || r.Messages == 0 || r.LatP50Ms < 15 {
			t.Errorf("%s: %d messages, p50 %.1f ms (the faster path's one-way delay is 15 ms), error %q", r.Label(), r.Messages, r.LatP50Ms, r.Error)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil || strings.Contains(string(out), nsPrefix+fmt.Sprint(os.Getpid())) {
		t.Errorf("namespaces left behind: %s %v", out, err)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	var hdr [frameLen]byte
	msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{7}, 70000)}
	for _, m := range msgs {
		if err := writeFrame(&buf, &hdr, m); err != nil {
			t.Fatal(err)
		}
	}
	binary.BigEndian.PutUint32(hdr[:], MaxMessageSize+1) // too long: reading stops here
	buf.Write(hdr[:])
	buf.WriteString("never read")
	var got [][]byte
	readFrames(iotest.OneByteReader(&buf), func(m []byte) { got = append(got, bytes.Clone(m)) })
	if len(got) != len(msgs) {
		t.Fatalf("read %d messages; want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i]) {
			t.Errorf("message %d: %d bytes; want %d", i, len(got[i]), len(msgs[i]))
		}
	}
}

func TestLinkRate(t *testing.T) {
	// A 1514-byte frame carries 1448 bytes of TCP payload: tbf gets 4.56% more than the goodput.
	for _, c := range []struct {
		rate Rate
		want int64
	}{{200e6, 209116022}, {25e6, 26139502}, {1448, 1514}} {
		if got := linkRate(c.rate); got != c.want {
			t.Errorf("linkRate(%v) = %d; want %d", c.rate, got, c.want)
		}
	}
}

func TestRelateToBaseline(t *testing.T) {
	rs := []*Result{
		{Transport: TransportBraid, Backend: Inproc, Paths: []int{0, 1}, GoodputMbit: 90},
		{Transport: TransportBraid, Backend: Inproc, Paths: []int{0}, GoodputMbit: 40},
		{Transport: TransportBraid, Backend: Netns, Paths: []int{0, 1}, GoodputMbit: 80},
		{Transport: TransportTCP, Backend: Inproc, Paths: []int{0, 1}, GoodputMbit: 100},
		{Transport: TransportTCP, Backend: Inproc, Paths: []int{0}, GoodputMbit: 50, Error: "failed"},
	}
	relateToBaseline(rs)
	if rs[0].BaselineMbit != 100 || rs[0].PctOfBaseline != 90 || rs[3].PctOfBaseline != 100 {
		t.Errorf("same paths and backend: %+v", rs[0])
	}
	if rs[1].BaselineMbit != 0 || rs[2].BaselineMbit != 0 {
		t.Errorf("related to a failed baseline or another backend: %+v %+v", rs[1], rs[2])
	}
}

// TestByteBudgetShared: the senders of one run share its byte bound; once it is spent, each
// stops at once rather than at the end of the duration.
// TestLostMessagesSpendNoBudget: a baseline flow whose writes fail (a cut path that still
// accepts connections) does not spend the byte budget the run's other flows share.
func TestLostMessagesSpendNoBudget(t *testing.T) {
	sc := mustParse(t, `{"duration": "1s", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk", "message_size": "64KiB"}}`)
	budget := new(atomic.Int64)
	budget.Store(1 << 20)
	var tries atomic.Int64
	send := func(context.Context, []byte) error { tries.Add(1); time.Sleep(time.Millisecond); return errLost }
	// Started 800 ms ago: 200 ms of the scenario are left.
	if err := sendWorkload(context.Background(), sc, time.Now().Add(-800*time.Millisecond), budget, send); err != nil {
		t.Fatal(err)
	}
	if tries.Load() < 2 || budget.Load() != 1<<20 {
		t.Fatalf("%d lost sends left a budget of %d, want %d", tries.Load(), budget.Load(), 1<<20)
	}
}

func TestByteBudgetShared(t *testing.T) {
	sc := mustParse(t, `{"duration": "1m", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk", "message_size": "64KiB"}}`)
	budget := new(atomic.Int64)
	budget.Store(5 << 15) // two and a half messages
	var sent atomic.Int64
	send := func(context.Context, []byte) error { sent.Add(1); return nil }
	began := time.Now()
	for range 2 {
		if err := sendWorkload(context.Background(), sc, began, budget, send); err != nil {
			t.Fatal(err)
		}
	}
	if sent.Load() != 3 || time.Since(began) > 30*time.Second {
		t.Errorf("%d messages sent in %v; want 3, at once", sent.Load(), time.Since(began))
	}
}

// TestNetnsLoss runs a short scenario whose second path loses 5% of its packets, with the TCP
// baseline only: the router drops packets on that path alone, about as many as the rate says,
// and the run still delivers (TCP retransmits).
func TestNetnsLoss(t *testing.T) {
	exe := needNetns(t)
	sc := mustParse(t, `{"name": "netns-loss", "duration": "2s", "paths": [{"rate": "20mbit", "delay": "2ms"}, {"rate": "20mbit", "delay": "2ms", "loss": "5%"}],
		"workload": {"kind": "bulk", "message_size": "64KiB"}}`)
	rs, err := Run(context.Background(), sc, Options{Backend: Netns, AgentArgv: []string{exe}, NoMPTCP: true, Schedulers: []string{"adaptive"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Error != "" || r.PathBytes[0] == 0 || r.PathBytes[1] == 0 {
			t.Errorf("%s: %+v", r.Label(), r)
			continue
		}
		info, _ := r.Extra["router"].(string)
		t.Logf("%s: %.1f Mbit/s, paths %v; router: %s", r.Label(), r.GoodputMbit, r.PathMbit, info)
		var lost int
		if _, err := fmt.Sscanf(info, "path 1: %d packets lost", &lost); err != nil || strings.Contains(info, "path 0:") {
			t.Errorf("%s: router reports %q; want losses on path 1 only", r.Label(), info)
			continue
		}
		// Path 1 carried PathBytes[1] (payload, or frames) in packets of at most 1448 bytes
		// each way: 5% of those, give or take, in both directions. Bound loosely: at least one
		// loss per 100 data packets, at most one per 5 packets (ACKs included).
		data := r.PathBytes[1] / 1448
		if int64(lost) < data/100 || int64(lost) > 2*data/5+10 {
			t.Errorf("%s: %d packets lost for about %d data packets on path 1", r.Label(), lost, data)
		}
	}
}
