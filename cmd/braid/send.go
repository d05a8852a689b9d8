package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/disperse"
)

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// pathFlags collects repeated --path LOCAL=REMOTE flags.
type pathFlags []braid.PathSpec

func (p *pathFlags) String() string { return fmt.Sprint(*p) }

func (p *pathFlags) Set(v string) error {
	local, remote, ok := strings.Cut(v, "=")
	if !ok {
		local, remote = "", v
	}
	if remote == "" {
		return fmt.Errorf("want LOCAL=REMOTE or REMOTE, got %q", v)
	}
	*p = append(*p, braid.PathSpec{Local: local, Remote: remote})
	return nil
}

// sessionFlags are the flags that shape a client's session, shared by send, tunnel and cat.
type sessionFlags struct {
	paths     *int
	specs     pathFlags
	chunk     *string
	mode      *string
	scheduler *string
	minPaths  *int
	grace     *time.Duration
}

func addSessionFlags(fs *flag.FlagSet) *sessionFlags {
	sf := &sessionFlags{}
	sf.paths = fs.Int("paths", 4, "number of paths (connections) to ADDR")
	fs.Var(&sf.specs, "path", "a path as LOCAL=REMOTE (local bind address, server address); repeat for each path")
	sf.chunk = fs.String("chunk-size", "256KiB", "chunk size to propose")
	sf.mode = fs.String("mode", "plain", "dispersal mode: plain, redundant, shamir:K/N, erasure:K/N or aont:K/N (coded modes use N paths)")
	sf.scheduler = fs.String("scheduler", "adaptive", "how chunks are spread over the paths: adaptive, lowest-rtt, round-robin or redundant")
	sf.minPaths = fs.Int("min-paths", 0, "paths that must attach for the session to start; the others are re-dialed in the background (0: 1, or K in a coded mode)")
	sf.grace = fs.Duration("grace", 30*time.Second, "how long the session survives with every path down, re-dialing, before it fails")
	return sf
}

// config checks the flags against the arguments (one address, or --path flags) and returns the
// paths to dial and the session's configuration; a mistake is a usage error, already printed.
func (sf *sessionFlags) config(fs *flag.FlagSet, args []string) ([]braid.PathSpec, *braid.Config, error) {
	specs := []braid.PathSpec(sf.specs)
	if len(specs) == 0 && len(args) != 1 || len(specs) > 0 && len(args) != 0 {
		return nil, nil, usageError(fs, "need exactly one server address, or --path flags")
	}
	cs, err := parseSize(*sf.chunk)
	if err != nil {
		return nil, nil, usageError(fs, "--chunk-size: %v", err)
	}
	m, err := disperse.Parse(*sf.mode)
	if err != nil {
		return nil, nil, usageError(fs, "--mode: %v", err)
	}
	if m.Coded() && !flagSet(fs, "paths") {
		*sf.paths = m.N
	}
	if len(specs) == 0 {
		if *sf.paths < 1 {
			return nil, nil, usageError(fs, "--paths must be at least 1")
		}
		for range *sf.paths {
			specs = append(specs, braid.PathSpec{Remote: args[0]})
		}
	}
	if m.Coded() && len(specs) != m.N {
		return nil, nil, usageError(fs, "--mode %s needs %d paths, got %d", m, m.N, len(specs))
	}
	if *sf.minPaths < 0 || *sf.minPaths > len(specs) {
		return nil, nil, usageError(fs, "--min-paths must be 0..%d (the number of paths)", len(specs))
	}
	if *sf.grace <= 0 {
		return nil, nil, usageError(fs, "--grace must be positive")
	}
	cfg := &braid.Config{ChunkSize: cs, Mode: m.String(), Paths: len(specs), Scheduler: *sf.scheduler,
		MinPaths: *sf.minPaths, ResumeGrace: *sf.grace}
	if err := cfg.Validate(); err != nil {
		return nil, nil, usageError(fs, "%s", errorText(err))
	}
	return specs, cfg, nil
}

// outputFlags say how a client command reports: live display, interval reports, JSON, or
// nothing but errors.
type outputFlags struct {
	quiet  *bool
	json   *bool
	every  *time.Duration
	metric *string
}

func addOutputFlags(fs *flag.FlagSet) *outputFlags {
	return &outputFlags{
		quiet:  fs.Bool("q", false, "quiet: no progress display, reports or summary; only errors (and --json)"),
		json:   fs.Bool("json", false, "print the summary as JSON (also when interrupted)"),
		every:  fs.Duration("i", 0, "print a report per path every interval, iperf3 style (e.g. 1s), instead of the progress display"),
		metric: fs.String("metrics", "", "serve Prometheus metrics of the session at http://ADDR/metrics while it runs (e.g. 127.0.0.1:9091)"),
	}
}

func (of *outputFlags) check(fs *flag.FlagSet) error {
	if *of.every < 0 || *of.every > 0 && *of.every < 10*time.Millisecond {
		return usageError(fs, "-i must be at least 10ms")
	}
	return nil
}

