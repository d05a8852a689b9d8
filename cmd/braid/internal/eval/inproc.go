package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/faultproxy"
)

// CheckMode reports whether mode is a valid braid.Config.Mode, or a coded mode with N left out
// ("shamir:K", "erasure:K", "aont:K"; see ResolveMode).
func CheckMode(mode string) error {
	if name, k, ok := withoutN(mode); ok {
		mode = name + ":" + k + "/" + k // K of K: the least N there can be
	}
	return (&braid.Config{Mode: mode}).Validate()
}

// ResolveMode returns the braid.Config.Mode of a run over paths paths: mode itself or, for a coded
// mode given without N ("shamir:2"), K of every path the run has ("shamir:2/3" over three). If
// the mode cannot run over that many paths (a coded mode needs exactly N, and K <= N), the error
// says why.
func ResolveMode(mode string, paths int) (string, error) {
	if name, k, ok := withoutN(mode); ok {
		mode = fmt.Sprintf("%s:%s/%d", name, k, paths)
	}
	if err := (&braid.Config{Mode: mode, Paths: paths}).Validate(); err != nil {
		return "", err
	}
	return mode, nil
}

// withoutN splits "shamir:K", "erasure:K" or "aont:K" into its name and K; ok is false for any other mode.
func withoutN(mode string) (name, k string, ok bool) {
	name, k, coded := strings.Cut(strings.TrimSpace(mode), ":")
	switch strings.ToLower(name) {
	case "shamir", "erasure", "aont":
		return name, k, coded && !strings.Contains(k, "/")
	}
	return "", "", false
}

