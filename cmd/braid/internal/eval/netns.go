package eval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/braidnet/braid"
)

// nsPrefix starts the name of every namespace this package creates: "braideval-PID-N-c" (the
// client side), "...-r" (the router between them) and "...-s" (the server side). Namespaces with this prefix whose process is gone
// are deleted before a netns run.
const nsPrefix = "braideval-"

// netnsBackend is three network namespaces: a client and a server, each joined to a router by
// one veth pair per path. Path N: client interface cN 10.213.N.1/24 to the router's rcN
// 10.213.N.254; the router's rsN 10.214.N.254/24 to the server's sN 10.214.N.2. cN and sN are
// shaped by tbf to the path's rate (the sending end of each direction). The router forwards
// every packet of path N, both ways, through the TUN device dN, where a router agent holds it
// for the path's delay (packetDelay). The namespaces have no other interface and no default
// route, so no traffic leaves them.
type netnsBackend struct {
	client, router, server string
	paths                  int
	o                      Options
	mptcp                  error // why MPTCP cannot run, or nil
	log                    io.Writer
}

var nsCounter struct {
	sync.Mutex
	n int
}

func clientAddr(i int) string { return fmt.Sprintf("10.213.%d.1", i) }
func serverAddr(i int) string { return fmt.Sprintf("10.214.%d.2", i) }

// routeTable is the router's routing table for path i's packets: everything to its TUN device.
func routeTable(i int) string { return strconv.Itoa(100 + i) }

// ip runs the ip command (or tc, sysctl: the first word of args may name another tool) and
// returns its error with its output.
func ip(ctx context.Context, args ...string) error {
	name := "ip"
	if args[0] == "tc" || args[0] == "sysctl" {
		name, args = args[0], args[1:]
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NetnsAvailable reports why the netns backend cannot run here, or nil if it can.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("the netns backend needs root (network namespaces, veth, tc)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the netns backend needs %s (iproute2): %w", tool, err)
		}
	}
	return nil
}

// MPTCPAvailable reports why Linux MPTCP cannot be used here, or nil if it can.
func MPTCPAvailable() error {
	b, err := os.ReadFile("/proc/sys/net/mptcp/enabled")
	if err != nil {
		return fmt.Errorf("this kernel has no MPTCP (%v)", err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		return errors.New("MPTCP is disabled (/proc/sys/net/mptcp/enabled is 0)")
	}
	return nil
}

// CleanStale deletes namespaces left by netns runs whose process is gone.
func CleanStale(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err == nil && pid != os.Getpid() {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				continue // still running
			}
		} else if err == nil {
			continue // ours
		}
		if err := ip(ctx, "netns", "del", name); err != nil {
			return err
		}
	}
	return nil
}

