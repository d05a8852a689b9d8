// Package bench measures Braid against raw TCP in the same run: ping latency percentiles and
// DATA throughput across payload sizes, each reported beside its baseline as a ratio.
//
// The baselines do the same work with no framing: a raw ping-pong of the same number of bytes as
// a PING frame, and a raw sink that reads everything the client writes from the same source and
// buffer size as the DATA frames, answering once at the end. The figure that matters is the ratio.
package bench

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/braidnet/braid/frame"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// Options selects what to measure.
type Options struct {
	Addr      string        // Braid server to measure; empty starts one on loopback
	Pings     int           // latency probes per side
	Sizes     []int         // DATA payload sizes
	Volume    int64         // bytes sent per size (at least MinFrames frames)
	MinFrames int           // lower bound on frames per size
	MaxTime   time.Duration // upper bound on time per size and side
	Runs      int           // transfers per size and side, alternating; the median is reported
	TLS       *tls.Config   // for Addr: the TLS to speak to it (nil: plain TCP)
}

// DefaultSizes are 64 B to 4 MiB in steps of ×4.
func DefaultSizes() []int {
	var s []int
	for n := 64; n <= 4<<20; n *= 4 {
		s = append(s, n)
	}
	return s
}

// Latency holds round-trip percentiles.
type Latency struct {
	Samples int           `json:"samples"`
	Median  time.Duration `json:"median_ns"`
	P90     time.Duration `json:"p90_ns"`
	P99     time.Duration `json:"p99_ns"`
	P999    time.Duration `json:"p999_ns"`
	Max     time.Duration `json:"max_ns"`
}

// Throughput is one payload size's result for one side.
type Throughput struct {
	Bytes    int64         `json:"bytes"`
	Frames   int           `json:"frames"`
	Duration time.Duration `json:"duration_ns"`
}

// MiBps returns the rate in MiB/s.
func (t Throughput) MiBps() float64 {
	if t.Duration <= 0 {
		return 0
	}
	return float64(t.Bytes) / (1 << 20) / t.Duration.Seconds()
}

// Mbps returns the rate in megabits (10^6 bits) per second, the unit of the rate columns.
func (t Throughput) Mbps() float64 {
	if t.Duration <= 0 {
		return 0
	}
	return float64(t.Bytes) * 8 / 1e6 / t.Duration.Seconds()
}

// FramesPerSec returns the frame rate.
func (t Throughput) FramesPerSec() float64 {
	if t.Duration <= 0 {
		return 0
	}
	return float64(t.Frames) / t.Duration.Seconds()
}

// SizeResult pairs Braid and raw TCP at one payload size.
type SizeResult struct {
	Size  int         `json:"size"`
	Braid Throughput  `json:"braid"`
	Raw   *Throughput `json:"raw,omitempty"`
	Ratio float64     `json:"ratio,omitempty"`
}

// Report is a whole run.
type Report struct {
	Target       string       `json:"target"`
	PingPayload  int          `json:"ping_payload"`
	BraidLatency Latency      `json:"braid_latency"`
	RawLatency   *Latency     `json:"raw_latency,omitempty"`
	MedianRatio  float64      `json:"median_ratio,omitempty"`
	Runs         int          `json:"runs"`
	Throughput   []SizeResult `json:"throughput"`
}

const pingPayload = 8

