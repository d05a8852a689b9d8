package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/braidnet/braid"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[flags]", stderr)
	size := fs.Int("size", 8<<20, "bytes in the bulk transfer")
	quiet := fs.Bool("q", false, "do not show frames on the wire")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *size < 0 {
		return usageError(fs, "--size must not be negative")
	}
	// The wire trace: every frame each side sends or receives, without timestamps so the
	// output reads as a conversation.
	level := slog.LevelDebug
	if *quiet {
		level = slog.LevelWarn
	}
	out := &lockedWriter{w: stdout} // the two sides' handlers share it
	trace := func(side string) *slog.Logger {
		h := slog.NewTextHandler(out, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		}})
		return slog.New(h).With("side", side)
	}

	srv, err := braid.NewServer(&braid.Config{Logger: trace("server")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	fmt.Fprintf(out, "== braid demo: server on %s, one client\n", addr)

	c, err := braid.DialClient(ctx, addr, &braid.Config{Logger: trace("client")})
	if err != nil {
		return err
	}
	defer c.Close()

	fmt.Fprintln(out, "\n== ping")
	rtt, err := c.Ping(ctx, []byte("demo-probe"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "round trip %v\n", rtt.Round(time.Microsecond))

	fmt.Fprintln(out, "\n== text message")
	ack, err := c.SendText(ctx, "hello from the braid demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "acknowledged: %s #%d, %d bytes\n", ack.Acked, ack.Seq, ack.Bytes)

	fmt.Fprintf(out, "\n== bulk transfer: %d random bytes as 1 MiB DATA frames\n", *size)
	payload := make([]byte, *size)
	rand.Read(payload)
	res, err := c.Upload(ctx, bytes.NewReader(payload), 1<<20)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(payload)
	fmt.Fprintf(out, "%d frames, %d bytes acknowledged in %v (%.0f MiB/s), sha256 %x\n",
		res.Frames, res.Bytes, res.Duration.Round(time.Microsecond), float64(res.Bytes)/(1<<20)/max(res.Duration.Seconds(), 1e-9), sum[:8])
	if res.Bytes != int64(*size) {
		return fmt.Errorf("server acknowledged %d of %d bytes", res.Bytes, *size)
	}
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