func newNetnsBackend(ctx context.Context, paths int, o Options) (b *netnsBackend, err error) {
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	if len(o.AgentArgv) == 0 {
		return nil, errors.New("netns backend: no agent command (Options.AgentArgv)")
	}
	if err := CleanStale(ctx); err != nil {
		return nil, err
	}
	nsCounter.Lock()
	nsCounter.n++
	base := fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), nsCounter.n)
	nsCounter.Unlock()
	b = &netnsBackend{client: base + "c", router: base + "r", server: base + "s", paths: paths, o: o, log: o.Progress}
	if b.log == nil {
		b.log = io.Discard
	}
	made := b // b is nil once an error is returned
	defer func() {
		if err != nil {
			made.Close()
		}
	}()
	mtu := strconv.Itoa(tunMTU) // what linkRate assumes; the default, set so that it holds regardless
	for _, ns := range []string{b.client, b.router, b.server} {
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return nil, err
		}
		steps := [][]string{
			{"-n", ns, "link", "set", "lo", "up"},
			{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_timestamps=1"}, // linkRate assumes it
		}
		if cc := o.CongestionControl; cc != "" && ns != b.router {
			// Every transport's sockets in the namespace take it as their default (Braid's
			// paths, MPTCP's subflows); the TCP baseline's senders also set it on each socket.
			steps = append(steps, []string{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control=" + cc})
		}
		if ns == b.router {
			// Forward, and accept packets coming back from a TUN device whose source is routed
			// elsewhere (set before the interfaces exist, which inherit "default").
			steps = append(steps,
				[]string{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
				[]string{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0"},
				[]string{"netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.default.rp_filter=0"})
		}
		for _, st := range steps {
			if err := ip(ctx, st...); err != nil {
				return nil, err
			}
		}
	}
	for i := range paths {
		c, rc, rs, sv, tun := fmt.Sprintf("c%d", i), fmt.Sprintf("rc%d", i), fmt.Sprintf("rs%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("d%d", i)
		routerC, routerS := fmt.Sprintf("10.213.%d.254", i), fmt.Sprintf("10.214.%d.254", i)
		steps := [][]string{
			{"-n", b.client, "link", "add", c, "mtu", mtu, "type", "veth", "peer", "name", rc, "mtu", mtu, "netns", b.router},
			{"-n", b.server, "link", "add", sv, "mtu", mtu, "type", "veth", "peer", "name", rs, "mtu", mtu, "netns", b.router},
			{"-n", b.client, "addr", "add", clientAddr(i) + "/24", "dev", c},
			{"-n", b.router, "addr", "add", routerC + "/24", "dev", rc},
			{"-n", b.router, "addr", "add", routerS + "/24", "dev", rs},
			{"-n", b.server, "addr", "add", serverAddr(i) + "/24", "dev", sv},
			{"-n", b.client, "link", "set", c, "up"},
			{"-n", b.router, "link", "set", rc, "up"},
			{"-n", b.router, "link", "set", rs, "up"},
			{"-n", b.server, "link", "set", sv, "up"},
			{"-n", b.server, "route", "add", fmt.Sprintf("10.213.%d.0/24", i), "via", routerS, "dev", sv},
			{"-n", b.router, "tuntap", "add", "dev", tun, "mode", "tun"},
			{"-n", b.router, "link", "set", tun, "mtu", mtu, "txqueuelen", "10000", "up"},
			{"-n", b.router, "route", "add", "default", "dev", tun, "table", routeTable(i)},
			{"-n", b.router, "rule", "add", "iif", rc, "lookup", routeTable(i)},
			{"-n", b.router, "rule", "add", "iif", rs, "lookup", routeTable(i)},
		}
		for _, st := range steps {
			if err := ip(ctx, st...); err != nil {
				return nil, err
			}
		}
	}
	b.mptcp = MPTCPAvailable()
	if b.mptcp == nil {
		for _, ns := range []string{b.client, b.server} {
			if err := ip(ctx, "netns", "exec", ns, "sysctl", "-q", "-w", "net.mptcp.enabled=1"); err != nil {
				b.mptcp = err
				break
			}
			if err := ip(ctx, "-n", ns, "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"); err != nil {
				b.mptcp = err
				break
			}
		}
	}
	return b, nil
}

// Close deletes the namespaces, and with them the veth pairs.
func (b *netnsBackend) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ns := range []string{b.client, b.router, b.server} {
		if err := ip(ctx, "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			fmt.Fprintf(b.log, "eval: cleanup: %v\n", err)
		}
	}
}

// A scenario's rate is what TCP carries on the path (its goodput), on both backends: the
// inproc proxies count stream bytes. tbf counts whole frames, and on these veths (MTU 1500,
// IPv4, TCP timestamps on) a full segment is a 1514-byte frame carrying 1448 bytes of payload:
// 14 bytes of Ethernet header, 20 of IP, 32 of TCP. So tbf is set to rate × 1514/1448 (4.6%
// more), which the TCP baseline's runs check in the same run.
const (
	segFrame   = 1514
	segPayload = 1448
)

// linkRate is the tbf rate (bits/s of frames) that carries rate of TCP payload.
func linkRate(rate Rate) int64 { return int64(float64(rate) * segFrame / segPayload) }

// shape sets path i's rate in both directions: tbf on both ends of its veth pair.
func (b *netnsBackend) shape(ctx context.Context, i int, rate Rate) error {
	bits := linkRate(rate)
	burst := max(bits/8/200, 32<<10) // 5 ms of the rate, at least 32 KiB
	for _, side := range []struct{ ns, dev string }{{b.client, fmt.Sprintf("c%d", i)}, {b.server, fmt.Sprintf("s%d", i)}} {
		if err := ip(ctx, "tc", "-n", side.ns, "qdisc", "replace", "dev", side.dev, "root", "tbf",
			"rate", strconv.FormatInt(bits, 10)+"bit", "burst", strconv.FormatInt(burst, 10), "latency", "20ms"); err != nil {
			return err
		}
	}
	return nil
}

// link sets path i's client end up or down; a down end takes the carrier away from both.
func (b *netnsBackend) link(ctx context.Context, i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := ip(ctx, "-n", b.client, "link", "set", fmt.Sprintf("c%d", i), state); err != nil || !up {
		return err
	}
	// The client's route to the server's side of the path, through the router; set here
	// because taking the link down removes it (every run brings its paths up this way).
	return ip(ctx, "-n", b.client, "route", "replace", fmt.Sprintf("10.214.%d.0/24", i), "via", fmt.Sprintf("10.213.%d.254", i), "dev", fmt.Sprintf("c%d", i))
}

// agentProc is an agent process in a namespace.
type agentProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	inMu   sync.Mutex
	lines  chan agentOut
	stderr bytes.Buffer
	once   sync.Once
}

func (b *netnsBackend) startAgent(ctx context.Context, ns string, job agentJob) (*agentProc, error) {
	args := append([]string{"netns", "exec", ns}, b.o.AgentArgv...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), AgentEnv+"=1")
	cmd.SysProcAttr = agentProcAttr()
	cmd.WaitDelay = 2 * time.Second
	a := &agentProc{cmd: cmd, lines: make(chan agentOut, 16)}
	cmd.Stderr = &a.stderr
	var err error
	if a.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(a.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var o agentOut
			if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
				continue // not ours (e.g. a test binary's output)
			}
			a.lines <- o
		}
	}()
	if err := a.send(job); err != nil {
		a.stop()
		return nil, err
	}
	return a, nil
}

