package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
	"github.com/braidnet/braid/internal/tunnel"
	"github.com/braidnet/braid/mux"
)

// braid bench --sessions N: many idle sessions on one server. The server is a `braid serve`
// child process (a process may hold 20,000 open files here, and N sessions of 2 paths need 2N at
// each end), measured from outside through /proc: its resident memory and CPU time while the
// sessions idle.

// Parameters of the many-sessions benchmark.
const (
	sessionsDialers  = 96       // Dials at once (a client opening sessions in bulk)
	sessionsWindow   = 64 << 20 // receive window of every session, both ends (the default)
	sessionsTransfer = 64 << 20 // bytes of the transfer on one session, with and without the idle ones
	sessionsRuns     = 7        // transfers per case; the median is reported
	sessionsBaseline = 3000     // most sessions set up by the baseline (bench.HandshakeBaseline)
	clockTicks       = 100      // USER_HZ: the unit of /proc/PID/stat's times on Linux
)

// sessionsOptions configures a many-sessions run.
type sessionsOptions struct {
	counts []int         // session counts, one server each
	idle   time.Duration // how long the sessions idle before every one is asked to answer
	// idleKeepAlive is Config.IdleKeepAlive at both ends (0: the default)
	idleKeepAlive time.Duration
	// releaseMemory is the server's --release-memory (0: off)
	releaseMemory time.Duration
	insecure      bool // plain TCP instead of TLS
	clientAddrs   int  // loopback addresses the client's sessions come from (sourceAddr)
	// tunnel makes every session but the first (the transfer's) a tunnel: a mux, as braid
	// tunnel opens, with no stream open while it idles; it answers through a stream to an echo
	// target the server allows.
	tunnel   bool
	argv     []string  // the command that runs braid (its serve subcommand is added)
	env      []string  // extra environment of the server process
	progress io.Writer // one line per step
}

// sessionsRow is one session count's results.
type sessionsRow struct {
	Sessions          int     `json:"sessions"`
	Established       int     `json:"established"`
	AttachFailures    int     `json:"attach_failures"`
	FirstFailure      string  `json:"first_failure,omitempty"`
	SetupSeconds      float64 `json:"setup_seconds"`
	SessionsPerSecond float64 `json:"sessions_per_second"`
	// BaselinePerSecond is the same setup without Braid (bench.HandshakeBaseline), same run.
	BaselinePerSecond float64 `json:"baseline_sessions_per_second"`
	SetupRatio        float64 `json:"setup_ratio"`           // SessionsPerSecond ÷ BaselinePerSecond
	RSSBaseBytes      int64   `json:"server_rss_base_bytes"` // with one session
	RSSBytes          int64   `json:"server_rss_bytes"`      // at the end of the idle period
	RSSPerSession     float64 `json:"server_rss_per_session_bytes"`
	// The server's Go runtime (its metrics endpoint): its goroutines at the end of the idle
	// period, and growth from one session to all, per session.
	ServerGoroutines     float64 `json:"server_goroutines"`
	GoroutinesPerSession float64 `json:"server_goroutines_per_session"`
	HeapPerSession       float64 `json:"server_heap_inuse_per_session_bytes"`
	StackPerSession      float64 `json:"server_stack_inuse_per_session_bytes"`
	IdleSeconds          float64 `json:"idle_seconds"`
	IdleCPUPercent       float64 `json:"server_idle_cpu_percent"` // of one core, over the whole idle period
	// SettledCPUPercent is over the last three quarters of the idle period: the first lets
	// the server finish with the handshakes (garbage collection, memory given back to the OS).
	SettledCPUPercent float64 `json:"server_settled_idle_cpu_percent"`
	Answered          int     `json:"answered"`
	AnswerFailures    int     `json:"answer_failures"`
	FirstAnswerError  string  `json:"first_answer_error,omitempty"`
	BaselineBPS       float64 `json:"transfer_alone_bits_per_second"`
	IdleBPS           float64 `json:"transfer_among_idle_bits_per_second"`
	TransferRatio     float64 `json:"transfer_ratio"`
	CloseSeconds      float64 `json:"close_seconds"` // closing all of them, sessionsDialers at a time
}

