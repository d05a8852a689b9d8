package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/braidnet/braid"
)

// AgentEnv is set to "1" in the environment of an agent process, so that a test binary can tell
// that it was started as one (see RunAgent).
const AgentEnv = "BRAID_EVAL_AGENT"

// agentJob is what the netns backend asks an agent to do, sent as the first line of its input.
type agentJob struct {
	Role      string    `json:"role"` // TRANSPORT-server, TRANSPORT-client, router
	Scenario  *Scenario `json:"scenario"`
	Scheduler string    `json:"scheduler,omitempty"`
	Mode      string    `json:"mode,omitempty"`
	// Servers: the addresses to serve on (one, or the TCP baseline's one per path) and each
	// path's interface. Router: each path's TUN device and one-way delay.
	Listen []string         `json:"listen,omitempty"`
	Ifaces []string         `json:"ifaces,omitempty"`
	Delays []int64          `json:"delays,omitempty"`
	Losses []Loss           `json:"losses,omitempty"` // router: each path's loss
	Specs  []braid.PathSpec `json:"specs,omitempty"`  // clients: where to connect
	// Braid clients: the server's key fingerprint, which the server agent reported.
	Fingerprint string `json:"fingerprint,omitempty"`
	Log         string `json:"log,omitempty"` // Braid roles: the session log's file, if any
	CC          string `json:"cc,omitempty"`  // TCP client: congestion control of its sockets
}

// agentCtl is a later input line: the workload's start time, or a path's new delay or loss.
type agentCtl struct {
	Start int64  `json:"start,omitempty"` // Unix nanoseconds
	Path  int    `json:"path"`
	Delay *int64 `json:"delay,omitempty"`
	Loss  *Loss  `json:"loss,omitempty"`
}

