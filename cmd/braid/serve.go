package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/wire"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "[flags]", stderr)
	listen := fs.String("listen", "127.0.0.1:7878", "address to listen on")
	out := fs.String("out", "", "save received files in this directory (default: count and hash only)")
	maxFrame := fs.String("max-frame", "16MiB", "largest frame payload accepted")
	idle := fs.Duration("idle-timeout", 2*time.Minute, "close connections idle this long")
	readTimeout := fs.Duration("read-timeout", 30*time.Second, "close connections that take longer to send one frame")
	maxPaths := fs.Int("max-paths", 16, "most paths per session")
	maxSessions := fs.Int("max-sessions", 1024, "most sessions at once")
	maxConns := fs.Int("max-conns", 16384, "most connections open at once (keep below the open-file limit)")
	maxConnsPerIP := fs.Int("max-conns-per-ip", 1024, "most connections open at once from one IP address")
	window := fs.String("window", "64MiB", "receive budget per session")
	maxMemory := fs.String("max-memory", "", "memory budget for all sessions' receive windows together (default: half the RAM)")
	maxHandshakes := fs.Int("max-handshakes", 256, "most connections at once that have not finished their TLS and session handshakes")
	maxHandshakesPerIP := fs.Int("max-handshakes-per-ip", 32, "most of those from one IP address")
	maxPendingPerIP := fs.Int("max-pending-sessions-per-ip", 16, "most sessions from one IP address not yet established (no frame since opening)")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this long for sessions and in-flight frames")
	idleKeepAlive := fs.Duration("idle-keepalive", 0, "how often a path of an idle session sends a PING (0: 25s); an idle path is dead after 4s + twice this of silence")
	resume := fs.Duration("grace", 30*time.Second, "how long a session survives with every path down, waiting for the client to re-dial, before it fails")
	overwrite := fs.Bool("overwrite", false, "replace an existing file of the name a sender gives (default: save as NAME.1, NAME.2, ... before the extension)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9090)")
	metricsSessions := fs.Int("metrics-sessions", 1000, "with --metrics: most sessions exported with series of their own, per session and per path (those whose ids sort first; -1: all); totals always cover all")
	releaseMemory := fs.Duration("release-memory", 10*time.Second, "after this long allocating little, return the heap memory the server no longer uses to the OS, as after a burst of sessions (0: leave it to the Go runtime, which keeps up to about twice the live heap)")
	asJSON := fs.Bool("json", false, "on exit, print a summary of what was received as JSON")
	serverID := fs.String("server-id", "", "behind a load balancer: this server's id, 1 to 7 bytes in hex (e.g. 01), carried in every session id and in the TLS server name of every attaching path (docs/DEPLOY.md)")
	serverIDConfig := fs.Int("server-id-config", 0, "with --server-id: the config rotation codepoint (0 to 6) written beside it")
	st := addServerTrustFlags(fs)
	tf := addTunnelServeFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	log, err := lf.serverLogger(stderr)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	frameMax, err := parseSize(*maxFrame)
	if err != nil || frameMax <= 0 {
		return usageError(fs, "--max-frame %q: want a positive size (e.g. 16MiB)", *maxFrame)
	}
	win, err := parseSize(*window)
	if err != nil {
		return usageError(fs, "--window: %v", err)
	}
	var mem int
	if *maxMemory != "" {
		if mem, err = parseSize(*maxMemory); err != nil {
			return usageError(fs, "--max-memory: %v", err)
		}
	}
	if *out != "" {
		if st, err := os.Stat(*out); err != nil || !st.IsDir() {
			return usageError(fs, "--out %q is not a directory", *out)
		}
	}
	if *idleKeepAlive < 0 {
		return usageError(fs, "--idle-keepalive must not be negative")
	}
	if *releaseMemory < 0 {
		return usageError(fs, "--release-memory must not be negative")
	}
	if *resume <= 0 {
		return usageError(fs, "--grace must be positive")
	}
	var sid []byte
	if *serverID != "" {
		if sid, err = hex.DecodeString(*serverID); err != nil || len(sid) == 0 {
			return usageError(fs, "--server-id %q: want 1 to %d bytes in hex", *serverID, wire.MaxServerIDSize)
		}
	}
	if err := wire.CheckRoute(*serverIDConfig, sid); err != nil {
		return usageError(fs, "--server-id: %v", err)
	}
	if sid == nil && *serverIDConfig != 0 {
		return usageError(fs, "--server-id-config needs --server-id")
	}
	cfg := &braid.Config{MaxFrameSize: frameMax, IdleTimeout: *idle, ReadTimeout: *readTimeout,
		MaxPaths: *maxPaths, MaxSessions: *maxSessions, MaxConns: *maxConns, MaxConnsPerIP: *maxConnsPerIP,
		MaxHandshakes: *maxHandshakes, MaxHandshakesPerIP: *maxHandshakesPerIP, MaxPendingSessionsPerIP: *maxPendingPerIP,
		SessionWindow: int64(win), MaxMemory: int64(mem), ResumeGrace: *resume, IdleKeepAlive: *idleKeepAlive, Logger: log,
		ServerID: sid, ServerIDConfig: *serverIDConfig}

	info := stdout
	if tf.stdout {
		info = stderr // standard output carries tunnel streams
	}
	if err := st.apply(cfg, info); err != nil {
		return usageError(fs, "%v", err)
	}
	tsv, err := tf.server(stdout, log)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	var metrics *metricsServer
	if *metricsAddr != "" {
		if metrics, err = startMetrics(*metricsAddr, log); err != nil {
			return err
		}
		defer metrics.close()
		metrics.c.SessionSeries(*metricsSessions)
	}
	l, err := braid.Listen(*listen, cfg)
	if err != nil {
		return err
	}
	// Once listening: a server that could not bind has no fingerprint for clients to pin.
	if fp := l.Fingerprint(); fp != "" {
		fmt.Fprintf(info, "server fingerprint %s (clients: --server-fingerprint %s)\n", fp, fp)
	}
	metrics.setListener(l)
	if *releaseMemory > 0 {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go releaseIdleMemory(rctx, *releaseMemory, log)
	}
	tally := newServeTally()
	rx := &receiver{outDir: *out, overwrite: *overwrite, log: log, tally: tally}
	var wg sync.WaitGroup
	for {
		s, err := l.Accept(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, braid.ErrServerClosed) {
				log.Error("accept", "err", err)
			}
			break
		}
		metrics.track(s)
		tally.session()
		wg.Add(1)
		v := &servedSession{ctx: ctx, s: s, rx: rx, tf: tf, tsv: tsv, log: log, end: func(err error) {
			if err != nil && ctx.Err() == nil {
				log.Warn("session ended with an error", "session", s.ID(), "err", err)
			}
			s.Close()
			wg.Done()
		}}
		v.wait() // Shutdown closes the session, which runs its step if it waits
	}
	log.Info("shutting down", "timeout", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	err = l.Shutdown(sctx)
	wg.Wait()
	if *asJSON {
		printJSON(stdout, tally.summary(l.Addr().String(), l.Stats()))
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
