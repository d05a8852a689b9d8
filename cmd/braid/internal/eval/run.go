package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// Backends.
const (
	Inproc = "inproc"
	Netns  = "netns"
)

// Options says how to run scenarios.
type Options struct {
	Backend    string   // Inproc (default) or Netns
	Schedulers []string // braid.Config.Scheduler names, each run in turn; default round-robin
	Mode       string   // dispersal mode (see CheckMode, ResolveMode); default plain
	NoMPTCP    bool     // netns: skip the MPTCP comparison
	NoBaseline bool     // skip the TCP baseline (TransportTCP) on bulk scenarios
	// CongestionControl, if set, is the TCP congestion control (e.g. "cubic") of the netns
	// backend's client and server namespaces, the default of every transport's sockets there
	// (net.ipv4.tcp_congestion_control), and of the TCP baseline's senders (TCP_CONGESTION);
	// else the kernel's default. (A namespace other than the host's may only choose among
	// net.ipv4.tcp_allowed_congestion_control; the socket option, as root, any the kernel has.)
	CongestionControl string
	Progress          io.Writer
	// LogDir, if set, receives each Braid run's session logs (slog.LevelInfo: paths up and
	// down, re-dials, aborts), as NAME-BACKEND-RUN-client.log and -server.log.
	LogDir string
	// AgentArgv runs this program as an agent (see RunAgent) inside a namespace: the netns
	// backend starts `ip netns exec NS AgentArgv...` with the agent's job on standard input.
	AgentArgv []string
}

// Run runs sc on the chosen backend once per scheduler, each also over the subsets of paths
// sc.Compare names; a bulk scenario also runs the TCP baseline (TransportTCP) over each, and
// the netns backend runs each over MPTCP. A run that fails yields a
// Result with Error set; the error returned is for what prevented running at all.
func Run(ctx context.Context, sc *Scenario, o Options) ([]*Result, error) {
	if o.Backend == "" {
		o.Backend = Inproc
	}
	if len(o.Schedulers) == 0 {
		o.Schedulers = []string{"round-robin"}
	}
	if o.Mode == "" {
		o.Mode = "plain"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := CheckMode(o.Mode); err != nil {
		return nil, err
	}
	type variant struct {
		name  string
		paths []int
	}
	all := make([]int, len(sc.Paths))
	for i := range all {
		all[i] = i
	}
	variants := []variant{{"", all}}
	for _, c := range sc.Compare {
		variants = append(variants, variant{c.Name, c.Paths})
	}

	var nb *netnsBackend
	if o.Backend == Netns {
		var err error
		if nb, err = newNetnsBackend(ctx, len(sc.Paths), o); err != nil {
			return nil, err
		}
		defer nb.Close()
	} else if o.Backend != Inproc {
		return nil, fmt.Errorf("unknown backend %q: want %s or %s", o.Backend, Inproc, Netns)
	}

	var results []*Result
	one := func(transport, scheduler string, v variant) error {
		sub := sc
		if v.name != "" {
			sub = sc.Subset(v.paths)
		}
		label := transport
		if scheduler != "" {
			label += " " + scheduler
		}
		if v.name != "" {
			label += " (" + v.name + ")"
		}
		if o.Backend == Inproc && sub.HasLoss() {
			fmt.Fprintf(o.Progress, "eval: %s on %s: %s skipped: %v\n", sc.Name, o.Backend, label, errLossInproc)
			results = append(results, &Result{Scenario: sc.Name, Backend: o.Backend, Transport: transport,
				Scheduler: scheduler, Mode: o.Mode, Variant: v.name, Paths: slices.Clone(v.paths), Skipped: errLossInproc.Error()})
			return nil
		}
		mode := o.Mode
		if transport == TransportBraid {
			m, err := ResolveMode(o.Mode, len(v.paths))
			if err != nil {
				// Not a failure: this mode cannot run over this many paths (a coded mode's N).
				fmt.Fprintf(o.Progress, "eval: %s on %s: %s skipped: %v\n", sc.Name, o.Backend, label, err)
				results = append(results, &Result{Scenario: sc.Name, Backend: o.Backend, Transport: transport,
					Scheduler: scheduler, Mode: o.Mode, Variant: v.name, Paths: slices.Clone(v.paths), Skipped: err.Error()})
				return nil
			}
			mode = m
		}
		logBase := ""
		if o.LogDir != "" && transport == TransportBraid {
			named := &Result{Scenario: sc.Name, Backend: o.Backend, Transport: transport, Scheduler: scheduler, Mode: mode, Variant: v.name}
			logBase = filepath.Join(o.LogDir, named.baseName())
		}
		fmt.Fprintf(o.Progress, "eval: %s on %s: %s, %v ...\n", sc.Name, o.Backend, label, sc.Duration)
		var rec *Recording
		var err error
		switch {
		case o.Backend == Inproc && transport == TransportTCP:
			rec, err = runInprocTCP(ctx, sub)
		case o.Backend == Inproc:
			rec, err = runInproc(ctx, sub, scheduler, mode, logBase)
		case transport == TransportBraid:
			rec, err = nb.run(ctx, sub, v.paths, transport, scheduler, mode, logBase)
		default:
			rec, err = nb.run(ctx, sub, v.paths, transport, "", "", "")
		}
		r := &Result{Scenario: sc.Name}
		if rec != nil {
			r = Analyze(sub, rec)
			r.Extra = rec.Extra
		}
		r.Backend, r.Transport, r.Variant, r.Paths = o.Backend, transport, v.name, slices.Clone(v.paths)
		if transport == TransportBraid {
			r.Scheduler, r.Mode = scheduler, mode
		}
		if err != nil {
			r.Error = err.Error()
			fmt.Fprintf(o.Progress, "eval: %s: %v\n", label, err)
		}
		results = append(results, r)
		return ctx.Err()
	}
	for _, s := range o.Schedulers {
		for _, v := range variants {
			if err := one(TransportBraid, s, v); err != nil {
				return results, err
			}
		}
	}
	if !o.NoBaseline && baselineApplies(sc) {
		for _, v := range variants {
			if err := one(TransportTCP, "", v); err != nil {
				return results, err
			}
		}
	}
	if o.Backend == Netns && !o.NoMPTCP {
		for _, v := range variants {
			if err := one(TransportMPTCP, "", v); err != nil {
				return results, err
			}
		}
	}
	relateToBaseline(results)
	Judge(sc, results)
	return results, nil
}

// relateToBaseline sets each result's BaselineMbit and PctOfBaseline from the TCP baseline run
// over the same paths, if one succeeded.
func relateToBaseline(results []*Result) {
	for _, b := range results {
		if b.Transport != TransportTCP || b.Error != "" || b.Skipped != "" {
			continue
		}
		for _, r := range results {
			if r.Backend == b.Backend && slices.Equal(r.Paths, b.Paths) {
				r.BaselineMbit = b.GoodputMbit
				r.PctOfBaseline = pct(r.GoodputMbit, b.GoodputMbit)
			}
		}
	}
}

// ParseSchedulers splits a comma list of scheduler names.
func ParseSchedulers(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no scheduler named")
	}
	return out, nil
}
