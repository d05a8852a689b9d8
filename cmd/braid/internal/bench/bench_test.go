package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid"
)

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 1000; i >= 1; i-- {
		s = append(s, time.Duration(i))
	}
	l := Summarize(s)
	if l.Median != 500 || l.P90 != 900 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 || l.Samples != 1000 {
		t.Fatalf("%+v", l)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatal("empty")
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int]string{64: "64 B", 1024: "1 KiB", 4 << 20: "4 MiB", 1000: "1000 B"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q", n, got)
		}
	}
}

// TestRunSmall runs a tiny loopback benchmark end to end and checks the report's shape.
func TestRunSmall(t *testing.T) {
	rep, err := Run(context.Background(), Options{Pings: 20, Sizes: []int{64, 1 << 20}, Volume: 4 << 20, MinFrames: 10, MaxTime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RawLatency == nil || rep.BraidLatency.Samples != 20 || len(rep.Throughput) != 2 {
		t.Fatalf("%+v", rep)
	}
	for _, s := range rep.Throughput {
		if s.Raw == nil || s.Braid.Bytes != s.Raw.Bytes || s.Braid.Bytes == 0 || s.Ratio <= 0 {
			t.Fatalf("%+v", s)
		}
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"braid ÷ raw", "64 B", "1 MiB", "raw TCP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunSessionsSmall runs a tiny multipath benchmark over TLS and plain TCP and checks the
// report: every case measured, TLS rows compared with raw TLS and with plaintext.
func TestRunSessionsSmall(t *testing.T) {
	rep, err := RunSessions(context.Background(), SessionOptions{Paths: []int{1, 2}, Volume: 8 << 20, Runs: 1, Pings: 20, Setups: 2, MaxTime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RawTLS == nil || rep.RawTLS.Bytes != 8<<20 || len(rep.Rows) != 4 {
		t.Fatalf("%+v", rep)
	}
	for _, row := range rep.Rows {
		if row.Throughput.Bytes != 8<<20 || row.RawRatio <= 0 || row.Latency.Samples != 20 {
			t.Errorf("%+v", row)
		}
		if tls := row.Security == "tls"; tls != (row.RawTLSRatio > 0) || tls != (row.TLSRatio > 0) || tls != (row.KeyExchange == "X25519MLKEM768") {
			t.Errorf("%s row: ratio to raw TLS %v, to plaintext %v, key exchange %q", row.Security, row.RawTLSRatio, row.TLSRatio, row.KeyExchange)
		}
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"raw TCP", "raw TLS", "÷ raw TLS", "X25519MLKEM768"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestKeyExchanges(t *testing.T) {
	paths := []braid.PathStats{{KeyExchange: "X25519MLKEM768"}, {KeyExchange: "X25519"}, {KeyExchange: "X25519MLKEM768"}}
	if got := KeyExchanges(paths); got != "X25519MLKEM768/X25519" {
		t.Fatalf("KeyExchanges = %q", got)
	}
	if got := KeyExchanges(paths[:1]); got != "X25519MLKEM768" {
		t.Fatalf("one path: %q", got)
	}
}