// text reports whether the command prints its human-readable output.
func (of *outputFlags) text() bool { return !*of.quiet && !*of.json }

// liveReport starts what shows a transfer as it goes: interval reports (-i) on stdout, else the
// progress display on a terminal stderr, else nothing. The returned function stops it.
func (of *outputFlags) liveReport(stdout, stderr io.Writer, name string, size int64, stats func() braid.Stats, dir direction, done func() uint64) func(complete bool) {
	switch {
	case *of.quiet:
	case *of.every > 0:
		iv := newIntervals(stdout, stats, dir)
		stop, finished := make(chan struct{}), make(chan struct{})
		go iv.run(*of.every, stop, finished)
		return func(bool) {
			close(stop)
			<-finished
		}
	case isTerminal(stderr):
		pr := startProgress(stderr, name, size, stats, dir, done)
		return pr.finish
	}
	return func(bool) {}
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "(--message TEXT | --file PATH) [flags] ADDR  or  ... --path LOCAL=REMOTE ...", stderr)
	message := fs.String("message", "", "send this text")
	file := fs.String("file", "", "send this file (- for standard input, streamed)")
	name := fs.String("name", "", "the name the receiver saves the file under (default: the file's base name; stdin for -)")
	sf := addSessionFlags(fs)
	single := fs.Bool("single", false, "use the single-path frame protocol (TEXT/DATA answered by ACK) instead of a session")
	frameSize := fs.String("frame-size", "1MiB", "with --single: DATA frame payload size for --file")
	timeout := fs.Duration("timeout", 0, "give up if the send has not completed after this long (0: no limit; a dead server or paths end it anyway: connecting, the handshake and every path have limits of their own)")
	of := addOutputFlags(fs)
	ct := addClientTrustFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*message == "") == (*file == "") {
		return usageError(fs, "give exactly one of --message or --file")
	}
	if *name != "" && *file == "" {
		return usageError(fs, "--name names a --file")
	}
	if err := of.check(fs); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	if *single {
		frame, err := parseSize(*frameSize)
		if err != nil || frame <= 0 {
			return usageError(fs, "--frame-size %q: want a positive size (e.g. 64KiB)", *frameSize)
		}
		if len(sf.specs) > 0 || fs.NArg() != 1 {
			return usageError(fs, "--single takes one address, not --path")
		}
		conf, err := ct.frameTLS(fs.Arg(0), stderr)
		if err != nil {
			return usageError(fs, "%v", err)
		}
		tctx, cancel := withSendTimeout(ctx, *timeout)
		defer cancel()
		return timeoutErr(tctx, *timeout, sendSingle(tctx, fs.Arg(0), *message, *file, frame, conf, log, stdout))
	}
	specs, cfg, err := sf.config(fs, fs.Args())
	if err != nil {
		return err
	}
	cfg.Logger = log
	if err := ct.apply(cfg, specs[0].Remote, stderr); err != nil {
		return usageError(fs, "%v", err)
	}

	// The input is opened, and refused if unusable, before any connection is.
	h := transferHeader{Kind: "message", Size: int64(len(*message))}
	var src io.Reader = strings.NewReader(*message)
	if *file != "" {
		f, size, err := openInput(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		h = transferHeader{Kind: "file", Name: *name, Size: size}
		if h.Name == "" {
			h.Name = filepath.Base(*file)
			if *file == "-" {
				h.Name = "stdin"
			}
		}
		src = f
	}
	var metrics *metricsServer
	if *of.metric != "" {
		if metrics, err = startMetrics(*of.metric, log); err != nil {
			return err
		}
		defer metrics.close()
	}

	tctx, cancel := withSendTimeout(ctx, *timeout)
	defer cancel()
	s, err := braid.DialPaths(tctx, specs, cfg)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "braid send: interrupted while connecting")
			return errInterrupted
		}
		metrics.dialFailed(err)
		return timeoutErr(tctx, *timeout, err)
	}
	defer s.Abort() // after Close, a no-op
	metrics.track(s)
	st := s.Stats()
	if of.text() {
		fmt.Fprintln(stdout, sessionLine(st, len(specs)))
	}
	hdr, _ := json.Marshal(h)
	base := st.BytesAcked + uint64(len(hdr)) // what the header costs of the acknowledged count
	var read atomic.Int64
	delivered := func() uint64 {
		acked := s.Stats().BytesAcked
		if acked < base {
			return 0
		}
		return min(acked-base, uint64(read.Load()))
	}
	stopLive := of.liveReport(stdout, stderr, h.Name, h.Size, s.Stats, sending, delivered)
	start := time.Now()
	rc, digest, err := sendInterruptible(tctx, s, h, src, &read)
	err = timeoutErr(tctx, *timeout, err)
	stopLive(err == nil)
	states := pathStates(s.Stats())
	if err == nil {
		err = s.Close()
	}
	el := time.Since(start)
	sm := &sendSummary{Command: "send", Session: st.ID, Mode: st.Mode, Scheduler: cfg.Scheduler, KeyExchange: bench.KeyExchanges(st.Paths),
		Kind: h.Kind, Name: h.Name, Size: h.Size, Seconds: el.Seconds(), SHA256: digest, Saved: rc.Saved}
	if err == nil {
		sm.Complete, sm.Delivered = true, rc.Bytes
	} else {
		sm.Delivered = int64(delivered())
		sm.Interrupted = ctx.Err() != nil
		sm.Error = errorText(err)
		sm.SHA256, sm.Saved = "", ""
		s.Abort()
	}
	sm.BitsPerSecond = float64(sm.Delivered) * 8 / max(el.Seconds(), 1e-9)
	sm.Paths = pathSummaries(s.Stats(), sending, states)
	switch {
	case *of.json:
		printJSON(stdout, sm)
	case !*of.quiet:
		sm.writeText(stdout)
	}
	if sm.Interrupted {
		return errInterrupted
	}
	return err
}

