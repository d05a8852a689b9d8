package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/disperse"
)

// SessionOptions selects the multipath measurements.
type SessionOptions struct {
	Paths     []int         // path counts to measure
	Volume    int64         // bytes in each transfer
	Runs      int           // transfers per path count and for the raw baseline; the median is reported
	Pings     int           // message round trips per path count
	ChunkSize int           // session chunk size (0: default)
	MaxTime   time.Duration // bound on one transfer
	// Modes are the dispersal modes to measure at each path count (nil: plain only). A coded
	// mode (shamir:K/N, erasure:K/N, aont:K/N) runs only at N paths.
	Modes []string
	// Copy sends with Session.Send, which copies each message; by default the transfer uses
	// SendNoCopy, as raw TCP's write does not copy either.
	Copy bool
	// Security lists the path security to measure each case with: "tls" (the default TLS 1.3)
	// and "insecure" (plain TCP). Nil means both, so that TLS is reported ÷ plaintext.
	Security []string
	// Setups is how many dials time session setup per case (0: 20).
	Setups int
	// Scheduler is the sessions' Config.Scheduler ("": the default, adaptive).
	Scheduler string
}

// SessionRow is one path count's result.
type SessionRow struct {
	Paths        int        `json:"paths"`
	Mode         string     `json:"mode"`
	Security     string     `json:"security"`     // "tls" or "insecure"
	KeyExchange  string     `json:"key_exchange"` // the paths' TLS key exchange, "none" without TLS
	Setup        Latency    `json:"setup"`        // Dial until every path has attached
	TLSRatio     float64    `json:"tls_ratio"`    // throughput ÷ the insecure row's of the same case (0 if not measured)
	Throughput   Throughput `json:"throughput"`
	RawRatio     float64    `json:"raw_ratio"`     // throughput ÷ raw TCP
	RawTLSRatio  float64    `json:"raw_tls_ratio"` // TLS rows: throughput ÷ raw TLS (0 otherwise)
	Latency      Latency    `json:"latency"`       // one-chunk message round trips
	LatencyRatio float64    `json:"latency_ratio"` // median ÷ the 1-path median
	RawRTTRatio  float64    `json:"raw_rtt_ratio"` // median ÷ the raw TCP ping-pong median
	PlainRatio   float64    `json:"plain_ratio"`   // throughput ÷ plain mode's at the same path count and security (0 if not measured)
}

// SessionReport is a multipath run.
type SessionReport struct {
	Volume     int64        `json:"volume"`
	Runs       int          `json:"runs"`
	Send       string       `json:"send"` // "SendNoCopy" or "Send"
	MessageLen int          `json:"message_len"`
	Raw        Throughput   `json:"raw"`
	RawTLS     *Throughput  `json:"raw_tls,omitempty"` // one crypto/tls connection, when a case runs TLS
	RawLatency Latency      `json:"raw_latency"`       // raw TCP ping-pongs of MessageLen bytes
	Rows       []SessionRow `json:"rows"`
}

const (
	modeSink    = 'S'
	modeEcho    = 'E'
	benchPiece  = 1 << 20 // message size of a bulk transfer
	latencySize = 64
)

