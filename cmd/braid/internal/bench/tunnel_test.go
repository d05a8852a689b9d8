package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunTunnelSmall runs a tiny tunnel benchmark end to end and checks the report's shape.
func TestRunTunnelSmall(t *testing.T) {
	rep, err := RunTunnel(context.Background(), TunnelOptions{Paths: 2, Volume: 8 << 20, Streams: 4, Runs: 1,
		Requests: 200, Clients: 4, Idle: 50, MaxTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].Security != "relay" || rep.Direct.Bulk.Bytes != 8<<20 || rep.Direct.RTT1.Samples != 200 {
		t.Fatalf("%+v", rep)
	}
	for _, r := range rep.Rows {
		if r.BulkRatio <= 0 || r.ParallelRatio <= 0 || r.RTT1Ratio <= 0 || r.Tunnel.Parallel.Bytes != 8<<20 {
			t.Errorf("%+v", r)
		}
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"direct TCP", "TCP relay", "tunnel, tls", "tunnel, insecure", "÷ direct", "CPU s/GiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// BenchmarkTunnel runs the tunnel measurements with the default volumes once and reports the
// ratios as metrics (a benchmark, not a timed test: figures depend on the machine).
func BenchmarkTunnel(b *testing.B) {
	for range b.N {
		rep, err := RunTunnel(context.Background(), TunnelOptions{Volume: 512 << 20, Runs: 1})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rep.Rows {
			b.ReportMetric(r.BulkRatio, r.Security+"-bulk-ratio")
			b.ReportMetric(r.ParallelRatio, r.Security+"-64streams-ratio")
			b.ReportMetric(r.RTTNRatio, r.Security+"-rtt50-ratio")
			b.ReportMetric(r.IdleStreamBytes, r.Security+"-idle-B/stream")
		}
		var out bytes.Buffer
		rep.WriteTable(&out)
		b.Log("\n" + out.String())
	}
}
