// Package metrics exports Braid sessions and listeners as Prometheus metrics.
//
// A Collector reads the counters the sessions keep anyway (braid.Session.Stats,
// braid.Listener.Stats) when it is scraped, so measuring costs nothing between scrapes and
// nothing on the data path. Tracked sessions appear per session and per path while they run;
// when one ends its counts are folded into the totals, so that every _total series only grows.
// A server holding thousands of sessions would export tens of series for each: SessionSeries
// bounds how many sessions have series of their own (the totals always cover them all).
//
// Per path (labels session, path, remote): RTT, delivery rate, state, bytes and chunks sent,
// sent again, acknowledged and received, pieces that failed the integrity check. Per session
// (labels session, mode): bytes acknowledged, path state changes, re-dials, integrity
// failures. Over all sessions, ended ones included: sessions by dispersal mode, sessions open,
// bytes, chunks sent again, path state changes, re-dials, integrity failures, and, for a client,
// failed dials by reason. For a server's listener: sessions opened and refused, and what it
// refused by reason (ERROR code, connection limit, TLS handshake).
package metrics

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/frame"
)

const ns = "braid"

var (
	pathLabels    = []string{"session", "path", "remote"}
	sessionLabels = []string{"session", "mode"}

	descPathRTT      = prometheus.NewDesc(ns+"_path_rtt_seconds", "Smoothed round-trip time of the path.", pathLabels, nil)
	descPathRate     = prometheus.NewDesc(ns+"_path_delivery_rate_bytes_per_second", "Bytes per second the peer acknowledged on the path while it was busy, as last measured.", pathLabels, nil)
	descPathState    = prometheus.NewDesc(ns+"_path_state", "1 for the state the path is in (up, stalled or down), 0 for the others.", append(pathLabels, "state"), nil)
	descPathSent     = prometheus.NewDesc(ns+"_path_sent_bytes_total", "Chunk (or piece) payload bytes written on the path, resent ones included.", pathLabels, nil)
	descPathChunks   = prometheus.NewDesc(ns+"_path_sent_chunks_total", "Chunks (or pieces) written on the path.", pathLabels, nil)
	descPathResent   = prometheus.NewDesc(ns+"_path_resent_bytes_total", "Payload bytes given to the path to send again after a path lost them or timed out.", pathLabels, nil)
	descPathResentCh = prometheus.NewDesc(ns+"_path_resent_chunks_total", "Chunks (or pieces) given to the path to send again.", pathLabels, nil)
	descPathAcked    = prometheus.NewDesc(ns+"_path_acked_bytes_total", "Payload bytes written on the path that the peer acknowledged.", pathLabels, nil)
	descPathRecv     = prometheus.NewDesc(ns+"_path_received_bytes_total", "Chunk (or piece) payload bytes received on the path.", pathLabels, nil)
	descPathRecvCh   = prometheus.NewDesc(ns+"_path_received_chunks_total", "Chunks (or pieces) received on the path.", pathLabels, nil)
	descPathBad      = prometheus.NewDesc(ns+"_path_bad_pieces_total", "Pieces received on the path that failed the integrity check (coded modes).", pathLabels, nil)

	descSessAcked     = prometheus.NewDesc(ns+"_session_acked_bytes_total", "Message bytes the peer acknowledged.", sessionLabels, nil)
	descSessChanges   = prometheus.NewDesc(ns+"_session_path_changes_total", "Paths that came up (joined, re-dialed) and went down (lost) in the session.", append(sessionLabels, "change"), nil)
	descSessRedials   = prometheus.NewDesc(ns+"_session_redials_total", "Paths the client re-dialed and attached again.", sessionLabels, nil)
	descSessIntegrity = prometheus.NewDesc(ns+"_session_integrity_failures_total", "Sets of K pieces that failed the integrity check (coded modes).", sessionLabels, nil)

	descOpen       = prometheus.NewDesc(ns+"_sessions_open", "Sessions running now.", nil, nil)
	descSessions   = prometheus.NewDesc(ns+"_sessions_total", "Sessions run, by dispersal mode.", []string{"mode"}, nil)
	descChanges    = prometheus.NewDesc(ns+"_path_changes_total", "Paths that came up and went down, over all sessions.", []string{"change"}, nil)
	descRedials    = prometheus.NewDesc(ns+"_redials_total", "Paths re-dialed and attached again, over all sessions.", nil, nil)
	descRedialFail = prometheus.NewDesc(ns+"_redial_failures_total", "Re-dial attempts that failed, over all sessions.", nil, nil)
	descIntegrity  = prometheus.NewDesc(ns+"_integrity_failures_total", "Sets of K pieces that failed the integrity check, over all sessions.", nil, nil)
	descBytes      = prometheus.NewDesc(ns+"_bytes_total", "Chunk payload bytes over all sessions and paths, by what happened to them: sent (written, resent ones included), resent (given to a path to send again), acked (acknowledged by the peer) and received.", []string{"what"}, nil)
	descResentCh   = prometheus.NewDesc(ns+"_resent_chunks_total", "Chunks (or pieces) given to a path to send again, over all sessions.", nil, nil)
	descDialFail   = prometheus.NewDesc(ns+"_dial_failures_total", "Sessions a client could not open, by reason (the server's ERROR code in lower case, tls, unreachable or other).", []string{"reason"}, nil)

	descLOpened  = prometheus.NewDesc(ns+"_listener_sessions_opened_total", "Sessions the listener created (SESSION_NEW accepted).", nil, nil)
	descLRefused = prometheus.NewDesc(ns+"_listener_sessions_refused_total", "SESSION_NEW handshakes the listener refused.", nil, nil)
	descLReasons = prometheus.NewDesc(ns+"_listener_refused_total", "Connections, handshakes and sessions the listener refused or ended, by reason: conn_limit, tls_handshake, or the ERROR code sent (unauthorized, too_many_sessions, bad_token, invalid_chunk, over_budget, protocol, ...).", []string{"reason"}, nil)
	descLHeld    = prometheus.NewDesc(ns+"_listener_sessions", "Sessions the listener holds now, accepted or not.", nil, nil)
)