// RunSessions measures sessions of each path count on loopback beside one raw TCP connection
// moving the same bytes in the same write sizes.
func RunSessions(ctx context.Context, o SessionOptions) (*SessionReport, error) {
	servers := map[bool]*benchServer{}
	for _, tls := range []bool{true, false} {
		l, err := braid.Listen("127.0.0.1:0", &braid.Config{MaxPaths: 64, Insecure: !tls, MaxHandshakesPerIP: 256})
		if err != nil {
			return nil, err
		}
		defer l.Close()
		go serveBenchSessions(ctx, l)
		servers[tls] = &benchServer{addr: l.Addr().String(), fingerprint: l.Fingerprint()}
	}
	raw, err := startRawPeer()
	if err != nil {
		return nil, err
	}
	defer raw.close()

	rep := &SessionReport{Volume: o.Volume, Runs: max(o.Runs, 1), MessageLen: latencySize, Send: "SendNoCopy"}
	if o.Copy {
		rep.Send = "Send"
	}
	frames := o.Volume / benchPiece
	cases, err := sessionCases(o)
	if err != nil {
		return nil, err
	}
	anyTLS := slices.ContainsFunc(cases, func(c sessionCase) bool { return c.TLS })
	var rawRuns, rawTLSRuns []Throughput
	rows := make([][]Throughput, len(cases))
	// Alternate raw and every case within each round, so drift affects all alike.
	for range rep.Runs {
		t, err := raw.throughput(ctx, benchPiece, frames, o.MaxTime)
		if err != nil {
			return nil, err
		}
		rawRuns = append(rawRuns, t)
		if anyTLS {
			if t, err = raw.tlsThroughput(ctx, benchPiece, frames, o.MaxTime); err != nil {
				return nil, fmt.Errorf("bench: raw TLS: %w", err)
			}
			rawTLSRuns = append(rawTLSRuns, t)
		}
		for i, c := range cases {
			t, err := sessionThroughput(ctx, servers[c.TLS], c, o)
			if err != nil {
				return nil, fmt.Errorf("bench: %s: %w", c, err)
			}
			rows[i] = append(rows[i], t)
		}
	}
	rep.Raw = medianRun(rawRuns)
	if anyTLS {
		t := medianRun(rawTLSRuns)
		rep.RawTLS = &t
	}
	if rep.RawLatency, err = raw.latency(ctx, o.Pings, latencySize); err != nil {
		return nil, err
	}
	for i, c := range cases {
		row := SessionRow{Paths: c.Paths, Mode: c.Mode, Security: c.security(), Throughput: medianRun(rows[i])}
		row.RawRatio = row.Throughput.MiBps() / rep.Raw.MiBps()
		if c.TLS {
			row.RawTLSRatio = row.Throughput.MiBps() / rep.RawTLS.MiBps()
		}
		if row.Latency, row.KeyExchange, err = sessionLatency(ctx, servers[c.TLS], c, o); err != nil {
			return nil, err
		}
		if row.Setup, err = sessionSetup(ctx, servers[c.TLS], c, o); err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, row)
	}
	for i, row := range rep.Rows {
		for _, p := range rep.Rows {
			if p.Paths == row.Paths && p.Security == row.Security && p.Mode == "plain" {
				rep.Rows[i].PlainRatio = row.Throughput.MiBps() / p.Throughput.MiBps()
			}
			if row.Security == "tls" && p.Paths == row.Paths && p.Mode == row.Mode && p.Security == "insecure" {
				rep.Rows[i].TLSRatio = row.Throughput.MiBps() / p.Throughput.MiBps()
			}
		}
	}
	// Latency is compared with the single-path session of the same security (the first row if
	// 1 path was not asked).
	for i := range rep.Rows {
		base := rep.Rows[0].Latency.Median
		if one := findRow(rep.Rows, 1, rep.Rows[i].Security); one != nil {
			base = one.Latency.Median
		}
		rep.Rows[i].LatencyRatio = float64(rep.Rows[i].Latency.Median) / float64(base)
		rep.Rows[i].RawRTTRatio = float64(rep.Rows[i].Latency.Median) / float64(rep.RawLatency.Median)
	}
	return rep, nil
}

// benchServer is one of the benchmark's loopback servers.
type benchServer struct {
	addr        string
	fingerprint string // "" without TLS
}

// sessionCase is one measured configuration: a path count, a mode and the path security.
type sessionCase struct {
	Paths int
	Mode  string
	TLS   bool
}

func (c sessionCase) security() string {
	if c.TLS {
		return "tls"
	}
	return "insecure"
}

func (c sessionCase) String() string {
	return fmt.Sprintf("%s, %s, %s", Count(c.Paths, "path"), c.Mode, c.security())
}

