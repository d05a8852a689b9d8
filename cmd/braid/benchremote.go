package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/internal/disperse"
)

// The two-host multipath benchmark: braid bench --paths N ADDR against a braid serve, which
// answers the "bench" transfer (transfer.go, benchserve.go). Each case is a session of N paths
// moving data for --time (or --bytes) one way; one path to the same server is measured in the
// same run as the baseline, so that "÷ 1 path" is what the extra paths bring.

// remoteOptions are what braid bench ADDR measures.
type remoteOptions struct {
	specs   func(n int) []braid.PathSpec // the paths of an n-path session
	cfg     braid.Config                 // the session's, for every case (Paths and Mode set per case)
	counts  []int
	modes   []disperse.Mode
	reverse bool
	time    time.Duration // per case and run; 0 when bytes is set
	bytes   int64         // per case and run, or unknownSize
	runs    int
	every   time.Duration // interval reports, 0 for none
	out     io.Writer     // where interval reports go (io.Discard for none)
	metrics *metricsServer
}

// remoteRow is one case's result, the median of its runs by rate.
type remoteRow struct {
	Paths         int           `json:"paths"`
	Mode          string        `json:"mode"`
	Scheduler     string        `json:"scheduler"`
	KeyExchange   string        `json:"key_exchange"`
	Bytes         int64         `json:"bytes"`
	Seconds       float64       `json:"seconds"`
	BitsPerSecond float64       `json:"bits_per_second"`
	OnePathRatio  float64       `json:"one_path_ratio"` // ÷ the 1-path plain case of the same run set
	ResentChunks  uint64        `json:"resent_chunks"`
	PathRows      []pathSummary `json:"per_path"`
}

// remoteReport is braid bench ADDR's report.
type remoteReport struct {
	Command   string      `json:"command"` // "bench"
	Target    string      `json:"target"`
	Direction string      `json:"direction"` // "send" (client to server) or "reverse"
	Runs      int         `json:"runs"`
	Rows      []remoteRow `json:"rows"`
}

// benchRemote runs every case (each path count with each mode, a coded mode only at its N, and
// 1 path plain as the baseline) runs times, alternating, and reports each case's median run.
func benchRemote(ctx context.Context, target string, o remoteOptions) (*remoteReport, error) {
	type bcase struct {
		n    int
		mode disperse.Mode
	}
	cases := []bcase{{1, disperse.Mode{}}} // the baseline first
	for _, m := range o.modes {
		for _, n := range o.counts {
			if (!m.Coded() || m.N == n) && !slices.Contains(cases, bcase{n, m}) {
				cases = append(cases, bcase{n, m})
			}
		}
	}
	runs := make([][]remoteRow, len(cases))
	for r := range o.runs {
		for i, c := range cases {
			if o.every > 0 {
				fmt.Fprintf(o.out, "-- %s, %s, run %d of %d\n", bench.Count(c.n, "path"), c.mode, r+1, o.runs)
			}
			row, err := remoteOnce(ctx, o, c.n, c.mode)
			if err != nil {
				return nil, fmt.Errorf("%s, %s: %w", bench.Count(c.n, "path"), c.mode, err)
			}
			runs[i] = append(runs[i], row)
		}
	}
	rep := &remoteReport{Command: "bench", Target: target, Direction: "send", Runs: o.runs}
	if o.reverse {
		rep.Direction = "reverse"
	}
	for i := range cases {
		rs := runs[i]
		slices.SortFunc(rs, func(a, b remoteRow) int { return cmp.Compare(a.BitsPerSecond, b.BitsPerSecond) })
		rep.Rows = append(rep.Rows, rs[len(rs)/2])
	}
	for i := range rep.Rows {
		rep.Rows[i].OnePathRatio = rep.Rows[i].BitsPerSecond / rep.Rows[0].BitsPerSecond
	}
	return rep, nil
}