// sessionsReport is what braid bench --sessions prints.
type sessionsReport struct {
	Command       string        `json:"command"` // "bench"
	Security      string        `json:"security"`
	IdleKeepAlive string        `json:"idle_keepalive"`
	ReleaseMemory string        `json:"release_memory"` // the server's --release-memory, or "off"
	Paths         int           `json:"paths"`
	Tunnel        bool          `json:"tunnel"` // the idle sessions are tunnels (sessionsOptions.tunnel)
	Dialers       int           `json:"concurrent_dials"`
	ClientAddrs   int           `json:"client_addrs"` // loopback addresses the sessions came from
	WindowBytes   int           `json:"window_bytes"`
	TransferBytes int           `json:"transfer_bytes"`
	Rows          []sessionsRow `json:"rows"`
}

// writeText prints the report as a table.
func (r *sessionsReport) writeText(w io.Writer) {
	kind := "sessions"
	if r.Tunnel {
		kind = "tunnel sessions (a mux each, no stream open; each answers through a stream to an echo target)"
	}
	fmt.Fprintf(w, "idle %s on one braid serve (child process): %d paths each, %s, %d dials at once from %d loopback address(es), window %d KiB, idle keepalive %s, server --release-memory %s;\n",
		kind, r.Paths, r.Security, r.Dialers, r.ClientAddrs, r.WindowBytes>>10, r.IdleKeepAlive, r.ReleaseMemory)
	fmt.Fprintf(w, "transfer: %d MiB on one session among the idle ones ÷ the same alone (same run, median of %d)\n", r.TransferBytes>>20, sessionsRuns)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sessions\tup\tfailed\tsessions/s\tbaseline/s\t÷ baseline\tRSS MiB\tKiB/session\theap\tstacks\tgoroutines\tidle s\tidle CPU %\tsettled %\tanswered\ttransfer ÷ alone\tclose s\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%.2f\t%.2f\t%d/%d\t%.2f\t%.2f\t\n", row.Sessions, row.Established, row.AttachFailures,
			row.SessionsPerSecond, row.BaselinePerSecond, row.SetupRatio, float64(row.RSSBytes)/(1<<20), row.RSSPerSession/1024,
			row.HeapPerSession/1024, row.StackPerSession/1024, row.GoroutinesPerSession, row.IdleSeconds, row.IdleCPUPercent,
			row.SettledCPUPercent, row.Answered, row.Established, row.TransferRatio, row.CloseSeconds)
	}
	tw.Flush()
	fmt.Fprintln(w, "(baseline/s: the same setup without Braid in the same run, two crypto/tls handshakes per session with a Braid path's")
	fmt.Fprintln(w, " TLS settings, or two TCP connects when insecure; KiB/session: server RSS growth from 1 session to all, per session,")
	fmt.Fprintln(w, " of which heap and stacks (KiB) and goroutines are the server's Go runtime's own growth per session; idle CPU: server")
	fmt.Fprintln(w, " utime+stime over the idle period, % of one core; settled: over its last three quarters, the first having let the")
	fmt.Fprintln(w, " server finish with the handshakes)")
	for _, row := range r.Rows {
		if row.FirstFailure != "" {
			fmt.Fprintf(w, "%d sessions: first attach failure: %s\n", row.Sessions, row.FirstFailure)
		}
		if row.FirstAnswerError != "" {
			fmt.Fprintf(w, "%d sessions: first session not answering: %s\n", row.Sessions, row.FirstAnswerError)
		}
	}
}

// defaultClientAddrs is bench --client-addrs' default: 64 on Linux, where all of 127.0.0.0/8
// is the loopback interface's; elsewhere only 127.0.0.1 may be.
func defaultClientAddrs() int {
	if runtime.GOOS == "linux" {
		return 64
	}
	return 1
}

// sourceAddr is the local address the i-th session's paths are bound to when the client's
// sessions come from n loopback addresses (127.0.0.2 and up), as many clients' would; "" (the
// kernel's choice, 127.0.0.1) when n <= 1. From one address, the kernel's search for a free
// source port towards the one server port grows with the connections open: at 18,000 it took
// a fifth of the client's CPU time during the setup, and the setup rate fell with it, though no
// deployment has one client hold that many paths.
func sourceAddr(i, n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", 2+i%n)
}