// totals are counters summed over sessions.
type totals struct {
	up, down, redials, redialFail, integrity uint64
	sent, resent, acked, received, resentCh  uint64
}

func (t *totals) add(st braid.Stats) {
	t.up += st.PathsUp
	t.down += st.PathsDown
	t.redials += st.Redials
	t.redialFail += st.RedialFailures
	t.integrity += st.IntegrityFailures
	for _, p := range st.Paths {
		t.sent += p.BytesSent
		t.resent += p.BytesResent
		t.acked += p.BytesAcked
		t.received += p.BytesReceived
		t.resentCh += p.ChunksResent
	}
}

// Collector is a prometheus.Collector of the sessions it tracks and, on a server, its listener.
type Collector struct {
	mu       sync.Mutex
	live     map[*braid.Session]struct{}
	sweepAt  int // len(live) at which Track next looks for ended sessions
	ended    totals
	modes    map[string]uint64
	dialFail map[string]uint64
	listener *braid.Listener
	series   int // most sessions exported with series of their own; < 0 for all
}

// New returns a Collector that tracks nothing yet, exporting every session's own series.
func New() *Collector {
	return &Collector{live: map[*braid.Session]struct{}{}, modes: map[string]uint64{}, dialFail: map[string]uint64{}, series: -1}
}

// SessionSeries limits the sessions exported with series of their own (per session and per
// path) to n at each scrape, those whose ids sort first (so that a scrape shows the same ones
// as the last while they run); n < 0 means no limit, 0 none. Totals cover every session
// whatever n is.
func (c *Collector) SessionSeries(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.series = n
}

// Track adds a session; once it ends, its counts go into the totals and its own series go. The
// Collector takes no goroutine per session (a server may hold tens of thousands): it looks for
// ended sessions at each scrape, and while tracking, whenever the sessions tracked have doubled
// since its last look, so that ended ones never outnumber the live.
func (c *Collector) Track(s *braid.Session) {
	mode := s.Stats().Mode
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) >= c.sweepAt {
		c.sweep()
		c.sweepAt = max(minSweep, 2*len(c.live))
	}
	c.live[s] = struct{}{}
	c.modes[mode]++
}

// minSweep is how many sessions a Collector tracks before it first looks for ended ones.
const minSweep = 64

// sweep moves the sessions that have ended from the live set into the totals. Call with c.mu
// held.
func (c *Collector) sweep() {
	for s := range c.live {
		select {
		case <-s.Done():
			delete(c.live, s)
			c.ended.add(s.Stats())
		default:
		}
	}
}

// SetListener adds a server's listener.
func (c *Collector) SetListener(l *braid.Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listener = l
}

// DialFailed counts a session that could not be opened, by the reason err gives.
func (c *Collector) DialFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dialFail[DialFailure(err)]++
}