func (a *agentProc) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	a.inMu.Lock()
	defer a.inMu.Unlock()
	_, err = a.in.Write(append(data, '\n'))
	return err
}

// next returns the agent's next output line that satisfies want, failing on an error line, on
// its exit or at the deadline.
func (a *agentProc) next(ctx context.Context, what string, want func(agentOut) bool) (agentOut, error) {
	for {
		select {
		case o, ok := <-a.lines:
			if !ok {
				return o, fmt.Errorf("agent exited before %s: %s", what, lastLines(a.stderr.String()))
			}
			if o.Error != "" {
				return o, errors.New(o.Error)
			}
			if want(o) {
				return o, nil
			}
		case <-ctx.Done():
			return agentOut{}, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// stop closes the agent's input (which ends it) and waits; the process is killed if it lingers.
func (a *agentProc) stop() { a.once.Do(a.stopOnce) }

func (a *agentProc) stopOnce() {
	a.in.Close()
	done := make(chan struct{})
	go func() {
		a.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// run runs sub (the scenario restricted to the paths used, by their original indexes) once.
func (b *netnsBackend) run(ctx context.Context, sub *Scenario, used []int, transport, scheduler, mode, logBase string) (*Recording, error) {
	mptcp := transport == TransportMPTCP
	if mptcp && b.mptcp != nil {
		return nil, fmt.Errorf("MPTCP not available: %w", b.mptcp)
	}
	ctx, cancel := context.WithTimeout(ctx, sub.Duration+40*time.Second)
	defer cancel()
	// Every path: up and shaped if used, down if not.
	for i := range b.paths {
		if err := b.link(ctx, i, false); err != nil {
			return nil, err
		}
	}
	for k, i := range used {
		if err := b.shape(ctx, i, sub.Paths[k].Rate); err != nil {
			return nil, err
		}
		if err := b.link(ctx, i, true); err != nil {
			return nil, err
		}
	}
	srvJob := agentJob{Role: transport + "-server", Scenario: sub, Log: logName(logBase, "server")}
	cliJob := agentJob{Role: transport + "-client", Scenario: sub, Scheduler: scheduler, Mode: mode, Log: logName(logBase, "client"), CC: b.o.CongestionControl}
	rtrJob := agentJob{Role: "router", Scenario: sub}
	for k, i := range used {
		srvJob.Ifaces = append(srvJob.Ifaces, fmt.Sprintf("s%d", i))
		rtrJob.Ifaces = append(rtrJob.Ifaces, fmt.Sprintf("d%d", i))
		rtrJob.Delays = append(rtrJob.Delays, int64(sub.Paths[k].Delay))
		rtrJob.Losses = append(rtrJob.Losses, sub.Paths[k].Loss)
		if transport == TransportTCP {
			srvJob.Listen = append(srvJob.Listen, serverAddr(i)+":0") // a listener per path
		}
	}
	if transport != TransportTCP {
		srvJob.Listen = []string{"0.0.0.0:0"} // one listener, reached at each path's address
	}
	rtr, err := b.startAgent(ctx, b.router, rtrJob)
	if err != nil {
		return nil, err
	}
	defer rtr.stop()
	if _, err := rtr.next(ctx, "the router", func(o agentOut) bool { return o.Ready }); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	if mptcp {
		for _, ns := range []string{b.client, b.server} {
			if err := ip(ctx, "-n", ns, "mptcp", "endpoint", "flush"); err != nil {
				return nil, err
			}
		}
		// The server announces its address on every other path (ADD_ADDR); the client, which
		// accepts 8, opens a subflow to each, leaving by the path's own interface.
		for _, i := range used[1:] {
			if err := ip(ctx, "-n", b.server, "mptcp", "endpoint", "add", serverAddr(i), "dev", fmt.Sprintf("s%d", i), "signal"); err != nil {
				return nil, err
			}
		}
	}
	srv, err := b.startAgent(ctx, b.server, srvJob)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	ready, err := srv.next(ctx, "the server", func(o agentOut) bool { return o.Ready })
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	cliJob.Fingerprint = ready.Fingerprint
	for k, i := range used {
		spec := braid.PathSpec{Local: clientAddr(i)}
		switch transport {
		case TransportTCP:
			spec.Remote = ready.Addrs[k]
		default:
			_, port, err := net.SplitHostPort(ready.Addrs[0])
			if err != nil {
				return nil, fmt.Errorf("server address %q: %w", ready.Addrs[0], err)
			}
			to := i
			if mptcp {
				to = used[0] // the subflows are the server's to announce
			}
			spec.Remote = net.JoinHostPort(serverAddr(to), port)
		}
		cliJob.Specs = append(cliJob.Specs, spec)
	}
	cli, err := b.startAgent(ctx, b.client, cliJob)
	if err != nil {
		return nil, err
	}
	defer cli.stop()
	_, err = cli.next(ctx, "the client", func(o agentOut) bool { return o.Ready })
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	start := time.Now().Add(300 * time.Millisecond)
	if mptcp {
		start = start.Add(500 * time.Millisecond) // time for the subflows to join
	}
	for _, a := range []*agentProc{srv, cli} {
		if err := a.send(agentCtl{Start: start.UnixNano()}); err != nil {
			return nil, err
		}
	}
	var evErr error
	var evMu sync.Mutex
	events := scheduleEvents(start, sub.Events, func(e Event) {
		if err := b.apply(ctx, rtr, used, sub, e); err != nil {
			evMu.Lock()
			evErr = errors.Join(evErr, err)
			evMu.Unlock()
		}
	})
	recLine, err := srv.next(ctx, "the server's recording", func(o agentOut) bool { return o.Recording != nil })
	events()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	rec := recLine.Recording
	rec.Extra = map[string]any{}
	cliDone, cliErr := cli.next(ctx, "the client", func(o agentOut) bool { return o.Done || o.Info != "" })
	if cliErr == nil && cliDone.Info != "" {
		rec.Extra["client"] = cliDone.Info
	}
	// The router reports the packets its delays dropped, if any, as it ends.
	rtr.stop()
	for o := range rtr.lines {
		if o.Info != "" {
			rec.Extra["router"] = o.Info
		}
	}
	if evErr != nil {
		return rec, fmt.Errorf("events: %w", evErr)
	}
	if cliErr != nil {
		return rec, fmt.Errorf("client: %w", cliErr)
	}
	return rec, nil
}

// apply carries out one event on the kernel paths (rate, link) or the router's delays.
func (b *netnsBackend) apply(ctx context.Context, rtr *agentProc, used []int, sub *Scenario, e Event) error {
	i := used[e.Path]
	delay := func(d time.Duration) error {
		v := int64(d)
		return rtr.send(agentCtl{Path: e.Path, Delay: &v})
	}
	switch e.Action {
	case ActionCut:
		return b.link(ctx, i, false)
	case ActionRestore:
		if err := b.shape(ctx, i, sub.Paths[e.Path].Rate); err != nil {
			return err
		}
		if err := delay(sub.Paths[e.Path].Delay); err != nil {
			return err
		}
		loss := sub.Paths[e.Path].Loss
		if err := rtr.send(agentCtl{Path: e.Path, Loss: &loss}); err != nil {
			return err
		}
		return b.link(ctx, i, true)
	case ActionThrottle:
		return b.shape(ctx, i, e.Rate)
	case ActionDelay:
		return delay(e.Delay)
	case ActionLoss:
		loss := e.Loss
		return rtr.send(agentCtl{Path: e.Path, Loss: &loss})
	}
	return nil
}
