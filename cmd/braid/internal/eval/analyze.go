package eval

import (
	"math"
	"slices"
	"time"
)

// Result is the outcome of one run: one scenario, backend, transport and scheduler.
type Result struct {
	Scenario  string `json:"scenario"`
	Backend   string `json:"backend"`   // inproc or netns
	Transport string `json:"transport"` // braid or mptcp
	Scheduler string `json:"scheduler,omitempty"`
	Mode      string `json:"mode,omitempty"`
	Variant   string `json:"variant,omitempty"` // a Compare run's name
	Paths     []int  `json:"paths"`             // the scenario's path indexes used
	Note      string `json:"note,omitempty"`    // how this run differs from the scenario
	Error     string `json:"error,omitempty"`   // the run failed; figures are what was measured
	// Skipped says why the run was not made (the mode cannot run over its paths); it has no
	// figures, and is not a failure.
	Skipped string `json:"skipped,omitempty"`

	DurationSec   float64 `json:"duration_sec"`
	Bytes         int64   `json:"bytes"`           // delivered to the application within the duration
	GoodputMbit   float64 `json:"goodput_mbit"`    // Bytes over the duration
	SumRateMbit   float64 `json:"sum_rate_mbit"`   // sum of the paths' scenario rates
	PctOfSum      float64 `json:"pct_of_sum"`      // goodput as % of SumRateMbit
	CapacityMbit  float64 `json:"capacity_mbit"`   // time-averaged sum of the live paths' rates, after events
	PctOfCapacity float64 `json:"pct_of_capacity"` // goodput as % of CapacityMbit
	// BaselineMbit is the goodput of the TCP baseline (TransportTCP) over the same paths and
	// backend in the same invocation; PctOfBaseline is goodput as % of it. Zero if none ran.
	BaselineMbit  float64   `json:"baseline_mbit,omitempty"`
	PctOfBaseline float64   `json:"pct_of_baseline,omitempty"`
	OfferedMbit   float64   `json:"offered_mbit,omitempty"`
	PathUnit      string    `json:"path_unit"` // what PathBytes counts
	PathBytes     []int64   `json:"path_bytes"`
	PathMbit      []float64 `json:"path_mbit"`

	Events []EventResult `json:"events,omitempty"`

	Messages   int            `json:"messages"`
	LatP50Ms   float64        `json:"lat_p50_ms,omitempty"`
	LatP99Ms   float64        `json:"lat_p99_ms,omitempty"`
	LatMaxMs   float64        `json:"lat_max_ms,omitempty"`
	BinSec     float64        `json:"bin_sec"`
	Goodput    []float64      `json:"goodput_series_mbit"` // per bin
	PathSeries [][]float64    `json:"path_series_mbit"`    // per path, per bin
	Extra      map[string]any `json:"extra,omitempty"`
	// Goals are issue 17's goals judged on this run (Judge): only a Braid run over all the
	// scenario's paths has them.
	Goals []Verdict `json:"goals,omitempty"`
}

// EventResult is what followed one event.
type EventResult struct {
	Event      string  `json:"event"`
	AtSec      float64 `json:"at_sec"`
	TargetMbit float64 `json:"target_mbit"` // 90% of what the live paths (or the workload) allow after it
	// LongestGapMs is the longest time without a delivery from the event until the next event
	// (or the end).
	LongestGapMs float64 `json:"longest_gap_ms"`
	// RecoveryMs is the time from the event until goodput over the next 500 ms first reaches
	// TargetMbit; -1 if it did not before the next event (or the end), or if no path is left.
	RecoveryMs float64 `json:"recovery_ms"`
}

// pathsAt returns the paths as they are at time t, after the events at or before t (a restored
// path is as the scenario began it), and which of them are cut.
func pathsAt(sc *Scenario, t time.Duration) (paths []PathSpec, cut []bool) {
	paths = slices.Clone(sc.Paths)
	cut = make([]bool, len(sc.Paths))
	for _, e := range sc.Events {
		if e.At > t {
			break
		}
		switch e.Action {
		case ActionCut:
			cut[e.Path] = true
		case ActionRestore:
			cut[e.Path], paths[e.Path] = false, sc.Paths[e.Path]
		case ActionThrottle:
			paths[e.Path].Rate = e.Rate
		case ActionDelay:
			paths[e.Path].Delay = e.Delay
		case ActionLoss:
			paths[e.Path].Loss = e.Loss
		}
	}
	return paths, cut
}

// capacity returns the sum of the live paths' rates (bits/s) at time t, after the events at or
// before t.
func capacity(sc *Scenario, t time.Duration) float64 {
	paths, cut := pathsAt(sc, t)
	var sum float64
	for i, p := range paths {
		if !cut[i] {
			sum += float64(p.Rate)
		}
	}
	return sum
}