// agentOut is an output line.
type agentOut struct {
	Ready       bool       `json:"ready,omitempty"`
	Addrs       []string   `json:"addrs,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"` // a Braid server's key
	Recording   *Recording `json:"recording,omitempty"`
	Done        bool       `json:"done,omitempty"`
	Info        string     `json:"info,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// RunAgent runs one side of a netns run: it reads a job from in (one JSON line), reports on out
// as JSON lines, and returns when the job is done or in is closed. The netns backend starts it
// inside a namespace (`braid eval --agent`, or a test binary with AgentEnv set).
func RunAgent(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() {
		return errors.New("agent: no job")
	}
	var job agentJob
	if err := json.Unmarshal(sc.Bytes(), &job); err != nil {
		return fmt.Errorf("agent: job: %w", err)
	}
	if job.Scenario == nil {
		return errors.New("agent: job without a scenario")
	}
	ctx, cancel := context.WithTimeout(ctx, job.Scenario.Duration+60*time.Second)
	defer cancel()
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(o agentOut) {
		outMu.Lock()
		defer outMu.Unlock()
		enc.Encode(o)
	}
	a := &agent{job: job, emit: emit, start: make(chan time.Time, 1), delays: make(chan agentCtl, 16)}
	go func() {
		defer cancel() // input closed: the parent is done with us
		for sc.Scan() {
			var c agentCtl
			if json.Unmarshal(sc.Bytes(), &c) != nil {
				continue
			}
			if c.Start != 0 {
				a.start <- time.Unix(0, c.Start)
			} else if c.Delay != nil || c.Loss != nil {
				a.delays <- c
			}
		}
	}()
	var err error
	switch job.Role {
	case "braid-server":
		err = a.braidServer(ctx)
	case "mptcp-server":
		err = a.mptcpServer(ctx)
	case "braid-client":
		err = a.braidClient(ctx)
	case "mptcp-client":
		err = a.mptcpClient(ctx)
	case "tcp-server":
		err = a.tcpServer(ctx)
	case "tcp-client":
		err = a.tcpClient(ctx)
	case "router":
		err = a.router(ctx)
	default:
		err = fmt.Errorf("agent: unknown role %q", job.Role)
	}
	if err != nil {
		emit(agentOut{Error: err.Error()})
	}
	emit(agentOut{Done: true})
	<-ctx.Done() // wait for the parent to close our input
	return nil
}

type agent struct {
	job    agentJob
	emit   func(agentOut)
	start  chan time.Time
	delays chan agentCtl
}

func (a *agent) waitStart(ctx context.Context) (time.Time, error) {
	select {
	case t := <-a.start:
		return t, nil
	case <-ctx.Done():
		return time.Time{}, errors.New("agent: no start before the input closed")
	}
}

// record runs a receiver: it waits for the start, samples read every Bin until the end of the
// duration, and emits the recording.
func (a *agent) record(ctx context.Context, rec func(time.Time) *recorder, read func() []int64) (*recorder, func(), error) {
	start, err := a.waitStart(ctx)
	if err != nil {
		return nil, nil, err
	}
	r := rec(start)
	stopSampling := r.sampleFrom(start, read)
	finish := func() {
		stopAt(ctx, start.Add(a.job.Scenario.Duration))
		stopSampling()
		a.emit(agentOut{Recording: r.recording()})
	}
	return r, finish, nil
}

// ifaceCounters reads the received bytes of the job's interfaces (this namespace's /sys).
func (a *agent) ifaceCounters() []int64 {
	out := make([]int64, len(a.job.Ifaces))
	for i, name := range a.job.Ifaces {
		b, err := os.ReadFile("/sys/class/net/" + name + "/statistics/rx_bytes")
		if err == nil {
			out[i], _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return out
}

// router runs the router namespace's packet delays, one per path (see packetDelay), until its
// input closes, applying the parent's delay changes.
func (a *agent) router(ctx context.Context) error {
	var delays []*packetDelay
	defer func() {
		for _, d := range delays {
			d.Close()
		}
	}()
	for i, name := range a.job.Ifaces {
		var loss Loss
		if i < len(a.job.Losses) {
			loss = a.job.Losses[i]
		}
		d, err := openPacketDelay(name, time.Duration(a.job.Delays[i]), loss, uint64(i)+1)
		if err != nil {
			return err
		}
		delays = append(delays, d)
	}
	a.emit(agentOut{Ready: true})
	for {
		select {
		case c := <-a.delays:
			if c.Path < 0 || c.Path >= len(delays) {
				break
			}
			if c.Delay != nil {
				delays[c.Path].setDelay(time.Duration(*c.Delay))
			}
			if c.Loss != nil {
				delays[c.Path].setLoss(*c.Loss)
			}
		case <-ctx.Done():
			var info []string
			for i, d := range delays {
				if n := d.drops.Load(); n > 0 {
					info = append(info, fmt.Sprintf("path %d: %d packets dropped by the delay", i, n))
				}
				if n := d.lost.Load(); n > 0 {
					info = append(info, fmt.Sprintf("path %d: %d packets lost", i, n))
				}
			}
			if len(info) > 0 {
				a.emit(agentOut{Info: strings.Join(info, "; ")})
			}
			return nil
		}
	}
}

func (a *agent) braidServer(ctx context.Context) error {
	log, closeLog, err := openLog(a.job.Log)
	if err != nil {
		return err
	}
	defer closeLog()
	l, err := braid.Listen(a.job.Listen[0], &braid.Config{Logger: log})
	if err != nil {
		return err
	}
	defer l.Close()
	a.emit(agentOut{Ready: true, Addrs: []string{l.Addr().String()}, Fingerprint: l.Fingerprint()})
	s, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	defer s.Abort()
	n := len(a.job.Ifaces) // the run's paths, which are the client's slots in order
	rec, finish, err := a.record(ctx, func(start time.Time) *recorder {
		return newRecorder(start, n, "chunk payload bytes received (Session.Paths)")
	}, func() []int64 { return braidCounters(s, n) })
	if err != nil {
		return err
	}
	latency := a.job.Scenario.Workload.Kind == Messages
	go func() {
		for {
			msg, err := s.Receive(ctx)
			if err != nil {
				return
			}
			rec.delivered(msg, latency)
			s.Release(msg)
		}
	}()
	finish()
	return nil
}

func (a *agent) braidClient(ctx context.Context) error {
	log, closeLog, err := openLog(a.job.Log)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg, err := clientConfig(a.job.Scheduler, a.job.Mode, len(a.job.Specs), log)
	if err != nil {
		return err
	}
	cfg.ServerFingerprint = a.job.Fingerprint
	s, err := braid.DialPaths(ctx, a.job.Specs, cfg)
	if err != nil {
		return err
	}
	defer s.Abort()
	a.emit(agentOut{Ready: true})
	start, err := a.waitStart(ctx)
	if err != nil {
		return err
	}
	if err := sendWorkload(ctx, a.job.Scenario, start, byteBudget(a.job.Scenario), s.Send); err != nil {
		return err
	}
	var info []string
	for _, p := range s.Stats().Paths {
		info = append(info, fmt.Sprintf("path %d %s->%s sent %d", p.Index, p.Local, p.Remote, p.BytesSent))
	}
	a.emit(agentOut{Info: strings.Join(info, "; ")})
	return nil
}

func (a *agent) mptcpServer(ctx context.Context) error {
	var lc net.ListenConfig
	lc.SetMultipathTCP(true)
	ln, err := lc.Listen(ctx, "tcp", a.job.Listen[0])
	if err != nil {
		return err
	}
	defer ln.Close()
	a.emit(agentOut{Ready: true, Addrs: []string{ln.Addr().String()}})
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var conn net.Conn
	select {
	case acc := <-ch:
		if acc.err != nil {
			return acc.err
		}
		conn = acc.c
	case <-ctx.Done():
		return ctx.Err()
	}
	defer conn.Close()
	mp, _ := conn.(*net.TCPConn).MultipathTCP()
	if !mp {
		a.emit(agentOut{Info: "the accepted connection is plain TCP, not MPTCP"})
	}
	n := len(a.job.Ifaces)
	base := a.ifaceCounters()
	rec, finish, err := a.record(ctx, func(start time.Time) *recorder {
		return newRecorder(start, n, "bytes received on the path's interface (IP and TCP headers included)")
	}, func() []int64 {
		c := a.ifaceCounters()
		for i := range c {
			c[i] -= base[i]
		}
		return c
	})
	if err != nil {
		return err
	}
	latency := a.job.Scenario.Workload.Kind == Messages
	go readFrames(conn, func(msg []byte) { rec.delivered(msg, latency) })
	finish()
	return nil
}

func (a *agent) mptcpClient(ctx context.Context) error {
	var d net.Dialer
	d.SetMultipathTCP(true)
	d.Timeout = 10 * time.Second
	c, err := d.DialContext(ctx, "tcp", a.job.Specs[0].Remote)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if mp, _ := tc.MultipathTCP(); !mp {
		return errors.New("the connection fell back to plain TCP: MPTCP is not in use")
	}
	a.emit(agentOut{Ready: true})
	start, err := a.waitStart(ctx)
	if err != nil {
		return err
	}
	end := start.Add(a.job.Scenario.Duration)
	tc.SetWriteDeadline(end)
	var hdr [frameLen]byte
	return sendWorkload(ctx, a.job.Scenario, start, byteBudget(a.job.Scenario), func(ctx context.Context, msg []byte) error {
		return writeFrame(tc, &hdr, msg)
	})
}

// tcpServer is the TCP baseline's receiver: a listener per path, on the path's address.
func (a *agent) tcpServer(ctx context.Context) error {
	n := len(a.job.Listen)
	sink, err := newTCPSink(a.job.Listen, a.job.Scenario.Workload.Kind == Messages)
	if err != nil {
		return err
	}
	defer sink.Close()
	a.emit(agentOut{Ready: true, Addrs: sink.Addrs()})
	_, finish, err := a.record(ctx, func(start time.Time) *recorder {
		r := newRecorder(start, n, tcpFlowsUnit)
		sink.setRecorder(r)
		return r
	}, sink.counters)
	if err != nil {
		return err
	}
	finish()
	return nil
}

// tcpClient is the TCP baseline's sender: a connection per path, from the path's address.
func (a *agent) tcpClient(ctx context.Context) error {
	a.emit(agentOut{Ready: true})
	start, err := a.waitStart(ctx)
	if err != nil {
		return err
	}
	return sendTCPFlows(ctx, a.job.Scenario, start, a.job.Specs, a.job.CC)
}