// Run performs the measurements. With no Addr it starts a Braid server and the raw baselines on
// loopback and stops them before returning; with an Addr, only Braid is measured, because no raw
// peer runs there.
func Run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Target: o.Addr, PingPayload: pingPayload, Runs: max(o.Runs, 1)}
	var raw *rawPeer
	if o.Addr == "" {
		addr, stop, err := startLoopbackServer()
		if err != nil {
			return nil, err
		}
		defer stop()
		rep.Target = "loopback " + addr
		o.Addr = addr
		if raw, err = startRawPeer(); err != nil {
			return nil, err
		}
		defer raw.close()
	}
	c, err := frame.Dial(ctx, o.Addr, &frame.Config{TLS: o.TLS})
	if err != nil {
		return nil, err
	}
	defer c.Close()

	if rep.BraidLatency, err = braidLatency(ctx, c, o.Pings); err != nil {
		return nil, err
	}
	if raw != nil {
		l, err := raw.latency(ctx, o.Pings, wire.HeaderSize+pingPayload)
		if err != nil {
			return nil, err
		}
		rep.RawLatency = &l
		rep.MedianRatio = float64(rep.BraidLatency.Median) / float64(l.Median)
	}

	for _, size := range o.Sizes {
		n := max(int64(o.MinFrames), o.Volume/int64(size))
		var braidRuns, rawRuns []Throughput
		// Alternate the two sides so that drift in the machine's load affects both alike.
		for range max(o.Runs, 1) {
			t, err := braidThroughput(ctx, c, size, n, o.MaxTime)
			if err != nil {
				return nil, fmt.Errorf("bench: %d-byte frames: %w", size, err)
			}
			braidRuns = append(braidRuns, t)
			if raw != nil {
				t, err := raw.throughput(ctx, size, n, o.MaxTime)
				if err != nil {
					return nil, err
				}
				rawRuns = append(rawRuns, t)
			}
		}
		r := SizeResult{Size: size, Braid: medianRun(braidRuns)}
		if raw != nil {
			t := medianRun(rawRuns)
			r.Raw = &t
			r.Ratio = r.Braid.MiBps() / t.MiBps()
		}
		rep.Throughput = append(rep.Throughput, r)
	}
	return rep, nil
}

// medianRun returns the run with the median rate.
func medianRun(runs []Throughput) Throughput {
	slices.SortFunc(runs, func(a, b Throughput) int { return cmp.Compare(a.MiBps(), b.MiBps()) })
	return runs[len(runs)/2]
}

func startLoopbackServer() (string, func(), error) {
	srv, err := frame.NewServer(nil)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

func braidLatency(ctx context.Context, c *frame.Client, n int) (Latency, error) {
	var probe [pingPayload]byte
	rtts := make([]time.Duration, 0, n)
	for i := range n {
		binary.BigEndian.PutUint64(probe[:], uint64(i))
		rtt, err := c.Ping(ctx, probe[:])
		if err != nil {
			return Latency{}, err
		}
		rtts = append(rtts, rtt)
	}
	return Summarize(rtts), nil
}

// Summarize computes percentiles of samples (which it sorts).
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	pct := func(q float64) time.Duration {
		i := int(q*float64(len(samples))+0.5) - 1
		return samples[min(max(i, 0), len(samples)-1)]
	}
	return Latency{Samples: len(samples), Median: pct(0.5), P90: pct(0.9), P99: pct(0.99), P999: pct(0.999), Max: samples[len(samples)-1]}
}

func braidThroughput(ctx context.Context, c *frame.Client, size int, frames int64, limit time.Duration) (Throughput, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	src := newPatternReader(int64(size) * frames)
	res, err := c.Upload(ctx, src, size)
	if err != nil {
		return Throughput{}, err
	}
	return Throughput{Bytes: res.Bytes, Frames: res.Frames, Duration: res.Duration}, nil
}

// patternReader yields n bytes of a fixed pattern; Braid and raw TCP read from the same kind, so
// that both pay the same cost to produce their payload.
type patternReader struct {
	left    int64
	pattern [4096]byte
}

func newPatternReader(n int64) *patternReader {
	p := &patternReader{left: n}
	for i := range p.pattern {
		p.pattern[i] = byte(i * 7)
	}
	return p
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	for off := 0; off < len(b); {
		off += copy(b[off:], p.pattern[:])
	}
	p.left -= int64(len(b))
	return len(b), nil
}

