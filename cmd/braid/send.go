package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/bench"
)

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send", "(--message TEXT | --file PATH) ADDR", stderr)
	message := fs.String("message", "", "send this text as a TEXT frame")
	file := fs.String("file", "", "send this file as DATA frames (- for standard input)")
	frame := fs.Int("frame-size", 1<<20, "DATA frame payload size for --file, bytes")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "need exactly one server address")
	}
	if (*message == "") == (*file == "") {
		return usageError(fs, "give exactly one of --message or --file")
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	addr := fs.Arg(0)
	c, err := braid.DialClient(ctx, addr, &braid.Config{Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()

	if *message != "" {
		ack, err := c.SendText(ctx, *message)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ack from %s: %s #%d, %d bytes received\n", addr, ack.Acked, ack.Seq, ack.Bytes)
		return nil
	}
	var src io.Reader = os.Stdin
	name := "standard input"
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		src, name = f, *file
	}
	res, err := c.Upload(ctx, src, *frame)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ack from %s: %s sent as %d DATA frames of up to %s; %d bytes acknowledged in %v (%.1f MiB/s)\n",
		addr, name, res.Frames, bench.Size(*frame), res.Bytes, res.Duration.Round(time.Microsecond),
		float64(res.Bytes)/(1<<20)/max(res.Duration.Seconds(), 1e-9))
	return nil
}
