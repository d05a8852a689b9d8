package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/cmd/braid/internal/eval"
	"github.com/braidnet/braid/internal/disperse"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "[flags] [ADDR]  or  --paths 1,2,4,8 [flags] [ADDR]  or  --tunnel [flags]  or  --sessions N[,N...] [--tunnel] [flags]", stderr)
	pathList := fs.String("paths", "", "measure multipath sessions with these path counts (comma-separated): on loopback beside raw TCP, or to ADDR (a braid serve) beside one path")
	chunk := fs.String("chunk-size", "256KiB", "with --paths: session chunk size")
	copySend := fs.Bool("copy", false, "with --paths: send with Session.Send, which copies each message, instead of SendNoCopy")
	modes := fs.String("modes", "plain", "with --paths: dispersal modes to compare (comma-separated: plain, redundant, shamir:K/N, erasure:K/N, aont:K/N; a coded mode runs at N paths)")
	pings := fs.Int("pings", 2000, "latency probes per side")
	volume := fs.String("volume", "", "bytes sent per payload size and run (default 128MiB; with --paths, per transfer: 1GiB)")
	runs := fs.Int("runs", 3, "transfers per size and side, alternating; the median is reported")
	sizes := fs.String("sizes", "", "comma-separated payload sizes (default 64B..4MiB in ×4 steps)")
	maxTime := fs.Duration("max-time", time.Minute, "upper bound on one size's transfer")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	security := fs.String("security", "tls,insecure", "with --paths: path security to measure (comma-separated: tls, insecure); both give TLS ÷ plaintext")
	setups := fs.Int("setups", 20, "with --paths: session setups timed per case")
	scheduler := fs.String("scheduler", "adaptive", "with --paths: how chunks are spread over the paths: adaptive, lowest-rtt, round-robin or redundant")
	duration := fs.Duration("time", 10*time.Second, "with --paths and ADDR: how long each case sends")
	byteCount := fs.String("bytes", "", "with --paths and ADDR: send this many bytes per case instead of for --time")
	reverse := fs.Bool("reverse", false, "with --paths and ADDR: the server sends and this end receives")
	every := fs.Duration("i", 0, "with --paths and ADDR: print a report per path every interval (e.g. 1s), iperf3 style")
	grace := fs.Duration("grace", 30*time.Second, "with --paths and ADDR: how long a session survives with every path down")
	metricsAddr := fs.String("metrics", "", "with --paths and ADDR: serve Prometheus metrics of the sessions at http://ADDR/metrics")
	sessionList := fs.String("sessions", "", "hold this many idle 2-path sessions on a braid serve child process (comma-separated counts, e.g. 1000,3000,9000): setup rate, server memory and CPU while idle, every session answering afterwards, a transfer among them ÷ alone")
	idleFor := fs.Duration("idle", 60*time.Second, "with --sessions: how long the sessions idle before each must answer")
	idleKeepAlive := fs.Duration("idle-keepalive", 0, "with --sessions: IdleKeepAlive of the server and the sessions (0: the default, 25s)")
	releaseMemory := fs.Duration("release-memory", 10*time.Second, "with --sessions: the server's --release-memory (0: the server keeps what the Go runtime keeps)")
	clientAddrs := fs.Int("client-addrs", defaultClientAddrs(), "with --sessions: the client's sessions come from this many loopback addresses, 127.0.0.2 and up, as many clients' would (1: all from 127.0.0.1; at most 250)")
	tb := addTunnelBenchFlags(fs)
	ct := addClientTrustFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sessionList != "" {
		o := sessionsOptions{idle: *idleFor, idleKeepAlive: *idleKeepAlive, releaseMemory: *releaseMemory, clientAddrs: *clientAddrs, tunnel: tb.on, progress: stderr}
		return runBenchSessions(ctx, fs, *sessionList, o, *security, *asJSON, stdout)
	}
	if tb.on {
		return tb.run(ctx, fs, *volume, *runs, *security, *asJSON, stdout)
	}
	if fs.NArg() > 1 {
		return usageError(fs, "at most one server address")
	}
	if *volume == "" {
		*volume = "128MiB"
		if *pathList != "" {
			*volume = "1GiB"
		}
	}
	vol, err := parseSize(*volume)
	if err != nil {
		return usageError(fs, "--volume: %v", err)
	}
	if *pathList != "" {
		var counts []int
		for _, s := range strings.Split(*pathList, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 64 {
				return usageError(fs, "--paths: bad path count %q (1..64)", s)
			}
			counts = append(counts, n)
		}
		cs, err := parseSize(*chunk)
		if err != nil {
			return usageError(fs, "--chunk-size: %v", err)
		}
		if err := (&braid.Config{Scheduler: *scheduler}).Validate(); err != nil {
			return usageError(fs, "--scheduler: %s", errorText(err))
		}
		if fs.NArg() == 1 {
			ro := remoteOptions{counts: counts, reverse: *reverse, time: *duration, bytes: unknownSize, every: *every, out: stdout, runs: 1}
			if flagSet(fs, "runs") {
				ro.runs = max(*runs, 1)
			}
			if *byteCount != "" {
				n, err := parseSize(*byteCount)
				if err != nil || n == 0 {
					return usageError(fs, "--bytes: bad size %q", *byteCount)
				}
				ro.bytes, ro.time = int64(n), 0
			} else if *duration < 100*time.Millisecond || *duration > maxBenchSeconds*time.Second {
				return usageError(fs, "--time must be 100ms..%v", maxBenchSeconds*time.Second)
			}
			if *every < 0 || *every > 0 && *every < 10*time.Millisecond {
				return usageError(fs, "-i must be at least 10ms")
			}
			if *grace <= 0 {
				return usageError(fs, "--grace must be positive")
			}
			for _, name := range strings.Split(*modes, ",") {
				m, err := disperse.Parse(strings.TrimSpace(name))
				if err != nil {
					return usageError(fs, "--modes: %v", err)
				}
				ro.modes = append(ro.modes, m)
			}
			log, err := lf.logger(stderr)
			if err != nil {
				return usageError(fs, "%v", err)
			}
			addr := fs.Arg(0)
			ro.cfg = braid.Config{ChunkSize: cs, Scheduler: *scheduler, ResumeGrace: *grace, Logger: log}
			if err := ct.apply(&ro.cfg, addr, stderr); err != nil {
				return usageError(fs, "%v", err)
			}
			ro.specs = func(n int) []braid.PathSpec {
				specs := make([]braid.PathSpec, n)
				for i := range specs {
					specs[i].Remote = addr
				}
				return specs
			}
			if *metricsAddr != "" {
				if ro.metrics, err = startMetrics(*metricsAddr, log); err != nil {
					return err
				}
				defer ro.metrics.close()
			}
			rep, err := benchRemote(ctx, addr, ro)
			if err != nil {
				if ctx.Err() != nil {
					return errInterrupted
				}
				return err
			}
			return printReport(stdout, *asJSON, rep, rep.writeText)
		}
		rep, err := bench.RunSessions(ctx, bench.SessionOptions{Paths: counts, Volume: int64(vol), Runs: *runs,
			Pings: *pings, ChunkSize: cs, MaxTime: *maxTime, Modes: strings.Split(*modes, ","), Copy: *copySend,
			Security: strings.Split(*security, ","), Setups: *setups, Scheduler: *scheduler})
		if err != nil {
			return err
		}
		return printReport(stdout, *asJSON, rep, rep.WriteTable)
	}
	opts := bench.Options{Addr: fs.Arg(0), Pings: *pings, Sizes: bench.DefaultSizes(), Volume: int64(vol), MinFrames: 100, MaxTime: *maxTime, Runs: *runs}
	if *sizes != "" {
		opts.Sizes = nil
		for _, s := range strings.Split(*sizes, ",") {
			n, err := parseSize(s)
			if err != nil || n == 0 {
				return usageError(fs, "--sizes: bad size %q", s)
			}
			opts.Sizes = append(opts.Sizes, n)
		}
	}
	if *pings < 1 {
		return usageError(fs, "--pings must be at least 1")
	}
	if opts.Addr != "" { // a braid serve: its frame protocol runs inside TLS unless --insecure
		if opts.TLS, err = ct.frameTLS(opts.Addr, stderr); err != nil {
			return usageError(fs, "%v", err)
		}
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		return err
	}
	return printReport(stdout, *asJSON, rep, rep.WriteTable)
}

