package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/braidnet/braid"
)

// A transfer's live figures: the session's counters sampled over time, for the progress
// display (progress.go), the interval reports and the summary (summary.go).

// direction says which counters measure a transfer on each path: what was written on it (this
// end sends; resent chunks included) or what arrived on it (this end receives). The whole
// transfer's progress is what the peer acknowledged (Stats.BytesAcked), each byte once.
type direction bool

const (
	sending   direction = false
	receiving direction = true
)

// pathBytes is what path p has moved in direction d.
func pathBytes(p braid.PathStats, d direction) uint64 {
	if d == receiving {
		return p.BytesReceived
	}
	return p.BytesSent
}

// pathState names a path's state for people: up, stalled (its retransmission timer expired
// and it takes no new data until a round trip completes) or down.
func pathState(p braid.PathStats) string {
	switch {
	case !p.Live:
		return "down"
	case p.Stalled:
		return "stalled"
	}
	return "up"
}

// watch samples a session's counters and keeps each path's recent rate.
type watch struct {
	stats func() braid.Stats
	dir   direction

	mu     sync.Mutex
	last   braid.Stats
	lastAt time.Time
	rates  map[int]float64 // bits per second, by path index, smoothed
}

func newWatch(stats func() braid.Stats, dir direction) *watch {
	return &watch{stats: stats, dir: dir, last: stats(), lastAt: time.Now(), rates: map[int]float64{}}
}

// sample takes the counters now and updates the paths' rates (an exponentially weighted
// average over about two samples, so that the display moves but does not flicker).
func (w *watch) sample() braid.Stats {
	st := w.stats()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	dt := now.Sub(w.lastAt).Seconds()
	if dt <= 0 {
		return st
	}
	prev := map[int]uint64{}
	for _, p := range w.last.Paths {
		prev[p.Index] = pathBytes(p, w.dir)
	}
	for _, p := range st.Paths {
		r := float64(pathBytes(p, w.dir)-prev[p.Index]) * 8 / dt
		if old, ok := w.rates[p.Index]; ok {
			r = (old + r) / 2
		}
		w.rates[p.Index] = r
	}
	w.last, w.lastAt = st, now
	return st
}

// rate returns path i's recent rate in bits per second.
func (w *watch) rate(i int) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rates[i]
}

// intervals prints iperf3-style reports: every interval, each path's bytes and rate over it,
// chunks it sent again and its RTT, and their sum.
type intervals struct {
	w      io.Writer
	stats  func() braid.Stats
	dir    direction
	start  time.Time
	prevAt time.Duration
	prev   map[int]braid.PathStats
	header bool
}

func newIntervals(w io.Writer, stats func() braid.Stats, dir direction) *intervals {
	iv := &intervals{w: w, stats: stats, dir: dir, start: time.Now(), prev: map[int]braid.PathStats{}}
	for _, p := range stats().Paths {
		iv.prev[p.Index] = p
	}
	return iv
}

// run reports every every until stop is closed, then once more for the part interval left.
func (iv *intervals) run(every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			iv.report()
		case <-stop:
			if time.Since(iv.start)-iv.prevAt > every/10 {
				iv.report()
			}
			return
		}
	}
}

// intervalLine is the layout of one report line.
const intervalLine = "[%3s]  %-15s  %10s  %13s  %6s  %9s  %s\n"

// report prints the interval from the last report to now.
func (iv *intervals) report() {
	st := iv.stats()
	now := time.Since(iv.start)
	dt := (now - iv.prevAt).Seconds()
	if !iv.header {
		fmt.Fprintf(iv.w, intervalLine, " ID", "interval", "transfer", "bitrate", "resent", "rtt", "state")
		iv.header = true
	}
	span := fmt.Sprintf("%.2f-%.2f s", iv.prevAt.Seconds(), now.Seconds())
	var sum, resent uint64
	for _, p := range st.Paths {
		old := iv.prev[p.Index]
		n := pathBytes(p, iv.dir) - pathBytes(old, iv.dir)
		r := p.ChunksResent - old.ChunksResent
		sum, resent = sum+n, resent+r
		if n == 0 && !p.Live && !old.Live && old.Index == p.Index {
			continue // long gone
		}
		fmt.Fprintf(iv.w, intervalLine, fmt.Sprint(p.Index), span, sizeText(n), bitrate(float64(n)*8/dt), fmt.Sprint(r), rttText(p.SRTT), pathState(p))
		iv.prev[p.Index] = p
	}
	fmt.Fprintf(iv.w, intervalLine, "SUM", span, sizeText(sum), bitrate(float64(sum)*8/dt), fmt.Sprint(resent), "", "")
	iv.prevAt = now
}

// bitrate formats bits per second as iperf3 does, in decimal units.
func bitrate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

// sizeText formats a byte count in binary units.
func sizeText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// rttText formats a round-trip time in milliseconds ("-" before the first sample).
func rttText(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}