// benchSessions runs the many-sessions benchmark for every count in o.counts.
func benchSessions(ctx context.Context, o sessionsOptions) (*sessionsReport, error) {
	raiseFileLimit()
	ka := "25s (default)"
	if o.idleKeepAlive > 0 {
		ka = o.idleKeepAlive.String()
	}
	rel := "off"
	if o.releaseMemory > 0 {
		rel = o.releaseMemory.String()
	}
	rep := &sessionsReport{Command: "bench", Security: "tls", IdleKeepAlive: ka, ReleaseMemory: rel, Paths: 2, Tunnel: o.tunnel, Dialers: sessionsDialers, ClientAddrs: max(o.clientAddrs, 1), WindowBytes: sessionsWindow, TransferBytes: sessionsTransfer}
	if o.insecure {
		rep.Security = "insecure"
	}
	for _, n := range o.counts {
		row, err := sessionsOnce(ctx, o, n)
		if err != nil {
			return nil, fmt.Errorf("%d sessions: %w", n, err)
		}
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

// benchServer is a braid serve child process.
type benchServer struct {
	cmd         *exec.Cmd
	exited      chan struct{} // closed when the process has ended
	addr        string
	metricsAddr string // its --metrics endpoint
	fingerprint string
	stderr      *tailBuffer
}

// startBenchServer starts braid serve for n sessions on a free loopback port; allow, if not
// empty, is the one tunnel target it allows.
func startBenchServer(ctx context.Context, o sessionsOptions, n int, allow string) (*benchServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metricsAddr := mln.Addr().String()
	mln.Close()
	dir, err := os.MkdirTemp("", "braid-bench-sessions")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // the identity is read at start
	conns := strconv.Itoa(2*n + 64)
	args := append(slices.Clone(o.argv[1:]), "serve", "--listen", addr, "--max-sessions", strconv.Itoa(n+16),
		"--max-conns", conns, "--max-conns-per-ip", conns, "--max-handshakes", "512", "--max-handshakes-per-ip", "512",
		"--max-pending-sessions-per-ip", "512", "--window", strconv.Itoa(sessionsWindow),
		"--max-memory", strconv.Itoa((n+16)*sessionsWindow), "--log-format", "text", "--idle-keepalive", o.idleKeepAlive.String(), "--release-memory", o.releaseMemory.String(),
		"--metrics", metricsAddr, "--metrics-sessions", "0")
	if allow != "" {
		args = append(args, "--allow", allow)
	}
	if o.insecure {
		args = append(args, "--insecure")
	} else {
		args = append(args, "--identity", filepath.Join(dir, "id"))
	}
	cmd := exec.CommandContext(ctx, o.argv[0], args...)
	cmd.Env = append(os.Environ(), o.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	srv := &benchServer{cmd: cmd, addr: addr, metricsAddr: metricsAddr, stderr: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = srv.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(srv.exited)
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	fpRE := regexp.MustCompile(`server fingerprint (SHA256:\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !o.insecure && srv.fingerprint == "" {
			select {
			case l, ok := <-lines:
				if !ok {
					srv.stop()
					return nil, fmt.Errorf("braid serve ended: %s", srv.stderr.String())
				}
				if m := fpRE.FindStringSubmatch(l); m != nil {
					srv.fingerprint = m[1]
				}
				continue
			case <-time.After(100 * time.Millisecond):
			}
		} else if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return srv, nil
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("braid serve ended: %s", srv.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("braid serve did not start within 30s: %s", srv.stderr.String())
		}
	}
}

// stop ends the server process.
func (s *benchServer) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// rss returns the server's resident memory in bytes.
func (s *benchServer) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpu returns the server's CPU time so far (user and system).
func (s *benchServer) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are counted after it.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// sessionsOnce measures n sessions on a server of their own.
func sessionsOnce(ctx context.Context, o sessionsOptions, n int) (sessionsRow, error) {
	row := sessionsRow{Sessions: n}
	say := func(format string, args ...any) {
		if o.progress != nil {
			fmt.Fprintf(o.progress, "bench --sessions %d: "+format+"\n", append([]any{n}, args...)...)
		}
	}
	var echo string // the tunnel sessions' target
	if o.tunnel {
		ln, err := startEcho()
		if err != nil {
			return row, err
		}
		defer ln.Close()
		echo = ln.Addr().String()
	}
	srv, err := startBenchServer(ctx, o, n, echo)
	if err != nil {
		return row, err
	}
	defer srv.stop()
	cfg := &braid.Config{Paths: 2, SessionWindow: sessionsWindow, IdleKeepAlive: o.idleKeepAlive, Logger: slog.New(slog.DiscardHandler),
		Insecure: o.insecure, ServerFingerprint: srv.fingerprint}
	specsFor := func(i int) []braid.PathSpec {
		src := sourceAddr(i, o.clientAddrs)
		return []braid.PathSpec{{Local: src, Remote: srv.addr}, {Local: src, Remote: srv.addr}}
	}

	// The transfer session, measured alone first.
	first, err := braid.DialPaths(ctx, specsFor(0), cfg)
	if err != nil {
		return row, fmt.Errorf("first session: %w", err)
	}
	// The base (RSS, runtime) is taken before the transfer: the server may give back what the
	// transfer grew (the memory releaser) by the time the sessions idle, which a base taken after
	// it would count in their favour.
	if row.RSSBaseBytes, err = srv.rss(); err != nil {
		return row, err
	}
	rt0, err := scrapeRuntime(ctx, srv.metricsAddr)
	if err != nil {
		return row, err
	}
	if row.BaselineBPS, err = transferRate(ctx, first); err != nil {
		return row, fmt.Errorf("transfer alone: %w", err)
	}
	say("transfer alone %s", bitrate(row.BaselineBPS))

	// What the same setup costs without Braid, on the same cores just before.
	if row.BaselinePerSecond, err = bench.HandshakeBaseline(ctx, min(n, sessionsBaseline), sessionsDialers, o.insecure,
		func(i int) string { return sourceAddr(i, o.clientAddrs) }); err != nil {
		return row, err
	}
	say("baseline: %.0f sessions/s", row.BaselinePerSecond)

	// The others, sessionsDialers at a time.
	sessions := make([]*braid.Session, n)
	muxes := make([]*mux.Mux, n) // with o.tunnel, every session's but the first
	sessions[0] = first
	mcfg := &mux.Config{Logger: cfg.Logger}
	var (
		failures atomic.Int64
		firstErr atomic.Value
	)
	start := time.Now()
	eachConcurrently(ctx, 1, n, func(i int) {
		var s *braid.Session
		var m *mux.Mux
		var err error
		if o.tunnel {
			s, m, err = tunnel.Dial(ctx, specsFor(i), cfg, mcfg)
		} else {
			s, err = braid.DialPaths(ctx, specsFor(i), cfg)
		}
		if err != nil {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		sessions[i], muxes[i] = s, m
	})
	el := time.Since(start)
	if err := ctx.Err(); err != nil {
		return row, err
	}
	row.AttachFailures = int(failures.Load())
	row.Established = n - row.AttachFailures
	if e, ok := firstErr.Load().(string); ok {
		row.FirstFailure = e
	}
	row.SetupSeconds = el.Seconds()
	row.SessionsPerSecond = float64(row.Established-1) / el.Seconds()
	row.SetupRatio = row.SessionsPerSecond / row.BaselinePerSecond
	say("%d up in %.1fs (%.0f/s), %d failed", row.Established, el.Seconds(), row.SessionsPerSecond, row.AttachFailures)

	// Idle: only the server's own timers run.
	cpu0, err := srv.cpu()
	if err != nil {
		return row, err
	}
	t0 := time.Now()
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := wait(o.idle / 4); err != nil {
		return row, err
	}
	cpuSettled, err := srv.cpu()
	if err != nil {
		return row, err
	}
	t1 := time.Now()
	if err := wait(o.idle - o.idle/4); err != nil {
		return row, err
	}
	cpu1, err := srv.cpu()
	if err != nil {
		return row, err
	}
	idle := time.Since(t0)
	row.IdleSeconds = idle.Seconds()
	row.IdleCPUPercent = 100 * float64(cpu1-cpu0) / float64(idle)
	row.SettledCPUPercent = 100 * float64(cpu1-cpuSettled) / float64(time.Since(t1))
	if row.RSSBytes, err = srv.rss(); err != nil {
		return row, err
	}
	grown := float64(max(row.Established-1, 1))
	row.RSSPerSession = float64(row.RSSBytes-row.RSSBaseBytes) / grown
	rt1, err := scrapeRuntime(ctx, srv.metricsAddr)
	if err != nil {
		return row, err
	}
	row.ServerGoroutines = rt1.goroutines
	row.GoroutinesPerSession = (rt1.goroutines - rt0.goroutines) / grown
	row.HeapPerSession = (rt1.heapInuse - rt0.heapInuse) / grown
	row.StackPerSession = (rt1.stackInuse - rt0.stackInuse) / grown
	say("idle %.0fs: server CPU %.2f%% of a core (%.2f%% settled), RSS %.1f MiB", row.IdleSeconds, row.IdleCPUPercent, row.SettledCPUPercent, float64(row.RSSBytes)/(1<<20))

	// The transfer again, among the idle sessions: while they are idle, before they answer (the
	// server is busy for a while after thousands of answers, which would measure that instead).
	if row.IdleBPS, err = transferRate(ctx, first); err != nil {
		return row, fmt.Errorf("transfer among idle sessions: %w", err)
	}
	row.TransferRatio = row.IdleBPS / row.BaselineBPS
	say("transfer among idle %s (%.2f× alone)", bitrate(row.IdleBPS), row.TransferRatio)

	// Every session answers a message.
	var answered, unanswered atomic.Int64
	var answerErr atomic.Value
	eachConcurrently(context.Background(), 0, n, func(i int) {
		s := sessions[i]
		if s == nil {
			return
		}
		var err error
		if m := muxes[i]; m != nil {
			err = answerStream(ctx, m, echo)
		} else {
			err = answer(ctx, s)
		}
		if err != nil {
			unanswered.Add(1)
			answerErr.CompareAndSwap(nil, err.Error())
			return
		}
		answered.Add(1)
	})
	row.Answered, row.AnswerFailures = int(answered.Load()), int(unanswered.Load())
	if e, ok := answerErr.Load().(string); ok {
		row.FirstAnswerError = e
	}
	say("%d answered, %d did not", row.Answered, row.AnswerFailures)

	// Closing them all.
	start = time.Now()
	eachConcurrently(context.Background(), 0, n, func(i int) {
		if m := muxes[i]; m != nil {
			m.Close()
		}
		if s := sessions[i]; s != nil && s.Close() != nil {
			s.Abort()
		}
	})
	row.CloseSeconds = time.Since(start).Seconds()
	say("closed in %.2fs", row.CloseSeconds)
	return row, nil
}

// answer has the server answer one message on s: a bench transfer of one byte and its receipt.
func answer(ctx context.Context, s *braid.Session) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hdr, _ := json.Marshal(transferHeader{Kind: "bench", Size: unknownSize})
	if err := s.Send(ctx, hdr); err != nil {
		return err
	}
	if err := s.Send(ctx, []byte{1}); err != nil {
		return err
	}
	var rc transferReceipt
	if err := receiveJSON(ctx, s, &rc); err != nil {
		return err
	}
	if rc.Bytes != 1 || rc.Error != "" {
		return fmt.Errorf("receipt: %d bytes, error %q", rc.Bytes, rc.Error)
	}
	return nil
}

// answerStream has a tunnel session answer: a stream to the echo target at echo carries one
// byte there and back.
func answerStream(ctx context.Context, m *mux.Mux, echo string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := m.Open(ctx, echo)
	if err != nil {
		return err
	}
	defer st.Close()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	if _, err := st.Write([]byte{1}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return fmt.Errorf("echo through the tunnel: %w", err)
	}
	return nil
}

// startEcho listens on a loopback port and echoes what each connection sends.
func startEcho() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go bench.AcceptLoop(ln, func(c net.Conn) { io.Copy(c, c) })
	return ln, nil
}

// transferRate sends sessionsTransfer bytes on s sessionsRuns times, each until the server's
// receipt, and returns the median rate in bits per second.
func transferRate(ctx context.Context, s *braid.Session) (float64, error) {
	var rates []float64
	for range sessionsRuns {
		hdr, _ := json.Marshal(transferHeader{Kind: "bench", Size: unknownSize})
		start := time.Now()
		if err := s.Send(ctx, hdr); err != nil {
			return 0, err
		}
		// sendStream ends its stream with a short message; an empty one, with size a multiple of
		// the piece, which the server counts as the end.
		sent, err := sendStream(ctx, s, sessionsTransfer, 0)
		if err != nil {
			return 0, err
		}
		var rc transferReceipt
		if err := receiveJSON(ctx, s, &rc); err != nil {
			return 0, err
		}
		if rc.Bytes != sent || rc.Error != "" {
			return 0, fmt.Errorf("server counted %d bytes of %d (%s)", rc.Bytes, sent, rc.Error)
		}
		rates = append(rates, float64(sent)*8/time.Since(start).Seconds())
	}
	slices.Sort(rates)
	return rates[len(rates)/2], nil
}

// eachConcurrently calls fn(i) for i from first to n-1 on sessionsDialers goroutines, each taking
// the next i, and returns when all have; it stops handing out work once ctx ends.
func eachConcurrently(ctx context.Context, first, n int, fn func(i int)) {
	var next atomic.Int64
	next.Store(int64(first))
	var wg sync.WaitGroup
	for range sessionsDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				fn(int(i))
			}
		}()
	}
	wg.Wait()
}
