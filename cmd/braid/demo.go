package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/tap"
)

// demoLine is the demo file's text, repeated.
const demoLine = "braid demo: the quick brown fox jumps over the lazy dog\n"

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[flags]", stderr)
	size := fs.String("size", "16MiB", "size of the file sent over the session")
	paths := fs.Int("paths", 4, "paths in the session (a coded mode uses N)")
	mode := fs.String("mode", "plain", "dispersal mode: plain, redundant, shamir:K/N, erasure:K/N or aont:K/N")
	quiet := fs.Bool("q", false, "do not trace frames and path events")
	insecure := fs.Bool("insecure", false, "plain TCP instead of TLS, to see what the dispersal mode alone hides")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return usageError(fs, "--size: %v", err)
	}
	m, err := disperse.Parse(*mode)
	if err != nil {
		return usageError(fs, "--mode: %v", err)
	}
	if m.Coded() && !flagSet(fs, "paths") {
		*paths = m.N
	}
	if *paths < 1 {
		return usageError(fs, "--paths must be at least 1")
	}
	if m.Coded() && *paths != m.N {
		return usageError(fs, "--mode %s needs %d paths, not %d", m, m.N, *paths)
	}
	out := &lockedWriter{w: stdout} // the two sides' log handlers and the narration share it
	// Part 1 traces every frame; part 2 only path and session events, since a file is hundreds
	// of chunk frames.
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	if *quiet {
		level.Set(slog.LevelWarn)
	}
	// The trace reads as a conversation: no timestamps or levels.
	trace := func(who string) *slog.Logger {
		h := slog.NewTextHandler(out, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		}})
		return slog.New(h).With("who", who)
	}
	serverLog, clientLog := trace("server"), trace("client")

	// The server records the first bytes each connection brings, to show what one path carries.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	taps := &tap.Listener{Listener: ln, Limit: 1 << 20}
	l, err := braid.NewListener(taps, &braid.Config{Logger: serverLog, Insecure: *insecure})
	if err != nil {
		ln.Close()
		return err
	}
	defer l.Close()
	addr := l.Addr().String()
	var pin *tls.Config
	if *insecure {
		fmt.Fprintf(out, "== braid demo: server on %s, plain TCP (--insecure)\n", addr)
	} else {
		fmt.Fprintf(out, "== braid demo: server on %s, TLS 1.3, ephemeral identity %s (the client pins it)\n", addr, l.Fingerprint())
		if pin, err = braid.PinnedTLS(l.Fingerprint()); err != nil {
			return err
		}
	}

	// Part 1: the frame protocol on one connection, every frame traced.
	fmt.Fprintln(out, "\n== one path: ping and a text message, frame by frame")
	c, err := frame.Dial(ctx, addr, &frame.Config{Logger: clientLog, TLS: pin})
	if err != nil {
		return err
	}
	rtt, err := c.Ping(ctx, []byte("demo-probe"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ping: round trip %v\n", rtt.Round(time.Microsecond))
	ack, err := c.SendText(ctx, "hello from the braid demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "text: acknowledged as %s #%d, %d bytes\n", ack.Acked, ack.Seq, ack.Bytes)
	c.Close()

	// Part 2: a session over several paths; chunk frames are too many to trace, so path
	// events are shown instead.
	if !*quiet {
		level.Set(slog.LevelInfo)
	}
	fmt.Fprintf(out, "\n== a session over %s, mode %s: a message and a %s text file\n", bench.Count(*paths, "path"), m, *size)
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		s, err := l.Accept(ctx)
		if err != nil {
			serveErr = err
			return
		}
		serveErr = (&receiver{log: serverLog}).receiveTransfers(ctx, s)
		s.Close()
	}()
	before := len(taps.Conns()) // part 1's connection
	s, err := braid.Dial(ctx, addr, &braid.Config{Paths: *paths, Mode: m.String(), Logger: clientLog,
		Insecure: *insecure, ServerFingerprint: l.Fingerprint()})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "session %s: key exchange %s\n", s.ID(), bench.KeyExchanges(s.Stats().Paths))

	msg := "a message, chunked and striped across the paths"
	if _, digest, err := sendTransfer(ctx, s, transferHeader{Kind: "message", Size: int64(len(msg))}, bytes.NewReader([]byte(msg)), new(atomic.Int64)); err != nil {
		return err
	} else {
		fmt.Fprintf(out, "message: %d bytes, receiver verified sha256 %s\n", len(msg), digest)
	}
	// A plaintext as structured as can be, so that what the paths carry is easy to judge.
	file := bytes.Repeat([]byte(demoLine), n/len(demoLine)+1)[:n]
	start := time.Now()
	rc, digest, err := sendTransfer(ctx, s, transferHeader{Kind: "file", Name: "demo.bin", Size: int64(n)}, bytes.NewReader(file), new(atomic.Int64))
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(out, "file: %d bytes in %v (%s), receiver verified sha256 %s\n",
		rc.Bytes, el.Round(time.Microsecond), bitrate(float64(rc.Bytes)*8/max(el.Seconds(), 1e-9)), digest)
	if err := s.Close(); err != nil {
		return err
	}
	wg.Wait()
	if serveErr != nil {
		return serveErr
	}
	how := ""
	if m.Coded() {
		how = fmt.Sprintf(", each sent as %d pieces, one per path", m.N)
	}
	cs := s.Stats().ChunkSize
	fmt.Fprintf(out, "\n== chunks and bytes per path (client side; the file is %d chunks of %d bytes%s)\n", (n+cs-1)/cs, cs, how)
	writePathTable(out, s.Stats().Paths)
	fmt.Fprintf(out, "\n== what each path carried: the first %s the server read on each connection\n", bench.Size(taps.Limit))
	writeTapTable(out, sessionTaps(taps, before, !*insecure), !*insecure)
	fmt.Fprintln(out, "\n== done")
	return nil
}

// lockedWriter serialises writes from several log handlers onto one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