// clientConfig is the sending end's configuration for a run. (A server accepts whatever mode the
// client asks for, so only the client's configuration names one.)
func clientConfig(scheduler, mode string, paths int, log *slog.Logger) (*braid.Config, error) {
	cfg := &braid.Config{Paths: paths, Scheduler: scheduler, Mode: mode, Logger: log}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// openLog returns a logger writing the session events (slog.LevelInfo and above) to a new file
// at path, and a function that closes it; for path "" it returns nil, a session's default of no
// log.
func openLog(path string) (*slog.Logger, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

// logName is the log file of a run's role ("client", "server"), or "" if the run keeps no logs.
func logName(base, role string) string {
	if base == "" {
		return ""
	}
	return base + "-" + role + ".log"
}

// runInproc runs sc with one faultproxy per path on loopback, client and server in this process.
// With logBase set, the client's and the server's session logs go to logBase-client.log and
// logBase-server.log.
func runInproc(ctx context.Context, sc *Scenario, scheduler, mode, logBase string) (*Recording, error) {
	n := len(sc.Paths)
	cliLog, closeCliLog, err := openLog(logName(logBase, "client"))
	if err != nil {
		return nil, err
	}
	defer closeCliLog()
	srvLog, closeSrvLog, err := openLog(logName(logBase, "server"))
	if err != nil {
		return nil, err
	}
	defer closeSrvLog()
	cfg, err := clientConfig(scheduler, mode, n, cliLog)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Duration+30*time.Second)
	defer cancel()

	l, err := braid.Listen("127.0.0.1:0", &braid.Config{Logger: srvLog})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	targets := make([]string, n)
	for i := range targets {
		targets[i] = l.Addr().String()
	}
	proxies, specs, closeProxies, err := inprocPaths(sc, targets)
	if err != nil {
		return nil, err
	}
	defer closeProxies()
	pinned := *cfg
	pinned.ServerFingerprint = l.Fingerprint()
	client, err := braid.DialPaths(ctx, specs, &pinned)
	if err != nil {
		return nil, err
	}
	defer client.Abort()
	server, err := l.Accept(ctx)
	if err != nil {
		return nil, err
	}
	defer server.Abort()

	start := time.Now().Add(20 * time.Millisecond)
	rec := newRecorder(start, n, "chunk payload bytes received (Session.Paths)")
	stopSampling := rec.sampleFrom(start, func() []int64 { return braidCounters(server, n) })
	received := make(chan struct{})
	go func() {
		defer close(received)
		latency := sc.Workload.Kind == Messages
		for {
			msg, err := server.Receive(ctx)
			if err != nil {
				return
			}
			rec.delivered(msg, latency)
			server.Release(msg)
		}
	}()
	events := scheduleEvents(start, sc.Events, func(e Event) { applyProxyEvent(proxies[e.Path], sc.Paths[e.Path], e) })
	defer events()

	sendErr := sendWorkload(ctx, sc, start, byteBudget(sc), client.Send)
	stopAt(ctx, start.Add(sc.Duration))
	stopSampling()
	server.Abort()
	client.Abort()
	<-received
	if sendErr != nil {
		return rec.recording(), sendErr
	}
	return rec.recording(), ctx.Err()
}

// runInprocTCP runs the TCP baseline of sc (see TransportTCP) through a faultproxy per path.
func runInprocTCP(ctx context.Context, sc *Scenario) (*Recording, error) {
	n := len(sc.Paths)
	ctx, cancel := context.WithTimeout(ctx, sc.Duration+30*time.Second)
	defer cancel()
	local := make([]string, n)
	for i := range local {
		local[i] = "127.0.0.1:0"
	}
	sink, err := newTCPSink(local, sc.Workload.Kind == Messages)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	proxies, specs, closeProxies, err := inprocPaths(sc, sink.Addrs())
	if err != nil {
		return nil, err
	}
	defer closeProxies()

	start := time.Now().Add(20 * time.Millisecond)
	rec := newRecorder(start, n, tcpFlowsUnit)
	sink.setRecorder(rec)
	stopSampling := rec.sampleFrom(start, sink.counters)
	events := scheduleEvents(start, sc.Events, func(e Event) { applyProxyEvent(proxies[e.Path], sc.Paths[e.Path], e) })
	defer events()

	sendErr := sendTCPFlows(ctx, sc, start, specs, "")
	stopAt(ctx, start.Add(sc.Duration))
	stopSampling()
	if sendErr != nil {
		return rec.recording(), sendErr
	}
	return rec.recording(), ctx.Err()
}

// inprocPaths starts a faultproxy per path of sc, path i forwarding to targets[i] at the path's
// rate and delay; it returns them, the specs that dial them, and a function that closes them.
func inprocPaths(sc *Scenario, targets []string) ([]*faultproxy.Proxy, []braid.PathSpec, func(), error) {
	proxies := make([]*faultproxy.Proxy, 0, len(sc.Paths))
	closeAll := func() {
		for _, p := range proxies {
			p.Close()
		}
	}
	specs := make([]braid.PathSpec, len(sc.Paths))
	for i, ps := range sc.Paths {
		p, err := faultproxy.New(targets[i])
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		proxies = append(proxies, p)
		p.Throttle(int(ps.Rate.BytesPerSec()))
		p.Latency(ps.Delay)
		specs[i] = braid.PathSpec{Remote: p.Addr()}
	}
	return proxies, specs, closeAll, nil
}

// braidCounters reads a session's per-path received payload bytes by slot: the path's position in
// the client's list, which is the run's order of the scenario's paths. A re-dialed path keeps
// its slot and a dead one stays listed, so each slot's sum only grows.
func braidCounters(s *braid.Session, n int) []int64 {
	out := make([]int64, n)
	for _, st := range s.Stats().Paths {
		if st.Slot >= 0 && st.Slot < n {
			out[st.Slot] += int64(st.BytesReceived)
		}
	}
	return out
}

func applyProxyEvent(p *faultproxy.Proxy, base PathSpec, e Event) {
	switch e.Action {
	case ActionCut:
		p.Cut()
	case ActionRestore:
		p.Restore()
		p.Throttle(int(base.Rate.BytesPerSec()))
		p.Latency(base.Delay)
	case ActionThrottle:
		p.Throttle(int(e.Rate.BytesPerSec()))
	case ActionDelay:
		p.Latency(e.Delay)
	}
}

// scheduleEvents calls apply for each event at start+At; the returned function cancels those
// not yet run and waits for any running.
func scheduleEvents(start time.Time, events []Event, apply func(Event)) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for _, e := range events {
			t := time.NewTimer(time.Until(start.Add(e.At)))
			select {
			case <-t.C:
				apply(e)
			case <-done:
				t.Stop()
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// stopAt waits until t or ctx's end.
func stopAt(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// byteBudget is what one run may send, over all its connections: twice what the paths could
// carry, plus a window.
func byteBudget(sc *Scenario) *atomic.Int64 {
	b := new(atomic.Int64)
	b.Store(int64(2*sc.SumRate(nil).BytesPerSec()*sc.Duration.Seconds()) + 128<<20)
	return b
}

// sendWorkload sends sc's workload with send from start until start+Duration, or until budget
// (which senders of the same run share) is spent; a message send reports as errLost is not
// charged. It returns nil when it ran to the end.
func sendWorkload(ctx context.Context, sc *Scenario, start time.Time, budget *atomic.Int64, send func(context.Context, []byte) error) error {
	end := start.Add(sc.Duration)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	stopAt(ctx, start)
	msg := make([]byte, sc.Workload.MessageSize)
	for i := headerSize; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	for seq := uint64(0); budget.Load() > 0; seq++ {
		due := time.Now()
		if sc.Workload.Kind == Messages {
			due = start.Add(time.Duration(float64(seq) / sc.Workload.MessagesPerSec * float64(time.Second)))
			if !due.Before(end) {
				break
			}
			stopAt(ctx, due)
		}
		if ctx.Err() != nil {
			break
		}
		putHeader(msg, seq, due)
		if err := send(ctx, msg); err != nil {
			if errors.Is(err, errLost) {
				continue // nothing was delivered: the budget is not spent
			}
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				break
			}
			if time.Now().After(end) {
				break
			}
			return fmt.Errorf("send: %w", err)
		}
		budget.Add(-int64(len(msg)))
	}
	return nil
}
