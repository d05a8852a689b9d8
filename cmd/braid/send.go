package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "(--message TEXT | --file PATH) [--paths N] ADDR  or  ... --path LOCAL=REMOTE ...", stderr)
	message := fs.String("message", "", "send this text")
	file := fs.String("file", "", "send this file (- for standard input)")
	paths := fs.Int("paths", 4, "number of paths (connections) to ADDR")
	var specs pathFlags
	fs.Var(&specs, "path", "a path as LOCAL=REMOTE (local bind address, server address); repeat for each path")
	chunk := fs.String("chunk-size", "256KiB", "chunk size to propose")
	mode := fs.String("mode", "plain", "dispersal mode: plain, redundant, shamir:K/N or erasure:K/N (coded modes use N paths)")
	single := fs.Bool("single", false, "use the single-path frame protocol (TEXT/DATA answered by ACK) instead of a session")
	frame := fs.Int("frame-size", 1<<20, "with --single: DATA frame payload size for --file, bytes")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	ct := addClientTrustFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*message == "") == (*file == "") {
		return usageError(fs, "give exactly one of --message or --file")
	}
	if len(specs) == 0 && fs.NArg() != 1 || len(specs) > 0 && fs.NArg() != 0 {
		return usageError(fs, "need exactly one server address, or --path flags")
	}
	cs, err := parseSize(*chunk)
	if err != nil {
		return usageError(fs, "--chunk-size: %v", err)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *single {
		if len(specs) > 0 {
			return usageError(fs, "--single takes an address, not --path")
		}
		conf, err := ct.frameTLS(fs.Arg(0), stderr)
		if err != nil {
			return usageError(fs, "%v", err)
		}
		return sendSingle(ctx, fs.Arg(0), *message, *file, *frame, conf, log, stdout)
	}

	m, err := disperse.Parse(*mode)
	if err != nil {
		return usageError(fs, "--mode: %v", err)
	}
	if m.Coded() && !flagSet(fs, "paths") {
		*paths = m.N
	}
	if len(specs) == 0 {
		if *paths < 1 {
			return usageError(fs, "--paths must be at least 1")
		}
		for range *paths {
			specs = append(specs, braid.PathSpec{Remote: fs.Arg(0)})
		}
	}
	if m.Coded() && len(specs) != m.N {
		return usageError(fs, "--mode %s needs %d paths, got %d", m, m.N, len(specs))
	}
	cfg := &braid.Config{ChunkSize: cs, Mode: m.String(), Paths: len(specs), Logger: log}
	if err := ct.apply(cfg, specs[0].Remote, stderr); err != nil {
		return usageError(fs, "%v", err)
	}
	s, err := braid.DialPaths(ctx, specs, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	st := s.Stats()
	fmt.Fprintf(stdout, "session %s: %d paths, %s chunks, mode %s, key exchange %s\n", st.ID, len(st.Paths), bench.Size(st.ChunkSize), st.Mode, bench.KeyExchanges(st.Paths))

	start := time.Now()
	var h transferHeader
	var src io.Reader
	if *message != "" {
		h, src = transferHeader{Kind: "message", Size: int64(len(*message))}, strings.NewReader(*message)
	} else {
		f, size, err := openInput(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		h, src = transferHeader{Kind: "file", Name: filepath.Base(*file), Size: size}, f
	}
	rc, digest, err := sendTransfer(ctx, s, h, src)
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "sent %s (%d bytes) in %v, %.1f MiB/s; receiver verified sha256 %s\n",
		h.Kind, rc.Bytes, el.Round(time.Microsecond), float64(rc.Bytes)/(1<<20)/max(el.Seconds(), 1e-9), digest)
	if rc.Saved != "" {
		fmt.Fprintf(stdout, "saved by the receiver as %s\n", rc.Saved)
	}
	if err := s.Close(); err != nil {
		return err
	}
	writePathTable(stdout, s.Stats().Paths)
	return nil
}

// openInput opens a file, or standard input ("-") read fully so its size is known.
func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		data, err := io.ReadAll(os.Stdin)
		return io.NopCloser(strings.NewReader(string(data))), int64(len(data)), err
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
	f, _, err := openInput(file)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := c.Upload(ctx, f, frameSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ack from %s: %s sent as %d DATA frames of up to %s; %d bytes acknowledged in %v (%.1f MiB/s)\n",
		addr, file, res.Frames, bench.Size(frameSize), res.Bytes, res.Duration.Round(time.Microsecond),
		float64(res.Bytes)/(1<<20)/max(res.Duration.Seconds(), 1e-9))
	return nil
}
