package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/braidnet/braid"
)

// isTerminal reports whether w is a terminal, where a live progress display makes sense (tests
// replace it).
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressRefresh is how often the display is redrawn and the counters sampled.
const progressRefresh = 250 * time.Millisecond

// progress is the live display of one transfer on a terminal (mpb): a bar for the whole (bytes
// so far, of how many, rate, ETA) and a line per path (state, rate, RTT, share of the bytes).
type progress struct {
	p     *mpb.Progress
	total *mpb.Bar
	watch *watch
	done  func() uint64 // the transfer's bytes so far
	// whole is set once the transfer is complete (finish): the display then shows all of it,
	// though done may lag (the receiver's receipt can overtake its last acknowledgements).
	whole atomic.Bool
	size  int64 // -1: unknown

	mu    sync.Mutex
	paths map[int]*mpb.Bar
	st    braid.Stats
	rate  float64 // the whole transfer, bits per second, smoothed
	prev  uint64
	at    time.Time
	start time.Time

	stop    chan struct{}
	stopped chan struct{}
}

// startProgress draws the display on w for a transfer named name of size bytes (-1: unknown),
// whose bytes so far done reports, until finish.
func startProgress(w io.Writer, name string, size int64, stats func() braid.Stats, dir direction, done func() uint64, extra ...mpb.ContainerOption) *progress {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(progressRefresh)}
	if _, ok := w.(*os.File); !ok {
		opts = append(opts, mpb.WithAutoRefresh(), mpb.WithWidth(160)) // isTerminal said it is one (a test's writer): draw all the same, 160 columns wide
	}
	pr := &progress{
		p:     mpb.New(append(opts, extra...)...),
		watch: newWatch(stats, dir),
		done:  done,
		size:  size,
		paths: map[int]*mpb.Bar{},
		at:    time.Now(),
		start: time.Now(),
		stop:  make(chan struct{}), stopped: make(chan struct{}),
	}
	total := max(size, 0)
	var style mpb.BarFillerBuilder = mpb.BarStyle().Lbound("[").Rbound("]")
	if size < 0 {
		style = mpb.NopStyle() // no end to show the way to
	}
	pr.total = pr.p.New(total, style,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(pr.totalText)),
	)
	pr.update()
	go pr.loop()
	return pr
}

func (pr *progress) loop() {
	defer close(pr.stopped)
	t := time.NewTicker(progressRefresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			pr.update()
		case <-pr.stop:
			pr.update()
			return
		}
	}
}

// update samples the counters and adds a line for each path not shown yet.
func (pr *progress) update() {
	st := pr.watch.sample()
	n := pr.count()
	now := time.Now()
	pr.mu.Lock()
	if dt := now.Sub(pr.at).Seconds(); dt > 0 {
		r := float64(n-pr.prev) * 8 / dt
		if pr.prev == 0 && pr.rate == 0 {
			pr.rate = r
		} else {
			pr.rate = (pr.rate + r) / 2
		}
		pr.prev, pr.at = n, now
	}
	pr.st = st
	var added []braid.PathStats
	for _, p := range st.Paths {
		if pr.paths[p.Index] == nil {
			added = append(added, p)
		}
	}
	pr.mu.Unlock()
	for _, p := range added {
		idx := p.Index
		b := pr.p.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return pr.pathText(idx) })))
		pr.mu.Lock()
		pr.paths[idx] = b
		pr.mu.Unlock()
	}
	if pr.size >= 0 {
		pr.total.SetCurrent(int64(min(n, uint64(pr.size))))
	} else {
		pr.total.SetCurrent(int64(n))
	}
}

// count is the transfer's bytes so far: all of them once it is complete.
func (pr *progress) count() uint64 {
	if pr.whole.Load() {
		return uint64(pr.size)
	}
	return pr.done()
}

// totalText is the whole transfer's figures.
func (pr *progress) totalText(decor.Statistics) string {
	n := pr.count()
	pr.mu.Lock()
	rate := pr.rate
	pr.mu.Unlock()
	if pr.size < 0 {
		return fmt.Sprintf("%s  %s", sizeText(n), bitrate(rate))
	}
	eta := "-"
	if left := float64(pr.size) - float64(n); left <= 0 {
		eta = "0s"
	} else if rate > 0 {
		eta = (time.Duration(left * 8 / rate * 1e9)).Round(time.Second).String()
	}
	pct := 100.0
	if pr.size > 0 {
		pct = 100 * float64(n) / float64(pr.size)
	}
	return fmt.Sprintf("%s / %s  %3.0f%%  %s  ETA %s", sizeText(n), sizeText(uint64(pr.size)), pct, bitrate(rate), eta)
}

// pathText is one path's line.
func (pr *progress) pathText(idx int) string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var all uint64
	var p braid.PathStats
	for _, q := range pr.st.Paths {
		all += pathBytes(q, pr.watch.dir)
		if q.Index == idx {
			p = q
		}
	}
	share := 0.0
	if all > 0 {
		share = 100 * float64(pathBytes(p, pr.watch.dir)) / float64(all)
	}
	return fmt.Sprintf("  path %-2d %-7s %12s  rtt %-9s share %3.0f%%  %s", idx, pathState(p), bitrate(pr.watch.rate(idx)), rttText(p.SRTT), share, p.Remote)
}

// finish stops the display, leaving its last state on the screen: complete, with the average
// rate over the whole transfer.
func (pr *progress) finish(complete bool) {
	close(pr.stop)
	<-pr.stopped
	if complete {
		pr.whole.Store(pr.size >= 0)
		pr.mu.Lock()
		pr.rate = float64(pr.count()) * 8 / max(time.Since(pr.start).Seconds(), 1e-9)
		pr.mu.Unlock()
	}
	pr.mu.Lock()
	bars := make([]*mpb.Bar, 0, len(pr.paths))
	for _, b := range pr.paths {
		bars = append(bars, b)
	}
	pr.mu.Unlock()
	if complete && pr.size >= 0 {
		pr.total.SetTotal(pr.size, true)
	} else {
		pr.total.Abort(false)
	}
	for _, b := range bars {
		b.Abort(false)
	}
	pr.p.Wait()
}
