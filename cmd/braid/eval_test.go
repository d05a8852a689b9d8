package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalUsage(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval"}, 2, "name at least one scenario"},
		{[]string{"eval", "--all", "smoke"}, 2, "not both"},
		{[]string{"eval", "--backend", "pigeon", "smoke"}, 2, `unknown backend "pigeon"`},
		{[]string{"eval", "--scheduler", ",", "smoke"}, 2, "--scheduler: no scheduler named"},
		{[]string{"eval", "--scenarios", "../../scenarios", "--mode", "shamir:2/3", "smoke"}, 1, "needs 3 paths"},
		{[]string{"eval", "--scenarios", "../../scenarios", "--mode", "aont:2/3", "smoke"}, 1, "needs 3 paths"},
		{[]string{"eval", "--mode", "aont:1", "smoke"}, 2, "--mode"},
		{[]string{"eval", "--scenarios", "../../scenarios", "no-such-scenario"}, 1, "no-such-scenario.json"},
		{[]string{"eval", "--mode", "nonsense", "smoke"}, 2, "--mode"},
		{[]string{"eval", "-h"}, 0, "Usage: braid eval"},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, ctx, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("braid %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
}

func TestEvalRun(t *testing.T) {
	dir := t.TempDir()
	sc := `{"duration": "1s", "paths": [{"rate": "20mbit", "delay": "1ms"}, {"rate": "10mbit"}],
		"events": [{"at": "500ms", "path": 1, "action": "throttle", "rate": "5mbit"}], "workload": {"kind": "bulk", "message_size": "64KiB"}}`
	if err := os.WriteFile(filepath.Join(dir, "tiny.json"), []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	logs := filepath.Join(dir, "logs")
	code, stdout, stderr := runCmd(t, context.Background(), "eval", "--scenarios", dir, "--all", "--json", "--out", out, "--log", logs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var results []map[string]any
	if err := json.Unmarshal([]byte(stdout), &results); err != nil || len(results) != 2 { // braid, the TCP baseline
		t.Fatalf("JSON output: %v, %d results:\n%s", err, len(results), stdout)
	}
	r := results[0]
	if r["scenario"] != "tiny" || r["backend"] != "inproc" || r["scheduler"] != "adaptive" || r["goodput_mbit"].(float64) <= 0 {
		t.Errorf("result %v", r)
	}
	if b := results[1]; b["transport"] != "tcp" || b["goodput_mbit"].(float64) <= 0 || r["baseline_mbit"] != b["goodput_mbit"] {
		t.Errorf("baseline %v", b)
	}
	for _, f := range []string{"results.json", "report.md", "tiny-inproc-braid-adaptive.png", "tiny-inproc-tcp.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	for _, role := range []string{"client", "server"} {
		if b, err := os.ReadFile(filepath.Join(logs, "tiny-inproc-braid-adaptive-"+role+".log")); err != nil || strings.Count(string(b), "path up") != 2 {
			t.Errorf("%s log: %v\n%s", role, err, b)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "![braid adaptive, inproc](tiny-inproc-braid-adaptive.png)") || !strings.Contains(string(md), "500ms throttle path 1 to 5mbit") {
		t.Errorf("report.md:\n%s", md)
	}
}

// TestEvalModeWithoutN: "shamir:2" runs K-of-every-path, and a run over too few paths for it (a
// compare run over one path) is reported as skipped, with its reason, not as a failure.
func TestEvalModeWithoutN(t *testing.T) {
	dir := t.TempDir()
	sc := `{"duration": "1s", "paths": [{"rate": "20mbit"}, {"rate": "10mbit"}],
		"compare": [{"name": "first alone", "paths": [0]}], "workload": {"kind": "bulk", "message_size": "64KiB"}}`
	if err := os.WriteFile(filepath.Join(dir, "pair.json"), []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCmd(t, context.Background(), "eval", "--scenarios", dir, "--mode", "shamir:2", "--no-tcp", "--out", out, "pair")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "braid adaptive shamir:2/2") || !strings.Contains(stdout, "skipped braid adaptive shamir:2 (first alone)") ||
		!strings.Contains(stdout, "K <= N") || strings.Contains(stdout, "FAILED") {
		t.Errorf("output:\n%s", stdout)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "Skipped: braid adaptive shamir:2 (first alone), inproc:") || strings.Count(string(md), ".png)") != 1 {
		t.Errorf("report.md:\n%s", md)
	}
}
