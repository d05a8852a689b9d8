package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/tunnel"
	"github.com/braidnet/braid/mux"
)

// TunnelOptions selects what RunTunnel measures. Every figure is taken through a tunnel on
// loopback (an application connecting to a -L listener, a session, a tunnel server dialing the
// target) and directly (the application connecting to the target), in the same run.
type TunnelOptions struct {
	Paths    int           // session paths (default 4)
	Security []string      // "tls", "insecure" (default both)
	Volume   int64         // bytes of the bulk transfer, also shared by the parallel streams (default 1 GiB)
	Streams  int           // parallel streams (default 64)
	Runs     int           // alternating runs per figure; the median is reported (default 3)
	Requests int           // request/response round trips per latency figure (default 20000)
	Clients  int           // concurrent request/response clients for the second latency figure (default 50, as redis-benchmark)
	Idle     int           // idle streams for the memory figure (default 2000)
	MaxTime  time.Duration // bound on one transfer (default 1 minute)
}

func (o *TunnelOptions) defaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.Paths, 4)
	def(&o.Streams, 64)
	def(&o.Runs, 3)
	def(&o.Requests, 20000)
	def(&o.Clients, 50)
	def(&o.Idle, 2000)
	if o.Volume <= 0 {
		o.Volume = 1 << 30
	}
	if o.MaxTime <= 0 {
		o.MaxTime = time.Minute
	}
	if len(o.Security) == 0 {
		o.Security = []string{"tls", "insecure"}
	}
}

// TunnelFigures is one side's measurements.
type TunnelFigures struct {
	Bulk      Throughput `json:"bulk"`       // one stream
	BulkCPU   float64    `json:"bulk_cpu"`   // CPU seconds (the whole process: application, tunnel, target) per GiB of it
	Parallel  Throughput `json:"parallel"`   // Streams streams at once
	RTT1      Latency    `json:"rtt_1"`      // 64-byte request/response, one client
	RTTN      Latency    `json:"rtt_n"`      // the same with Clients clients at once
	IdleBytes float64    `json:"idle_bytes"` // Go memory (heap and stacks) per idle connection
}

// TunnelRow is the tunnel at one path security, beside the direct figures.
type TunnelRow struct {
	Security      string        `json:"security"`       // the tunnel session's paths: "tls" or "insecure"
	Tunnel        TunnelFigures `json:"tunnel"`         // the figures through the tunnel
	BulkRatio     float64       `json:"bulk_ratio"`     // tunnel ÷ direct
	ParallelRatio float64       `json:"parallel_ratio"` // tunnel ÷ direct
	RTT1Ratio     float64       `json:"rtt_1_ratio"`    // median, tunnel ÷ direct
	RTTNRatio     float64       `json:"rtt_n_ratio"`    // median, tunnel ÷ direct
	// IdleStreamBytes is what an idle tunneled connection costs beyond a direct one: the mux
	// streams, goroutines and the tunnel's own sockets, at both ends together (they share the
	// process here); each end holds about half of it.
	IdleStreamBytes float64 `json:"idle_stream_bytes"`
}

// TunnelReport is a RunTunnel result.
type TunnelReport struct {
	Options TunnelOptions `json:"options"` // what was measured, defaults filled in
	Direct  TunnelFigures `json:"direct"`  // the application straight to the target
	Rows    []TunnelRow   `json:"rows"`    // through a plain TCP relay (one extra hop), then the tunnel per path security
}