// runBenchSessions is braid bench --sessions.
// o holds the flags' settings; the counts, the security and the command are added here.
func runBenchSessions(ctx context.Context, fs *flag.FlagSet, list string, o sessionsOptions, security string, asJSON bool, stdout io.Writer) error {
	if fs.NArg() != 0 || flagSet(fs, "paths") {
		return usageError(fs, "--sessions runs its own server: no ADDR, no --paths")
	}
	if o.clientAddrs < 1 || o.clientAddrs > 250 {
		return usageError(fs, "--client-addrs: want 1..250, not %d", o.clientAddrs)
	}
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 100000 {
			return usageError(fs, "--sessions: bad session count %q (1..100000)", s)
		}
		o.counts = append(o.counts, n)
	}
	if o.idle < 0 || o.idleKeepAlive < 0 || o.releaseMemory < 0 {
		return usageError(fs, "--idle, --idle-keepalive and --release-memory must not be negative")
	}
	switch {
	case !flagSet(fs, "security") || security == "tls":
	case security == "insecure":
		o.insecure = true
	default:
		return usageError(fs, "with --sessions, --security is tls or insecure")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.argv = []string{exe}
	rep, err := benchSessions(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	return printReport(stdout, asJSON, rep, rep.writeText)
}

// printReport prints a report as JSON or as its table.
func printReport(w io.Writer, asJSON bool, rep any, table func(io.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	table(w)
	return nil
}

// parseSize reads a byte count such as "512", "64KiB", "4MiB", "1GiB" or "10MB" as the scenario
// files do (eval.ParseSize: K, M, G are binary, kB, MB, GB decimal).
func parseSize(s string) (int, error) {
	n, err := eval.ParseSize(s)
	return int(n), err
}
