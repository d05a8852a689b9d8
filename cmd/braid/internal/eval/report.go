package eval

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/braidnet/braid/cmd/braid/internal/bench"
)

// Label names a run in tables and file names, e.g. "braid round-robin (fast path alone)".
func (r *Result) Label() string {
	s := r.Transport
	if r.Scheduler != "" {
		s += " " + r.Scheduler
	}
	if r.Mode != "" && r.Mode != "plain" {
		s += " " + r.Mode
	}
	if r.Variant != "" {
		s += " (" + r.Variant + ")"
	}
	return s
}

// ofTCP is the "% of TCP" cell: goodput as % of the TCP baseline's, or none if no baseline ran.
func (r *Result) ofTCP(none string) string {
	if r.BaselineMbit > 0 {
		return fmt.Sprintf("%.1f", r.PctOfBaseline)
	}
	return none
}

// Describe is one line about a scenario: its paths, workload and duration.
func (sc *Scenario) Describe() string {
	var ps []string
	for i, p := range sc.Paths {
		d := fmt.Sprintf("%d: %s %v", i, p.Rate, p.Delay)
		if p.Loss.Rate > 0 {
			d += " loss " + p.Loss.String()
		}
		ps = append(ps, d)
	}
	w := fmt.Sprintf("bulk, %s messages", bench.Size(sc.Workload.MessageSize))
	if sc.Workload.Kind == Messages {
		w = fmt.Sprintf("%s messages at %g/s", bench.Size(sc.Workload.MessageSize), sc.Workload.MessagesPerSec)
	}
	return fmt.Sprintf("%s [%s]; %s; %v", bench.Count(len(sc.Paths), "path"), strings.Join(ps, ", "), w, sc.Duration)
}

// WriteTable writes a scenario's results as text: a summary table of every run, then one table
// per run with its paths, its events and its latency.
func WriteTable(w io.Writer, sc *Scenario, results []*Result) error {
	fmt.Fprintf(w, "== %s: %s\n", sc.Name, sc.Describe())
	if sc.Description != "" {
		fmt.Fprintf(w, "   %s\n", sc.Description)
	}
	lat := sc.Workload.Kind == Messages
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "run\tbackend\tgoodput Mbit/s\t% of sum\tsum Mbit/s\t% of capacity\t% of TCP\t"
	if lat {
		head += "p50 ms\tp99 ms\t"
	}
	fmt.Fprintln(tw, head)
	var skipped []*Result
	results = slices.DeleteFunc(slices.Clone(results), func(r *Result) bool {
		if r.Skipped != "" {
			skipped = append(skipped, r)
		}
		return r.Skipped != ""
	})
	for _, r := range results {
		line := fmt.Sprintf("%s\t%s\t%.1f\t%.1f\t%.0f\t%.1f\t%s\t", r.Label(), r.Backend, r.GoodputMbit, r.PctOfSum, r.SumRateMbit, r.PctOfCapacity, r.ofTCP("-"))
		if lat {
			line += fmt.Sprintf("%.1f\t%.1f\t", r.LatP50Ms, r.LatP99Ms)
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range skipped {
		fmt.Fprintf(w, "  skipped %s, %s backend, paths %v: %s\n", r.Label(), r.Backend, r.Paths, r.Skipped)
	}
	for _, r := range results {
		fmt.Fprintf(w, "\n-- %s, %s backend, paths %v\n", r.Label(), r.Backend, r.Paths)
		if r.Error != "" {
			fmt.Fprintf(w, "   FAILED: %s\n", r.Error)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "   note: %s\n", r.Note)
		}
		fmt.Fprintf(w, "   goodput %.1f Mbit/s over %gs (%d messages, %.1f MiB): %.1f%% of the %.0f Mbit/s sum, %.1f%% of the mean capacity %.0f Mbit/s\n",
			r.GoodputMbit, r.DurationSec, r.Messages, float64(r.Bytes)/(1<<20), r.PctOfSum, r.SumRateMbit, r.PctOfCapacity, r.CapacityMbit)
		if r.BaselineMbit > 0 && r.Transport != TransportTCP {
			fmt.Fprintf(w, "   %.1f%% of the TCP baseline's %.1f Mbit/s (one plain TCP connection per path, same paths, same invocation)\n", r.PctOfBaseline, r.BaselineMbit)
		}
		writeGoals(w, r)
		if r.OfferedMbit > 0 {
			fmt.Fprintf(w, "   offered %.1f Mbit/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", r.OfferedMbit, r.LatP50Ms, r.LatP99Ms, r.LatMaxMs)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "   path\tscenario path\trate\tdelay\tMiB received\tMbit/s\tshare %\t")
		var total int64
		for _, b := range r.PathBytes {
			total += b
		}
		for i, b := range r.PathBytes {
			orig := i
			if i < len(r.Paths) {
				orig = r.Paths[i]
			}
			ps := sc.Paths[orig]
			fmt.Fprintf(tw, "   %d\t%d\t%s\t%v\t%.1f\t%.1f\t%.1f\t\n", i, orig, ps.Rate, ps.Delay, float64(b)/(1<<20), r.PathMbit[i], pct(float64(b), float64(total)))
		}
		tw.Flush()
		fmt.Fprintf(w, "   (per-path bytes: %s)\n", r.PathUnit)
		if len(r.Events) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "   event\tlongest gap ms\trecovery ms\tto Mbit/s\t")
			for _, e := range r.Events {
				rec := "not recovered"
				if e.RecoveryMs >= 0 {
					rec = fmt.Sprintf("%.0f", e.RecoveryMs)
				}
				fmt.Fprintf(tw, "   %s\t%.0f\t%s\t%.1f\t\n", e.Event, e.LongestGapMs, rec, e.TargetMbit)
			}
			tw.Flush()
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}