// RunTunnel measures carrying TCP through a tunnel on loopback beside TCP direct.
func RunTunnel(ctx context.Context, o TunnelOptions) (*TunnelReport, error) {
	o.defaults()
	targets, err := startTargets()
	if err != nil {
		return nil, err
	}
	defer targets.close()
	direct := &tunnelSide{sink: targets.sink.Addr().String(), echo: targets.echo.Addr().String(), targets: targets}
	relay, err := startRelay(targets)
	if err != nil {
		return nil, err
	}
	defer relay.close()
	sides := []*tunnelSide{relay}
	for _, sec := range o.Security {
		if sec != "tls" && sec != "insecure" {
			return nil, fmt.Errorf("bench: unknown security %q (tls or insecure)", sec)
		}
		side, err := startTunnel(ctx, o.Paths, sec == "insecure", targets)
		if err != nil {
			return nil, err
		}
		defer side.close()
		sides = append(sides, side)
	}
	all := append([]*tunnelSide{direct}, sides...)
	bulk := make([][]Throughput, len(all))
	cpu := make([][]float64, len(all))
	par := make([][]Throughput, len(all))
	for range o.Runs { // alternate, so that drift affects every side alike
		for i, s := range all {
			c0 := processCPU()
			t, err := s.bulk(ctx, o.Volume, 1, o.MaxTime)
			if err != nil {
				return nil, fmt.Errorf("bench: bulk: %w", err)
			}
			bulk[i] = append(bulk[i], t)
			cpu[i] = append(cpu[i], (processCPU()-c0).Seconds()/(float64(o.Volume)/(1<<30)))
			if t, err = s.bulk(ctx, o.Volume, o.Streams, o.MaxTime); err != nil {
				return nil, fmt.Errorf("bench: %d streams: %w", o.Streams, err)
			}
			par[i] = append(par[i], t)
		}
	}
	figs := make([]TunnelFigures, len(all))
	for i, s := range all {
		figs[i].Bulk, figs[i].Parallel = medianRun(bulk[i]), medianRun(par[i])
		slices.Sort(cpu[i])
		figs[i].BulkCPU = cpu[i][len(cpu[i])/2]
		if figs[i].RTT1, err = s.requests(ctx, o.Requests, 1); err != nil {
			return nil, err
		}
		if figs[i].RTTN, err = s.requests(ctx, o.Requests, o.Clients); err != nil {
			return nil, err
		}
		if figs[i].IdleBytes, err = s.idle(ctx, o.Idle); err != nil {
			return nil, fmt.Errorf("bench: idle streams: %w", err)
		}
	}
	rep := &TunnelReport{Options: o, Direct: figs[0]}
	for i, s := range sides {
		f := figs[i+1]
		rep.Rows = append(rep.Rows, TunnelRow{Security: s.security, Tunnel: f,
			BulkRatio:       f.Bulk.MiBps() / figs[0].Bulk.MiBps(),
			ParallelRatio:   f.Parallel.MiBps() / figs[0].Parallel.MiBps(),
			RTT1Ratio:       ratio(f.RTT1.Median, figs[0].RTT1.Median),
			RTTNRatio:       ratio(f.RTTN.Median, figs[0].RTTN.Median),
			IdleStreamBytes: f.IdleBytes - figs[0].IdleBytes})
	}
	return rep, nil
}

// targets are the servers the application reaches: a sink (counts what it reads, answers
// with the count after the client's FIN) and an echo.
type targets struct {
	sink, echo net.Listener
	accepted   atomic.Int64 // echo connections accepted
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]bool
}

func startTargets() (*targets, error) {
	t := &targets{conns: map[net.Conn]bool{}}
	var err error
	if t.sink, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if t.echo, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.sink.Close()
		return nil, err
	}
	t.serve(t.sink, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		var n int64
		var err error
		for {
			k, rerr := c.Read(buf)
			n += int64(k)
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				break
			}
		}
		if err == nil {
			c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
		}
	})
	t.serve(t.echo, func(c net.Conn) {
		t.accepted.Add(1)
		buf := make([]byte, latencySize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	return t, nil
}

func (t *targets) serve(ln net.Listener, handle func(net.Conn)) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.mu.Lock()
			t.conns[c] = true
			t.mu.Unlock()
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				handle(c)
				c.Close()
				t.mu.Lock()
				delete(t.conns, c)
				t.mu.Unlock()
			}()
		}
	}()
}

