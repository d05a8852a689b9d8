package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "target: %s\n\n", r.Target)
	fmt.Fprintf(w, "latency: %d pings, %d-byte payload\n", r.BraidLatency.Samples, r.PingPayload)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tmedian\tp90\tp99\tp99.9\tmax\t")
	row := func(name string, l Latency) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", name, us(l.Median), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
	}
	row("braid", r.BraidLatency)
	if r.RawLatency != nil {
		row("raw TCP", *r.RawLatency)
		l, b := r.RawLatency, r.BraidLatency
		fmt.Fprintf(tw, "braid ÷ raw\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			ratio(b.Median, l.Median), ratio(b.P90, l.P90), ratio(b.P99, l.P99), ratio(b.P999, l.P999), ratio(b.Max, l.Max))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nthroughput: DATA frames, each acknowledged; median of %d alternating runs per side\n", r.Runs)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.RawLatency != nil {
		fmt.Fprintln(tw, "payload\tframes\tbraid Mbit/s\tframes/s\traw TCP Mbit/s\tbraid ÷ raw\t")
	} else {
		fmt.Fprintln(tw, "payload\tframes\tbraid Mbit/s\tframes/s\t")
	}
	for _, s := range r.Throughput {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t", Size(s.Size), s.Braid.Frames, s.Braid.Mbps(), s.Braid.FramesPerSec())
		if s.Raw != nil {
			fmt.Fprintf(tw, "%.0f\t%.2f\t", s.Raw.Mbps(), s.Ratio)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if r.RawLatency == nil {
		fmt.Fprintln(w, "\nraw TCP baseline: not measured (the server is remote; run without an address to compare on loopback)")
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Count formats n things of a noun whose plural adds an s: "1 path", "4 paths".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Size formats a byte count with a binary unit: "64 B", "16 KiB", "4 MiB".
func Size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// WriteTable prints the multipath report for people.
func (r *SessionReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "multipath: one %s transfer as 1 MiB messages (%s) per run, median of %d runs; raw TCP: the same bytes on one connection\n", Size(int(r.Volume)), r.Send, r.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	ratio := func(v float64) string {
		if v > 0 {
			return fmt.Sprintf("%.2f", v)
		}
		return ""
	}
	fmt.Fprintln(tw, "paths\tmode\tsecurity\tMbit/s\t÷ raw TCP\t÷ raw TLS\t÷ plain\t÷ insecure\tsetup\tmsg rtt median\tp99\t÷ raw rtt\t÷ 1 path\t")
	fmt.Fprintf(tw, "raw TCP\t\t\t%.0f\t1.00\t\t\t\t\t%s\t%s\t1.00\t\t\n", r.Raw.Mbps(), us(r.RawLatency.Median), us(r.RawLatency.P99))
	if r.RawTLS != nil {
		fmt.Fprintf(tw, "raw TLS\t\t\t%.0f\t%.2f\t1.00\t\t\t\t\t\t\t\t\n", r.RawTLS.Mbps(), r.RawTLS.MiBps()/r.Raw.MiBps())
	}
	kexes := map[string]bool{}
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t\n", row.Paths, row.Mode, row.Security, row.Throughput.Mbps(), row.RawRatio,
			ratio(row.RawTLSRatio), ratio(row.PlainRatio), ratio(row.TLSRatio), us(row.Setup.Median), us(row.Latency.Median), us(row.Latency.P99), row.RawRTTRatio, row.LatencyRatio)
		if row.Security == "tls" {
			kexes[row.KeyExchange] = true
		}
	}
	tw.Flush()
	if len(kexes) > 0 {
		fmt.Fprintf(w, "(tls: TLS 1.3 on every path, key exchange %s; raw TLS: the same bytes on one crypto/tls connection; setup: Dial until every path has attached, median of the setups timed)\n", strings.Join(slices.Sorted(maps.Keys(kexes)), ", "))
	}
	fmt.Fprintf(w, "(msg rtt: a %d-byte message, one chunk, sent and echoed back over the session; raw TCP: %d bytes written and echoed back on one connection)\n", r.MessageLen, r.MessageLen)
}
