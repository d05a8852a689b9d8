package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/cmd/braid/internal/eval"
	"github.com/braidnet/braid/scenarios"
)

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "[flags] SCENARIO...  or  --all [flags]", stderr)
	dir := fs.String("scenarios", "", "directory of scenario files to use instead of those built into braid (a SCENARIO may also be a file path)")
	all := fs.Bool("all", false, "run every scenario (built in, or in --scenarios)")
	list := fs.Bool("list", false, "list the scenarios (built in, or in --scenarios) and exit")
	backends := fs.String("backend", eval.Inproc, "comma-separated backends: inproc (faultproxy per path on loopback) and/or netns (namespaces, veth, tbf, MPTCP beside; root)")
	schedulers := fs.String("scheduler", "adaptive", "comma-separated Config.Scheduler names (adaptive, lowest-rtt, round-robin, redundant); each is run on every scenario")
	mode := fs.String("mode", "plain", "dispersal mode: plain, redundant, shamir:K/N, erasure:K/N or aont:K/N (run only over N paths), or shamir:K, erasure:K or aont:K (K of every path the run has)")
	noMPTCP := fs.Bool("no-mptcp", false, "netns: skip the MPTCP comparison runs")
	noTCP := fs.Bool("no-tcp", false, "skip the TCP baseline runs (one plain TCP connection per path, bulk scenarios)")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of tables")
	out := fs.String("out", "", "write a PNG plot per run, results.json and report.md into this directory")
	cc := fs.String("cc", "", "netns: the TCP congestion control of the client and server namespaces (e.g. cubic, bbr, reno; default: the kernel's); applies to every transport")
	logDir := fs.String("log", "", "write each Braid run's client and server session logs (paths up and down, re-dials, aborts) into this directory")
	agent := fs.Bool("agent", false, "internal: run as the netns backend's agent (job on standard input)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *agent {
		return eval.RunAgent(ctx, os.Stdin, stdout)
	}
	var fsys iofs.FS = scenarios.FS
	if *dir != "" {
		fsys = os.DirFS(*dir)
	}
	if *list {
		names, err := eval.List(fsys)
		if err != nil {
			return err
		}
		for _, n := range names {
			sc, err := eval.Load(fsys, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-24s %s, %v, %s workload\n", n, bench.Count(len(sc.Paths), "path"), sc.Duration, sc.Workload.Kind)
		}
		return nil
	}
	var names []string
	switch {
	case *all && fs.NArg() > 0:
		return usageError(fs, "give scenarios or --all, not both")
	case *all:
		var err error
		if names, err = eval.List(fsys); err != nil {
			return err
		}
		if len(names) == 0 {
			return fmt.Errorf("no scenario files (*.json) in %s", *dir)
		}
	case fs.NArg() == 0:
		return usageError(fs, "name at least one scenario (e.g. smoke), or --all")
	default:
		names = fs.Args()
	}
	scheds, err := eval.ParseSchedulers(*schedulers)
	if err != nil {
		return usageError(fs, "--scheduler: %v", err)
	}
	bes, err := eval.ParseSchedulers(*backends) // the same comma-list rules
	if err != nil {
		return usageError(fs, "--backend: %v", err)
	}
	for _, b := range bes {
		if b != eval.Inproc && b != eval.Netns {
			return usageError(fs, "--backend: unknown backend %q (want inproc or netns)", b)
		}
	}
	if err := eval.CheckMode(*mode); err != nil {
		return usageError(fs, "--mode: %v", err)
	}
	var scenarios []*eval.Scenario
	for _, n := range names {
		sc, err := eval.Load(fsys, n)
		if err != nil {
			return err
		}
		scenarios = append(scenarios, sc)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	if *logDir != "" {
		if err := os.MkdirAll(*logDir, 0o755); err != nil {
			return err
		}
		abs, err := filepath.Abs(*logDir) // the netns agents may not share our directory
		if err != nil {
			return err
		}
		*logDir = abs
	}
	opts := eval.Options{Schedulers: scheds, Mode: *mode, NoMPTCP: *noMPTCP, NoBaseline: *noTCP, Progress: stderr, LogDir: *logDir, CongestionControl: *cc,
		AgentArgv: []string{exe, "eval", "--agent"}}
	var report eval.Report
	failed, ran := 0, 0
	firstSkip := "" // why a Braid run could not be made
	for _, sc := range scenarios {
		var results []*eval.Result
		for _, b := range bes {
			opts.Backend = b
			rs, err := eval.Run(ctx, sc, opts)
			results = append(results, rs...)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", sc.Name, b, err)
			}
		}
		for _, r := range results {
			switch {
			case r.Error != "":
				failed++
			case r.Skipped != "":
				if firstSkip == "" {
					firstSkip = r.Skipped
				}
			case r.Transport == eval.TransportBraid:
				ran++
			}
		}
		entry := eval.ReportEntry{Scenario: sc, Results: results}
		if *out != "" {
			for _, r := range results {
				if r.Skipped != "" {
					entry.Plots = append(entry.Plots, "")
					continue
				}
				p, err := eval.Plot(sc, r, *out)
				if err != nil {
					return err
				}
				entry.Plots = append(entry.Plots, filepath.Base(p))
			}
		}
		report.Entries = append(report.Entries, entry)
		if !*asJSON {
			if err := eval.WriteTable(stdout, sc, results); err != nil {
				return err
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report.AllResults()); err != nil {
			return err
		}
	}
	if *out != "" {
		if err := report.Write(*out, "go run ./cmd/braid eval "+strings.Join(os.Args[2:], " ")); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "eval: plots, results.json and report.md in %s\n", *out)
	}
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed (see the tables)", failed)
	}
	if ran == 0 && firstSkip != "" {
		return fmt.Errorf("no Braid run could be made with --mode %s: %s", *mode, firstSkip)
	}
	return nil
}