func (t *targets) close() {
	t.sink.Close()
	t.echo.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// tunnelSide is one way of reaching the targets: directly, or through a tunnel.
type tunnelSide struct {
	security   string // "" for direct
	sink, echo string // the addresses the application dials
	targets    *targets
	close      func()
}

// startTunnel starts a tunnel server and a client session of paths paths on loopback, with a
// -L listener for each target.
func startTunnel(ctx context.Context, paths int, insecure bool, tg *targets) (*tunnelSide, error) {
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{Insecure: insecure, MaxPaths: 64})
	if err != nil {
		return nil, err
	}
	allow, _ := tunnel.ParseAllowList("127.0.0.1:*")
	sv := &tunnel.Server{Dialer: tunnel.Dialer{Allow: allow}, Logger: discardLogger()}
	sctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := l.Accept(sctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				if first, err := s.Receive(sctx); err == nil && mux.IsHello(first) {
					tunnel.ServeSession(sctx, s, first, sv, &mux.Config{MaxStreams: 1 << 16, Logger: discardLogger()})
				}
			}()
		}
	}()
	specs := make([]braid.PathSpec, paths)
	for i := range specs {
		specs[i] = braid.PathSpec{Remote: l.Addr().String()}
	}
	s, m, err := tunnel.Dial(ctx, specs, &braid.Config{Insecure: insecure, ServerFingerprint: l.Fingerprint(), Paths: paths},
		&mux.Config{MaxStreams: 1 << 16, Logger: discardLogger()})
	if err != nil {
		cancel()
		l.Close()
		wg.Wait()
		return nil, err
	}
	cl := &tunnel.Client{Mux: m, Logger: discardLogger()}
	side := &tunnelSide{security: "tls", targets: tg}
	if insecure {
		side.security = "insecure"
	}
	side.close = func() {
		cancel()
		m.Close()
		s.Close()
		l.Close()
		wg.Wait()
	}
	if _, err := side.listen(&wg, func(ln net.Listener, target string) { cl.Forward(sctx, ln, target) }); err != nil {
		side.close()
		return nil, err
	}
	return side, nil
}

// listen starts, for the sink and for the echo, a loopback listener served by serve (on a
// goroutine counted in wg) with that target, and sets the side's addresses to them.
func (s *tunnelSide) listen(wg *sync.WaitGroup, serve func(ln net.Listener, target string)) ([]net.Listener, error) {
	var lns []net.Listener
	for _, target := range []string{s.targets.sink.Addr().String(), s.targets.echo.Addr().String()} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() { defer wg.Done(); serve(ln, target) }()
	}
	s.sink, s.echo = lns[0].Addr().String(), lns[1].Addr().String()
	return lns, nil
}

// startRelay starts a plain TCP relay in front of each target: one extra loopback hop and
// nothing else (io.Copy, which splices on Linux), the least any user-space tunnel adds.
func startRelay(tg *targets) (*tunnelSide, error) {
	side := &tunnelSide{security: "relay", targets: tg}
	var lns []net.Listener
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	side.close = func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	var err error
	lns, err = side.listen(&wg, func(ln net.Listener, target string) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				track(c, true)
				track(up, true)
				defer track(c, false)
				defer track(up, false)
				done := make(chan struct{})
				go func() {
					io.Copy(up, c)
					up.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(c, up)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	})
	if err != nil {
		return nil, err
	}
	return side, nil
}

var bulkBuf = func() []byte {
	b := make([]byte, 256<<10)
	rand.Read(b)
	return b
}()

// bulk sends volume bytes to the sink over n connections at once, each writing 256 KiB at a
// time, and times it until every sink has confirmed the count.
func (s *tunnelSide) bulk(ctx context.Context, volume int64, n int, maxTime time.Duration) (Throughput, error) {
	each := volume / int64(n)
	start := time.Now()
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", s.sink)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(start.Add(maxTime))
				for left := each; left > 0; {
					k := min(left, int64(len(bulkBuf)))
					if _, err := c.Write(bulkBuf[:k]); err != nil {
						return err
					}
					left -= k
				}
				c.(*net.TCPConn).CloseWrite()
				var got [8]byte
				if _, err := io.ReadFull(c, got[:]); err != nil {
					return err
				}
				if v := binary.BigEndian.Uint64(got[:]); v != uint64(each) {
					return fmt.Errorf("sink counted %d bytes of %d", v, each)
				}
				return nil
			}()
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return Throughput{Bytes: each * int64(n), Frames: n, Duration: time.Since(start)}, first
}