// withSendTimeout is ctx limited to d, if d > 0 (send --timeout).
func withSendTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// timeoutErr names --timeout in err when the limit it set is what ended the send (ctx's own
// deadline passed; an interrupt or the session's own limits are reported as they are).
func timeoutErr(ctx context.Context, d time.Duration, err error) error {
	if err != nil && d > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("gave up after --timeout %s: %w", d, err)
	}
	return err
}

// sendInterruptible is sendTransfer, ended when ctx is: a sender blocked reading its input
// (standard input with nothing to read) is not waited for beyond a moment.
func sendInterruptible(ctx context.Context, s *braid.Session, h transferHeader, src io.Reader, read *atomic.Int64) (transferReceipt, string, error) {
	type result struct {
		rc     transferReceipt
		digest string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		rc, digest, err := sendTransfer(ctx, s, h, src, read)
		done <- result{rc, digest, err}
	}()
	select {
	case r := <-done:
		return r.rc, r.digest, r.err
	case <-ctx.Done():
	}
	s.Abort()
	select {
	case r := <-done:
		return r.rc, r.digest, r.err
	case <-time.After(time.Second):
		return transferReceipt{}, "", ctx.Err()
	}
}

// stdin is what send --file - and cat read (tests replace it).
var stdin io.Reader = os.Stdin

// openInput opens a file to send and says how many bytes it has: a regular file's size, or
// unknownSize for standard input ("-") and other streams (pipes, devices), which are sent as
// they are read. A directory, or a file that cannot be opened, is refused here, before any
// connection is made.
func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(stdin), unknownSize, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	switch {
	case st.IsDir():
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory: send a file (or an archive of it: tar c DIR | braid send --file - --name DIR.tar ...)", name)
	case !st.Mode().IsRegular():
		return f, unknownSize, nil
	}
	// Read one byte to find an unreadable file now (a directory's read fails too, on some
	// systems, and a file may be open-able but not readable, e.g. on a broken disk).
	var one [1]byte
	if _, err := f.ReadAt(one[:], 0); err != nil && err != io.EOF {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// writePathTable prints each path's counters.
func writePathTable(w io.Writer, paths []braid.PathStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tlocal\tremote\tchunks sent\tbytes sent\tchunks received\tbytes received\t")
	var cs, bs, cr, br uint64
	for _, p := range paths {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t\n", p.Index, p.Local, p.Remote, p.ChunksSent, p.BytesSent, p.ChunksReceived, p.BytesReceived)
		cs, bs, cr, br = cs+p.ChunksSent, bs+p.BytesSent, cr+p.ChunksReceived, br+p.BytesReceived
	}
	fmt.Fprintf(tw, "all\t\t\t%d\t%d\t%d\t%d\t\n", cs, bs, cr, br)
	tw.Flush()
}

// sendSingle is the single-path frame protocol: TEXT or DATA frames, each answered by ACK.
func sendSingle(ctx context.Context, addr, message, file string, frameSize int, conf *tls.Config, log *slog.Logger, stdout io.Writer) error {
	var in io.ReadCloser
	if message == "" { // the file is checked before connecting
		f, _, err := openInput(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	c, err := frame.Dial(ctx, addr, &frame.Config{Logger: log, TLS: conf})
	if err != nil {
		return err
	}
	defer c.Close()
	if message != "" {
		ack, err := c.SendText(ctx, message)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ack from %s: %s #%d, %d bytes received\n", addr, ack.Acked, ack.Seq, ack.Bytes)
		return nil
	}
	res, err := c.Upload(ctx, in, frameSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ack from %s: %s sent as %d DATA frames of up to %s; %d bytes acknowledged in %v (%s)\n",
		addr, file, res.Frames, bench.Size(frameSize), res.Bytes, res.Duration.Round(time.Microsecond),
		bitrate(float64(res.Bytes)*8/max(res.Duration.Seconds(), 1e-9)))
	return nil
}