// remoteOnce measures one session of n paths in mode m.
func remoteOnce(ctx context.Context, o remoteOptions, n int, m disperse.Mode) (remoteRow, error) {
	cfg := o.cfg
	cfg.Paths, cfg.Mode = n, m.String()
	s, err := braid.DialPaths(ctx, o.specs(n), &cfg)
	if err != nil {
		o.metrics.dialFailed(err)
		return remoteRow{}, err
	}
	defer s.Abort() // after Close, a no-op
	o.metrics.track(s)
	h := transferHeader{Kind: "bench", Size: o.bytes, Reverse: o.reverse, Seconds: o.time.Seconds()}
	hdr, _ := json.Marshal(h)
	if err := s.Send(ctx, hdr); err != nil {
		return remoteRow{}, err
	}
	dir := sending
	if o.reverse {
		dir = receiving
	}
	stop, finished := make(chan struct{}), make(chan struct{})
	if o.every > 0 {
		go newIntervals(o.out, s.Stats, dir).run(o.every, stop, finished)
	} else {
		close(finished)
	}
	start := time.Now()
	var moved int64
	if o.reverse {
		moved, err = receiveStream(ctx, s)
	} else {
		moved, err = sendStream(ctx, s, o.bytes, o.time)
	}
	var rc transferReceipt
	if err == nil {
		err = receiveJSON(ctx, s, &rc)
	}
	el := time.Since(start) // sending: until the server has counted every byte
	close(stop)
	<-finished
	switch {
	case err != nil:
		return remoteRow{}, err
	case rc.Error != "":
		return remoteRow{}, fmt.Errorf("server: %s", rc.Error)
	case rc.Bytes != moved:
		return remoteRow{}, fmt.Errorf("server counted %d bytes, this end %d", rc.Bytes, moved)
	}
	states := pathStates(s.Stats())
	if err := s.Close(); err != nil {
		return remoteRow{}, err
	}
	st := s.Stats()
	row := remoteRow{Paths: n, Mode: m.String(), Scheduler: cfg.Scheduler, KeyExchange: bench.KeyExchanges(st.Paths), Bytes: moved,
		Seconds: el.Seconds(), BitsPerSecond: float64(moved) * 8 / el.Seconds(), PathRows: pathSummaries(st, dir, states)}
	for _, p := range st.Paths {
		row.ResentChunks += p.ChunksResent
	}
	return row, nil
}

// receiveStream counts the messages of a stream until its short last one.
func receiveStream(ctx context.Context, s *braid.Session) (int64, error) {
	var n int64
	for {
		msg, err := s.Receive(ctx)
		if err != nil {
			return n, err
		}
		n += int64(len(msg))
		last := len(msg) < transferPiece
		s.Release(msg)
		if last {
			return n, nil
		}
	}
}

// receiveJSON receives one message and decodes it into v.
func receiveJSON(ctx context.Context, s *braid.Session, v any) error {
	msg, err := s.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the receipt: %w", err)
	}
	if err := json.Unmarshal(msg, v); err != nil {
		return fmt.Errorf("bad receipt: %w", err)
	}
	return nil
}

// writeText prints the report for people.
func (r *remoteReport) writeText(w io.Writer) {
	what := "this end sends, the server counts"
	if r.Direction == "reverse" {
		what = "the server sends (--reverse), this end counts"
	}
	fmt.Fprintf(w, "multipath to %s: %s; median of %d run(s) per case; 1 path is the baseline of the same run\n", r.Target, what, r.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "paths\tmode\tscheduler\tbytes\tseconds\tbitrate\t÷ 1 path\tresent\tshares\t")
	for _, row := range r.Rows {
		shares := ""
		for i, p := range row.PathRows {
			if i > 0 {
				shares += "/"
			}
			shares += fmt.Sprintf("%.0f", 100*p.Share)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%.2f\t%s\t%.2f\t%d\t%s%%\t\n", row.Paths, row.Mode, row.Scheduler, row.Bytes, row.Seconds,
			bitrate(row.BitsPerSecond), row.OnePathRatio, row.ResentChunks, shares)
	}
	tw.Flush()
	if len(r.Rows) > 0 {
		fmt.Fprintf(w, "(key exchange %s; shares: each path's part of the bytes, in path order)\n", r.Rows[0].KeyExchange)
	}
}