// requests runs total 64-byte request/response round trips over clients connections to the
// echo target, each client waiting for its answer before the next request.
func (s *tunnelSide) requests(ctx context.Context, total, clients int) (Latency, error) {
	per := max(total/clients, 1)
	samples := make([][]time.Duration, clients)
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", s.echo)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Minute))
				buf := make([]byte, latencySize)
				if _, err := c.Write(buf); err != nil { // warm: the stream is open
					return err
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					return err
				}
				lat := make([]time.Duration, 0, per)
				for range per {
					t0 := time.Now()
					if _, err := c.Write(buf); err != nil {
						return err
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						return err
					}
					lat = append(lat, time.Since(t0))
				}
				samples[i] = lat
				return nil
			}()
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			return Latency{}, err
		}
	}
	return Summarize(slices.Concat(samples...)), nil
}

// idle opens n connections to the echo target that then stay idle, and returns the Go memory
// (heap in use and goroutine stacks, after garbage collection) each one costs in this process.
func (s *tunnelSide) idle(ctx context.Context, n int) (float64, error) {
	before := memInUse()
	base := s.targets.accepted.Load()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", s.echo)
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(time.Minute)
	for s.targets.accepted.Load()-base < int64(n) {
		if time.Now().After(deadline) {
			return 0, errors.New("the targets did not see every connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the streams settle
	after := memInUse()
	return (float64(after) - float64(before)) / float64(n), nil
}

// memInUse is the heap in use plus goroutine stacks after garbage collection (run several
// times, so that stacks a goroutine no longer needs have been shrunk, as a long idle time
// would).
func memInUse() uint64 {
	var ms runtime.MemStats
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// WriteTable prints the report for people.
func (r *TunnelReport) WriteTable(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "tunnel on loopback (%s) beside direct TCP; median of %d alternating runs\n\n", Count(o.Paths, "path"), o.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbulk, 1 stream\t÷ direct\tCPU s/GiB\t%d streams\t÷ direct\trequest/response p50, 1 client\t÷ direct\tp50, %d clients\t÷ direct\tidle stream, both ends\tper end\t\n", o.Streams, o.Clients)
	d := r.Direct
	fmt.Fprintf(tw, "direct TCP\t%.1f MiB/s\t\t%.2f\t%.1f MiB/s\t\t%s\t\t%s\t\t\t\t\n", d.Bulk.MiBps(), d.BulkCPU, d.Parallel.MiBps(), us(d.RTT1.Median), us(d.RTTN.Median))
	for _, row := range r.Rows {
		f := row.Tunnel
		name, idle, idleEnd := "tunnel, "+row.Security, fmt.Sprintf("%.1f KiB", row.IdleStreamBytes/1024), fmt.Sprintf("%.1f KiB", row.IdleStreamBytes/2048)
		if row.Security == "relay" {
			name, idleEnd = "TCP relay (no tunnel)", ""
		}
		fmt.Fprintf(tw, "%s\t%.1f MiB/s\t%.2f\t%.2f\t%.1f MiB/s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%s\t\n", name,
			f.Bulk.MiBps(), row.BulkRatio, f.BulkCPU, f.Parallel.MiBps(), row.ParallelRatio, us(f.RTT1.Median), row.RTT1Ratio,
			us(f.RTTN.Median), row.RTTNRatio, idle, idleEnd)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nbulk: %s through one connection; %d streams: the same volume split across them at once.\n", Size(int(o.Volume)), o.Streams)
	fmt.Fprintf(w, "request/response: 64-byte request, 64-byte answer, %d round trips per figure.\n", o.Requests)
	fmt.Fprintf(w, "CPU s/GiB: CPU time of the whole process (application, relay or tunnel, target) per GiB of the bulk transfer.\n")
	fmt.Fprintf(w, "TCP relay: the application through a plain loopback relay (io.Copy each way) to the target: one extra hop, no tunnel.\n")
	fmt.Fprintf(w, "idle stream: Go heap and stacks per idle connection beyond a direct one (both tunnel ends, %d connections).\n", o.Idle)
}
