package main

import (
	"context"
	"flag"
	"io"
	"strings"
	"time"

	"github.com/braidnet/braid/cmd/braid/internal/bench"
)

// tunnelBenchFlags are braid bench's flags for --tunnel.
type tunnelBenchFlags struct {
	on       bool
	paths    int
	streams  int
	requests int
	clients  int
	idle     int
}

func addTunnelBenchFlags(fs *flag.FlagSet) *tunnelBenchFlags {
	tb := &tunnelBenchFlags{}
	fs.BoolVar(&tb.on, "tunnel", false, "measure braid tunnel on loopback beside direct TCP: one bulk stream, parallel streams, request/response latency, memory per idle stream (with --volume, --runs, --security); with --sessions, every idle session but the first is a tunnel (a mux, no stream open) and answers through a stream")
	fs.IntVar(&tb.paths, "tunnel-paths", 4, "with --tunnel: paths of the tunnel's session")
	fs.IntVar(&tb.streams, "tunnel-streams", 64, "with --tunnel: parallel streams")
	fs.IntVar(&tb.requests, "tunnel-requests", 20000, "with --tunnel: request/response round trips per latency figure")
	fs.IntVar(&tb.clients, "tunnel-clients", 50, "with --tunnel: concurrent request/response clients (redis-benchmark's default is 50)")
	fs.IntVar(&tb.idle, "tunnel-idle", 2000, "with --tunnel: idle streams opened for the memory figure")
	return tb
}

// run is braid bench --tunnel; volume is --volume ("" for 1 GiB).
func (tb *tunnelBenchFlags) run(ctx context.Context, fs *flag.FlagSet, volume string, runs int, security string, asJSON bool, stdout io.Writer) error {
	if fs.NArg() != 0 {
		return usageError(fs, "--tunnel runs on loopback and takes no address")
	}
	if volume == "" {
		volume = "1GiB"
	}
	vol, err := parseSize(volume)
	if err != nil || vol < 1<<20 {
		return usageError(fs, "--volume: want at least 1MiB")
	}
	if tb.paths < 1 || tb.streams < 1 || tb.requests < 1 || tb.clients < 1 || tb.idle < 1 {
		return usageError(fs, "--tunnel-paths, -streams, -requests, -clients and -idle must be positive")
	}
	rep, err := bench.RunTunnel(ctx, bench.TunnelOptions{Paths: tb.paths, Security: strings.Split(security, ","),
		Volume: int64(vol), Streams: tb.streams, Runs: runs, Requests: tb.requests, Clients: tb.clients,
		Idle: tb.idle, MaxTime: 5 * time.Minute})
	if err != nil {
		return err
	}
	return printReport(stdout, asJSON, rep, rep.WriteTable)
}