// sessionCases lists the path count and mode pairs to measure: every mode at every path count,
// except that a coded mode runs only at its N.
func sessionCases(o SessionOptions) ([]sessionCase, error) {
	modes := o.Modes
	if len(modes) == 0 {
		modes = []string{"plain"}
	}
	security := o.Security
	if len(security) == 0 {
		security = []string{"tls", "insecure"}
	}
	var cases []sessionCase
	for _, m := range modes {
		mode, err := disperse.Parse(m)
		if err != nil {
			return nil, err
		}
		found := false
		for _, n := range o.Paths {
			if !mode.Coded() || mode.N == n {
				for _, sec := range security {
					if sec != "tls" && sec != "insecure" {
						return nil, fmt.Errorf("bench: security %q: want tls or insecure", sec)
					}
					cases = append(cases, sessionCase{Paths: n, Mode: mode.String(), TLS: sec == "tls"})
				}
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("bench: mode %s needs %d paths; add %d to the path counts", mode, mode.N, mode.N)
		}
	}
	return cases, nil
}

func findRow(rows []SessionRow, paths int, security string) *SessionRow {
	for i := range rows {
		if rows[i].Paths == paths && rows[i].Mode == "plain" && rows[i].Security == security {
			return &rows[i]
		}
	}
	return nil
}

// dialOnly opens a session of case c to srv.
func dialOnly(ctx context.Context, srv *benchServer, c sessionCase, o SessionOptions) (*braid.Session, error) {
	return braid.Dial(ctx, srv.addr, &braid.Config{Paths: c.Paths, Mode: c.Mode, ChunkSize: o.ChunkSize,
		Insecure: !c.TLS, ServerFingerprint: srv.fingerprint, Scheduler: o.Scheduler})
}

func dialBench(ctx context.Context, srv *benchServer, c sessionCase, o SessionOptions, mode byte) (*braid.Session, error) {
	s, err := dialOnly(ctx, srv, c, o)
	if err != nil {
		return nil, err
	}
	if err := s.Send(ctx, []byte{mode}); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

// sessionThroughput sends Volume bytes as 1 MiB messages and waits for the server's count. Each
// message is filled from the pattern, as raw TCP's are; with SendNoCopy, the buffers the session
// hands back are filled again.
func sessionThroughput(ctx context.Context, srv *benchServer, c sessionCase, o SessionOptions) (Throughput, error) {
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime)
	defer cancel()
	s, err := dialBench(ctx, srv, c, o, modeSink)
	if err != nil {
		return Throughput{}, err
	}
	defer s.Close()
	src := newPatternReader(o.Volume)
	free := make(chan []byte, 256) // buffers handed back by SendNoCopy
	take := func() []byte {
		select {
		case b := <-free:
			return b
		default:
			return make([]byte, benchPiece)
		}
	}
	var copyBuf []byte // Send's one buffer, reused: Send copies it
	if o.Copy {
		copyBuf = make([]byte, benchPiece)
	}
	start := time.Now()
	var sent int64
	msgs := 0
	for {
		buf := copyBuf
		if !o.Copy {
			buf = take()
		}
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if o.Copy {
				err = s.Send(ctx, buf[:n])
			} else {
				err = s.SendNoCopy(ctx, buf[:n], func() {
					select {
					case free <- buf:
					default:
					}
				})
			}
			if err != nil {
				return Throughput{}, err
			}
			sent += int64(n)
			msgs++
		}
		if rerr != nil {
			break
		}
	}
	if err := s.Send(ctx, nil); err != nil { // an empty message ends the transfer
		return Throughput{}, err
	}
	count, err := s.Receive(ctx)
	if err != nil {
		return Throughput{}, err
	}
	dur := time.Since(start)
	if len(count) != 8 || int64(binary.BigEndian.Uint64(count)) != sent {
		return Throughput{}, fmt.Errorf("bench: server counted %x, sent %d", count, sent)
	}
	return Throughput{Bytes: sent, Frames: msgs, Duration: dur}, nil
}

// sessionSetup times Dial (until every path has attached) o.Setups times; each session is then
// aborted.
func sessionSetup(ctx context.Context, srv *benchServer, c sessionCase, o SessionOptions) (Latency, error) {
	n := o.Setups
	if n <= 0 {
		n = 20
	}
	times := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		s, err := dialOnly(ctx, srv, c, o)
		if err != nil {
			return Latency{}, err
		}
		times = append(times, time.Since(start))
		s.Abort()
	}
	return Summarize(times), nil
}

// sessionLatency times round trips of one-chunk messages echoed by the server, and reports the
// key exchange the session's paths used.
func sessionLatency(ctx context.Context, srv *benchServer, c sessionCase, o SessionOptions) (Latency, string, error) {
	s, err := dialBench(ctx, srv, c, o, modeEcho)
	if err != nil {
		return Latency{}, "", err
	}
	defer s.Close()
	kex := KeyExchanges(s.Stats().Paths)
	msg := make([]byte, latencySize)
	rtts := make([]time.Duration, 0, o.Pings)
	for i := range o.Pings {
		binary.BigEndian.PutUint64(msg, uint64(i))
		start := time.Now()
		if err := s.Send(ctx, msg); err != nil {
			return Latency{}, "", err
		}
		if _, err := s.Receive(ctx); err != nil {
			return Latency{}, "", err
		}
		rtts = append(rtts, time.Since(start))
	}
	return Summarize(rtts), kex, nil
}

// KeyExchanges names the key exchanges of a session's paths, each once, in path order: one name
// when they all agree.
func KeyExchanges(paths []braid.PathStats) string {
	var names []string
	for _, p := range paths {
		if !slices.Contains(names, p.KeyExchange) {
			names = append(names, p.KeyExchange)
		}
	}
	return strings.Join(names, "/")
}

// serveBenchSessions answers benchmark sessions: a sink counts bytes until an empty message and
// answers the count; an echo returns every message.
func serveBenchSessions(ctx context.Context, l *braid.Listener) {
	for {
		s, err := l.Accept(ctx)
		if err != nil {
			return
		}
		go func() {
			defer s.Close()
			mode, err := s.Receive(ctx)
			if err != nil || len(mode) != 1 {
				return
			}
			var total uint64
			for {
				msg, err := s.Receive(ctx)
				if err != nil { // io.EOF once the client closes
					return
				}
				switch mode[0] {
				case modeEcho:
					if s.Send(ctx, msg) != nil {
						return
					}
				case modeSink:
					if len(msg) == 0 {
						if s.Send(ctx, binary.BigEndian.AppendUint64(nil, total)) != nil {
							return
						}
						continue
					}
					total += uint64(len(msg))
					s.Release(msg)
				}
			}
		}()
	}
}