// DialFailure names why a Dial failed, for the reason label: the server's ERROR code in lower
// case, "tls" for a failed TLS handshake, "unreachable" for a network error, else "other".
func DialFailure(err error) string {
	var re *frame.RemoteError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return strings.ToLower(re.Code.String())
	case errors.Is(err, braid.ErrTLS), errors.Is(err, braid.ErrFingerprint), errors.Is(err, braid.ErrNotPostQuantum):
		return "tls"
	case errors.As(err, &ne):
		return "unreachable"
	}
	return "other"
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPathRTT, descPathRate, descPathState, descPathSent, descPathChunks, descPathResent,
		descPathResentCh, descPathAcked, descPathRecv, descPathRecvCh, descPathBad, descSessAcked, descSessChanges, descSessRedials,
		descSessIntegrity, descOpen, descSessions, descChanges, descRedials, descRedialFail, descIntegrity, descBytes, descResentCh,
		descDialFail, descLOpened, descLRefused, descLReasons, descLHeld} {
		ch <- d
	}
}

// Collect reads every tracked session's and the listener's counters now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	c.sweep()
	sessions := make([]*braid.Session, 0, len(c.live))
	for s := range c.live {
		sessions = append(sessions, s)
	}
	all := c.ended
	modes := make(map[string]uint64, len(c.modes))
	for m, n := range c.modes {
		modes[m] = n
	}
	dialFail := make(map[string]uint64, len(c.dialFail))
	for r, n := range c.dialFail {
		dialFail[r] = n
	}
	l := c.listener
	limit := c.series
	c.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	stats := make([]braid.Stats, len(sessions))
	for i, s := range sessions {
		stats[i] = s.Stats()
		all.add(stats[i])
	}
	if limit >= 0 && len(stats) > limit {
		slices.SortFunc(stats, func(a, b braid.Stats) int { return strings.Compare(a.ID, b.ID) })
		stats = stats[:limit]
	}
	for _, st := range stats {
		for _, p := range st.Paths {
			pl := []string{st.ID, strconv.Itoa(p.Index), p.Remote}
			gauge(descPathRTT, p.SRTT.Seconds(), pl...)
			gauge(descPathRate, p.DeliveryRate, pl...)
			state := "up"
			switch {
			case !p.Live:
				state = "down"
			case p.Stalled:
				state = "stalled"
			}
			for _, s := range []string{"up", "stalled", "down"} {
				v := 0.0
				if s == state {
					v = 1
				}
				gauge(descPathState, v, append(pl, s)...)
			}
			counter(descPathSent, p.BytesSent, pl...)
			counter(descPathChunks, p.ChunksSent, pl...)
			counter(descPathResent, p.BytesResent, pl...)
			counter(descPathResentCh, p.ChunksResent, pl...)
			counter(descPathAcked, p.BytesAcked, pl...)
			counter(descPathRecv, p.BytesReceived, pl...)
			counter(descPathRecvCh, p.ChunksReceived, pl...)
			counter(descPathBad, p.BadPieces, pl...)
		}
		sl := []string{st.ID, st.Mode}
		counter(descSessAcked, st.BytesAcked, sl...)
		counter(descSessChanges, st.PathsUp, append(sl, "up")...)
		counter(descSessChanges, st.PathsDown, append(sl, "down")...)
		counter(descSessRedials, st.Redials, sl...)
		counter(descSessIntegrity, st.IntegrityFailures, sl...)
	}
	gauge(descOpen, float64(len(sessions)))
	for m, n := range modes {
		counter(descSessions, n, m)
	}
	counter(descChanges, all.up, "up")
	counter(descChanges, all.down, "down")
	counter(descRedials, all.redials)
	counter(descRedialFail, all.redialFail)
	counter(descIntegrity, all.integrity)
	counter(descBytes, all.sent, "sent")
	counter(descBytes, all.resent, "resent")
	counter(descBytes, all.acked, "acked")
	counter(descBytes, all.received, "received")
	counter(descResentCh, all.resentCh)
	for r, n := range dialFail {
		counter(descDialFail, n, r)
	}
	if l != nil {
		ls := l.Stats()
		counter(descLOpened, ls.SessionsOpened)
		counter(descLRefused, ls.SessionsRefused)
		for r, n := range ls.Refused {
			counter(descLReasons, n, r)
		}
		gauge(descLHeld, float64(ls.Sessions))
	}
}
