package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/frame"
)

func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ping", "[-c COUNT] [-i INTERVAL] ADDR", stderr)
	count := fs.Int("c", 5, "number of probes (0: until interrupted)")
	interval := fs.Duration("i", time.Second, "time between probes")
	size := fs.Int("s", 8, "probe payload size, bytes (8..64)")
	ct := addClientTrustFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "need exactly one server address")
	}
	if *size < 8 || *size > 64 || *count < 0 || *interval < 0 {
		return usageError(fs, "-s must be 8..64, -c and -i not negative")
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	addr := fs.Arg(0)
	conf, err := ct.frameTLS(addr, stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	c, err := frame.Dial(ctx, addr, &frame.Config{Logger: log, TLS: conf})
	if err != nil {
		return err
	}
	defer c.Close()

	fmt.Fprintf(stdout, "PING %s: %d-byte payload\n", addr, *size)
	probe := make([]byte, *size)
	var rtts []time.Duration
	sent := 0
	start := time.Now()
	var failure error
	for seq := 1; *count == 0 || seq <= *count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		binary.BigEndian.PutUint64(probe, uint64(seq))
		sent++
		rtt, err := c.Ping(ctx, probe)
		if err != nil {
			if ctx.Err() == nil {
				failure = err
			}
			break
		}
		rtts = append(rtts, rtt)
		fmt.Fprintf(stdout, "%d bytes from %s: seq=%d time=%s\n", *size, addr, seq, ms(rtt))
	}
	fmt.Fprintf(stdout, "\n--- %s braid ping statistics ---\n", addr)
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	fmt.Fprintf(stdout, "%d probes transmitted, %d received, %.0f%% loss, time %v\n", sent, len(rtts), loss, time.Since(start).Round(time.Millisecond))
	if len(rtts) > 0 {
		var sum time.Duration
		for _, r := range rtts {
			sum += r
		}
		avg := sum / time.Duration(len(rtts))
		l := bench.Summarize(rtts)
		// Summarize sorted rtts, so the first is the minimum.
		fmt.Fprintf(stdout, "rtt min/avg/median/p99/max = %s/%s/%s/%s/%s ms\n",
			msNum(rtts[0]), msNum(avg), msNum(l.Median), msNum(l.P99), msNum(l.Max))
	}
	return failure
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// msNum formats d in milliseconds without a unit.
func msNum(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }
