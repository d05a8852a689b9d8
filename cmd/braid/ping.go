package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"syscall"
	"time"

	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/frame"
)

// pingSummary is what braid ping reports.
type pingSummary struct {
	Command     string   `json:"command"` // "ping"
	Target      string   `json:"target"`
	Payload     int      `json:"payload"` // bytes per probe
	Transmitted int      `json:"transmitted"`
	Received    int      `json:"received"`
	LossPercent float64  `json:"loss_percent"`
	Seconds     float64  `json:"seconds"`
	RTT         *rttStat `json:"rtt_ms,omitempty"` // nil when nothing was received
	Interrupted bool     `json:"interrupted,omitempty"`
	Error       string   `json:"error,omitempty"` // why probing stopped early
}

// rttStat summarises round trips, in milliseconds; mdev is their standard deviation, as ping's.
type rttStat struct {
	Min, Avg, Median, P99, Max, Mdev float64
}

func (r rttStat) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"min":%.3f,"avg":%.3f,"median":%.3f,"p99":%.3f,"max":%.3f,"mdev":%.3f}`, r.Min, r.Avg, r.Median, r.P99, r.Max, r.Mdev), nil
}

func summarizeRTT(rtts []time.Duration) *rttStat {
	if len(rtts) == 0 {
		return nil
	}
	var sum, sq float64
	for _, r := range rtts {
		v := float64(r) / 1e6
		sum += v
		sq += v * v
	}
	n := float64(len(rtts))
	avg := sum / n
	l := bench.Summarize(rtts) // sorts rtts
	return &rttStat{Min: float64(rtts[0]) / 1e6, Avg: avg, Median: float64(l.Median) / 1e6, P99: float64(l.P99) / 1e6,
		Max: float64(l.Max) / 1e6, Mdev: math.Sqrt(max(sq/n-avg*avg, 0))}
}

func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ping", "[-c COUNT] [-i INTERVAL] [-W TIMEOUT] ADDR", stderr)
	count := fs.Int("c", 5, "number of probes (0: until interrupted)")
	interval := fs.Duration("i", time.Second, "time between probes")
	size := fs.Int("s", 8, "probe payload size, bytes (8..64)")
	wait := fs.Duration("W", 2*time.Second, "how long to wait for each answer (and for a connection); a probe unanswered by then is lost")
	asJSON := fs.Bool("json", false, "print only the summary, as JSON")
	ct := addClientTrustFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "need exactly one server address")
	}
	if *size < 8 || *size > 64 || *count < 0 || *interval < 0 || *wait <= 0 {
		return usageError(fs, "-s must be 8..64, -c and -i not negative, -W positive")
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
	out := stdout
	if *asJSON {
		out = io.Discard
	}
	p := &pinger{addr: addr, cfg: &frame.Config{Logger: log, TLS: conf}, wait: *wait}
	defer p.close()
	fmt.Fprintf(out, "PING %s: %d-byte payload\n", addr, *size)
	sm := pingSummary{Command: "ping", Target: addr, Payload: *size}
	probe := make([]byte, *size)
	var rtts []time.Duration
	start := time.Now()
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
		rtt, err := p.ping(ctx, probe)
		if ctx.Err() != nil {
			break // interrupted mid-probe: not counted
		}
		sm.Transmitted++
		if err != nil {
			if !transient(err) {
				sm.Error = errorText(err)
				break
			}
			why := errorText(err)
			var ne net.Error
			if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
				why = fmt.Sprintf("timeout after %v", *wait)
			}
			fmt.Fprintf(out, "no answer from %s: seq=%d: %s\n", addr, seq, why)
			continue
		}
		rtts = append(rtts, rtt)
		fmt.Fprintf(out, "%d bytes from %s: seq=%d time=%s\n", *size, addr, seq, ms(rtt))
	}
	sm.Seconds = time.Since(start).Seconds()
	sm.Received = len(rtts)
	sm.Interrupted = ctx.Err() != nil
	if sm.Transmitted > 0 {
		sm.LossPercent = 100 * float64(sm.Transmitted-sm.Received) / float64(sm.Transmitted)
	}
	sm.RTT = summarizeRTT(rtts)
	if *asJSON {
		printJSON(stdout, sm)
	} else {
		fmt.Fprintf(stdout, "\n--- %s braid ping statistics ---\n", addr)
		fmt.Fprintf(stdout, "%d probes transmitted, %d received, %.0f%% loss, time %v\n", sm.Transmitted, sm.Received, sm.LossPercent, time.Duration(sm.Seconds*1e9).Round(time.Millisecond))
		if r := sm.RTT; r != nil {
			fmt.Fprintf(stdout, "rtt min/avg/median/p99/max/mdev = %.3f/%.3f/%.3f/%.3f/%.3f/%.3f ms\n", r.Min, r.Avg, r.Median, r.P99, r.Max, r.Mdev)
		}
	}
	switch {
	case sm.Error != "":
		return errors.New(sm.Error)
	case sm.Received == 0 && sm.Transmitted > 0:
		return errSilent // as ping: status 1 when nothing was answered
	}
	return nil // interrupted with answers is how -c 0 ends: status 0, as ping
}

// pinger sends probes over one connection, opening a new one after a probe is lost (the frame
// client closes its connection on any failure).
type pinger struct {
	addr string
	cfg  *frame.Config
	wait time.Duration
	c    *frame.Client
}

// ping sends one probe and waits at most p.wait for its answer, connecting first if need be
// (within the same wait: a server that accepts and never answers costs one -W per probe).
func (p *pinger) ping(ctx context.Context, probe []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, p.wait)
	defer cancel()
	if p.c == nil {
		c, err := frame.Dial(ctx, p.addr, p.cfg)
		if err != nil {
			return 0, err
		}
		p.c = c
	}
	rtt, err := p.c.Ping(ctx, probe)
	if err != nil {
		p.close()
	}
	return rtt, err
}

func (p *pinger) close() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}

// transient reports whether a probe's failure may pass (a timeout, a refused or reset
// connection), so that ping counts it as lost and goes on; anything else (the server's identity,
// a TLS or protocol failure) ends the run.
func transient(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" { // a TLS alert
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
