package eval

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// The goals issue 17 sets for Braid on changing and lossy paths, judged on every run of a
// scenario that has what each needs, from the runs of the same invocation.
const (
	// GoalGoodput: a bulk run's goodput is at least GoodputGoalPct % of the mean capacity (the
	// time-averaged sum of the live paths' rates).
	GoalGoodput    = "goodput"
	GoodputGoalPct = 95.0
	// GoalGap: after each event, the longest time without a delivery is no more than the TCP
	// baseline's (one plain TCP connection per path, same paths) plus one round trip of the
	// slowest path live after the event.
	GoalGap = "gap"
	// GoalLatency: under loss, message latency p99 is no worse than the best single path's (the
	// scenario's compare runs over one path each).
	GoalLatency = "p99"
)

// Verdict is one goal judged on one run.
type Verdict struct {
	Goal   string `json:"goal"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"` // the numbers compared
}

// Judge sets the Goals of the Braid runs over all of sc's paths from results (one invocation's
// runs of sc, on one or more backends), judged against the runs beside them on the same backend.
func Judge(sc *Scenario, results []*Result) {
	for _, r := range results {
		if r.Transport != TransportBraid || r.Variant != "" || r.Skipped != "" {
			continue
		}
		r.Goals = nil
		if sc.Workload.Kind == Bulk {
			r.Goals = append(r.Goals, Verdict{Goal: GoalGoodput, Pass: r.PctOfCapacity >= GoodputGoalPct,
				Detail: fmt.Sprintf("%.1f%% of the mean capacity %.0f Mbit/s (goal ≥ %.0f%%)", r.PctOfCapacity, r.CapacityMbit, GoodputGoalPct)})
		}
		if base := sibling(results, r, TransportTCP, ""); base != nil && len(base.Events) == len(r.Events) {
			for i, e := range r.Events {
				rtt := slowestLiveRTT(sc, time.Duration(e.AtSec*float64(time.Second)))
				limit := base.Events[i].LongestGapMs + float64(rtt)/float64(time.Millisecond)
				r.Goals = append(r.Goals, Verdict{Goal: GoalGap, Pass: e.LongestGapMs <= limit,
					Detail: fmt.Sprintf("%s: longest gap %.0f ms; TCP's %.0f ms + the slowest live path's RTT %v = %.0f ms",
						e.Event, e.LongestGapMs, base.Events[i].LongestGapMs, rtt, limit)})
			}
		}
		if sc.Workload.Kind == Messages && sc.HasLoss() && r.Error == "" {
			best := -1.0
			bestName := ""
			for _, o := range results {
				if o.Transport == TransportBraid && o.Backend == r.Backend && o.Scheduler == r.Scheduler && len(o.Paths) == 1 &&
					o.Error == "" && o.Skipped == "" && o.LatP99Ms > 0 && (best < 0 || o.LatP99Ms < best) {
					best, bestName = o.LatP99Ms, o.Variant
				}
			}
			if best >= 0 {
				r.Goals = append(r.Goals, Verdict{Goal: GoalLatency, Pass: r.LatP99Ms <= best,
					Detail: fmt.Sprintf("p99 %.1f ms; best single path (%s) %.1f ms", r.LatP99Ms, bestName, best)})
			}
		}
	}
}

// sibling returns the run of transport (variant "": over all the paths) beside r: same scenario
// and backend, no error, not skipped.
func sibling(results []*Result, r *Result, transport, variant string) *Result {
	for _, o := range results {
		if o.Transport == transport && o.Variant == variant && o.Backend == r.Backend && o.Scenario == r.Scenario &&
			o.Error == "" && o.Skipped == "" && slices.Equal(o.Paths, r.Paths) {
			return o
		}
	}
	return nil
}

// slowestLiveRTT is the round trip (twice the one-way delay) of the slowest path live at t,
// after the events at or before it; 0 if none is.
func slowestLiveRTT(sc *Scenario, t time.Duration) time.Duration {
	paths, cut := pathsAt(sc, t)
	var slowest time.Duration
	for i, p := range paths {
		if !cut[i] {
			slowest = max(slowest, 2*p.Delay)
		}
	}
	return slowest
}

// writeGoals writes the verdicts of r, one line each, as "   goal PASS|FAIL: detail".
func writeGoals(w io.Writer, r *Result) {
	for _, v := range r.Goals {
		res := "FAIL"
		if v.Pass {
			res = "pass"
		}
		fmt.Fprintf(w, "   goal %-7s %s: %s\n", v.Goal, res, v.Detail)
	}
}