// Analyze turns a receiver's recording of a run of sc into a Result (without the run's labels).
func Analyze(sc *Scenario, rec *Recording) *Result {
	dur := sc.Duration
	nb := int((dur + Bin - 1) / Bin)
	r := &Result{
		Scenario:    sc.Name,
		DurationSec: dur.Seconds(),
		SumRateMbit: sc.SumRate(nil).Mbit(),
		PathUnit:    rec.PathUnit,
		BinSec:      Bin.Seconds(),
		Goodput:     make([]float64, nb),
	}
	binBytes := make([]float64, nb)
	var times []time.Duration
	for _, d := range rec.Deliveries {
		if d.At < 0 || d.At > dur {
			continue
		}
		r.Bytes += int64(d.Bytes)
		r.Messages++
		times = append(times, d.At)
		binBytes[min(int(d.At/Bin), nb-1)] += float64(d.Bytes)
	}
	for i, b := range binBytes {
		r.Goodput[i] = b * 8 / Bin.Seconds() / 1e6
	}
	r.GoodputMbit = float64(r.Bytes) * 8 / dur.Seconds() / 1e6
	r.PctOfSum = pct(r.GoodputMbit, r.SumRateMbit)
	var capSum float64
	for i := range nb {
		capSum += capacity(sc, time.Duration(i)*Bin+Bin/2)
	}
	r.CapacityMbit = capSum / float64(nb) / 1e6
	r.PctOfCapacity = pct(r.GoodputMbit, r.CapacityMbit)
	var offered float64 // bits/s; 0 = as much as the paths take
	if sc.Workload.Kind == Messages {
		offered = sc.Workload.MessagesPerSec * float64(sc.Workload.MessageSize) * 8
		r.OfferedMbit = offered / 1e6
	}

	// Per-path bytes and series from the samples.
	np := len(sc.Paths)
	r.PathBytes = make([]int64, np)
	r.PathMbit = make([]float64, np)
	r.PathSeries = make([][]float64, np)
	for p := range np {
		r.PathSeries[p] = make([]float64, nb)
	}
	var first, last *Sample
	for k := range rec.Samples {
		s := &rec.Samples[k]
		if s.At > dur+Bin/2 {
			break
		}
		if first == nil {
			first = s
		}
		if last != nil && s.At > last.At {
			b := min(max(int((last.At+Bin/2)/Bin), 0), nb-1)
			dt := (s.At - last.At).Seconds()
			for p := range min(np, len(s.Bytes), len(last.Bytes)) {
				r.PathSeries[p][b] = float64(s.Bytes[p]-last.Bytes[p]) * 8 / dt / 1e6
			}
		}
		last = s
	}
	if first != nil && last != nil {
		for p := range min(np, len(last.Bytes), len(first.Bytes)) {
			r.PathBytes[p] = last.Bytes[p] - first.Bytes[p]
			r.PathMbit[p] = float64(r.PathBytes[p]) * 8 / dur.Seconds() / 1e6
		}
	}

	// Stalls and recovery after each event.
	for i, e := range sc.Events {
		end := dur
		for _, f := range sc.Events[i+1:] {
			if f.At > e.At {
				end = f.At
				break
			}
		}
		er := EventResult{Event: e.String(), AtSec: e.At.Seconds()}
		target := capacity(sc, e.At)
		if offered > 0 {
			target = min(target, offered)
		}
		target *= 0.9
		er.TargetMbit = target / 1e6
		er.LongestGapMs = longestGap(times, e.At, end).Seconds() * 1000
		er.RecoveryMs = -1
		const window = 5 // bins: 500 ms
		for b := int((e.At + Bin - 1) / Bin); target > 0 && b < nb && time.Duration(b)*Bin < end; b++ {
			hi := min(b+window, nb, int((end+Bin-1)/Bin))
			if hi <= b {
				break
			}
			var sum float64
			for _, v := range binBytes[b:hi] {
				sum += v
			}
			if sum*8/(float64(hi-b)*Bin.Seconds()) >= target {
				er.RecoveryMs = (time.Duration(b)*Bin - e.At).Seconds() * 1000
				break
			}
		}
		r.Events = append(r.Events, er)
	}

	if len(rec.Latencies) > 0 {
		l := slices.Clone(rec.Latencies)
		slices.Sort(l)
		q := func(p float64) float64 {
			i := int(math.Ceil(p*float64(len(l)))) - 1
			return l[min(max(i, 0), len(l)-1)].Seconds() * 1000
		}
		r.LatP50Ms, r.LatP99Ms, r.LatMaxMs = q(0.50), q(0.99), q(1)
	}
	return r
}

// longestGap is the longest interval within [from, to] without a delivery, given sorted
// delivery times: a stall that is still going on at to counts up to to.
func longestGap(times []time.Duration, from, to time.Duration) time.Duration {
	prev := from
	var gap time.Duration
	i, _ := slices.BinarySearch(times, from)
	for ; i < len(times) && times[i] <= to; i++ {
		gap = max(gap, times[i]-prev)
		prev = times[i]
	}
	return max(gap, to-prev)
}

func pct(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return 100 * a / b
}