// rawPeer is the baseline: an echo server for ping-pong and a sink for throughput, plain TCP.
type rawPeer struct {
	echo, sink net.Listener
	tlsSink    net.Listener // raw TLS: crypto/tls on one TCP connection, as any Go program gets it
	tlsClient  *tls.Config  // trusts tlsSink's certificate
}

func startRawPeer() (*rawPeer, error) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		echo.Close()
		return nil, err
	}
	cert, err := secure.SelfSigned("127.0.0.1")
	if err != nil {
		echo.Close()
		sink.Close()
		return nil, err
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		echo.Close()
		sink.Close()
		return nil, err
	}
	fp, _ := secure.CertFingerprint(cert)
	clientConf, err := secure.ClientConfig(secure.Options{ServerFingerprint: fp}, tlsLn.Addr().String())
	if err != nil {
		return nil, err
	}
	serverConf, err := secure.ServerConfig(secure.Options{}, cert)
	if err != nil {
		return nil, err
	}
	p := &rawPeer{echo: echo, sink: sink, tlsSink: tls.NewListener(tlsLn, serverConf), tlsClient: clientConf}
	go AcceptLoop(echo, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	go AcceptLoop(p.tlsSink, countBytes)
	go AcceptLoop(sink, countBytes)
	return p, nil
}

// countBytes reads c to its end and answers with the count, as a bulk transfer's sink.
func countBytes(c net.Conn) {
	buf := make([]byte, 64<<10)
	var total uint64
	for {
		n, err := c.Read(buf)
		total += uint64(n)
		if err == io.EOF {
			c.Write(binary.BigEndian.AppendUint64(nil, total))
			return
		}
		if err != nil {
			return
		}
	}
}

// AcceptLoop serves each connection ln accepts with serve, on a goroutine of its own, and
// closes it afterwards; it returns when ln is closed.
func AcceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}

func (p *rawPeer) close() {
	p.echo.Close()
	p.sink.Close()
	p.tlsSink.Close()
}

// latency runs n raw ping-pongs of size bytes.
func (p *rawPeer) latency(ctx context.Context, n, size int) (Latency, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.echo.Addr().String())
	if err != nil {
		return Latency{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, size)
	rtts := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return Latency{}, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return Latency{}, err
		}
		rtts = append(rtts, time.Since(start))
	}
	return Summarize(rtts), nil
}

// throughput sends frames×size bytes in writes of size bytes and waits for the sink's count.
func (p *rawPeer) throughput(ctx context.Context, size int, frames int64, limit time.Duration) (Throughput, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.sink.Addr().String())
	if err != nil {
		return Throughput{}, err
	}
	return transfer(c, size, frames, limit)
}

// tlsThroughput is throughput over one crypto/tls connection (TLS 1.3, the default key
// exchange, AES-GCM): the most a Go program gets from TLS on one connection here.
func (p *rawPeer) tlsThroughput(ctx context.Context, size int, frames int64, limit time.Duration) (Throughput, error) {
	d := tls.Dialer{Config: p.tlsClient}
	c, err := d.DialContext(ctx, "tcp", p.tlsSink.Addr().String())
	if err != nil {
		return Throughput{}, err
	}
	return transfer(c, size, frames, limit)
}

// transfer sends frames×size bytes on c in writes of size bytes, half-closes it, and waits for
// the sink's count.
func transfer(c net.Conn, size int, frames int64, limit time.Duration) (Throughput, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(limit))
	src := newPatternReader(int64(size) * frames)
	buf := make([]byte, size)
	start := time.Now()
	var sent int64
	var writes int
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return Throughput{}, err
			}
			sent += int64(n)
			writes++
		}
		if rerr != nil {
			break
		}
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		return Throughput{}, fmt.Errorf("bench: raw sink: %w", err)
	}
	dur := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(count[:])); got != sent {
		return Throughput{}, fmt.Errorf("bench: raw sink received %d of %d bytes", got, sent)
	}
	return Throughput{Bytes: sent, Frames: writes, Duration: dur}, nil
}
