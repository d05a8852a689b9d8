package main

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/braidnet/braid"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "[flags]", stderr)
	listen := fs.String("listen", "127.0.0.1:7878", "address to listen on")
	maxFrame := fs.Int("max-frame", 0, "largest frame payload accepted, bytes (0: 16 MiB)")
	idle := fs.Duration("idle-timeout", 2*time.Minute, "close connections idle this long")
	readTimeout := fs.Duration("read-timeout", 30*time.Second, "close connections that take longer to send one frame")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this long for in-flight frames")
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	srv, err := braid.NewServer(&braid.Config{MaxFrameSize: *maxFrame, IdleTimeout: *idle, ReadTimeout: *readTimeout, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, braid.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
