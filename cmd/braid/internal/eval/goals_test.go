package eval

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	sc, err := Parse([]byte(`{"name": "j", "duration": "10s",
	  "paths": [{"rate": "50mbit", "delay": "10ms"}, {"rate": "50mbit", "delay": "10ms", "loss": "1%"}],
	  "events": [{"at": "2s", "path": 1, "action": "delay", "delay": "50ms"}, {"at": "4s", "path": 1, "action": "cut"}],
	  "workload": {"kind": "bulk"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := slowestLiveRTT(sc, 3*time.Second); got != 100*time.Millisecond {
		t.Errorf("RTT after the delay: %v", got)
	}
	if got := slowestLiveRTT(sc, 5*time.Second); got != 20*time.Millisecond {
		t.Errorf("RTT after the cut: %v", got)
	}
	ev := func(gap ...float64) []EventResult {
		return []EventResult{{Event: "2s delay", AtSec: 2, LongestGapMs: gap[0]}, {Event: "4s cut", AtSec: 4, LongestGapMs: gap[1]}}
	}
	braid := &Result{Scenario: "j", Backend: Netns, Transport: TransportBraid, Paths: []int{0, 1}, PctOfCapacity: 96, Events: ev(250, 200)}
	tcp := &Result{Scenario: "j", Backend: Netns, Transport: TransportTCP, Paths: []int{0, 1}, Events: ev(160, 170)}
	other := &Result{Scenario: "j", Backend: Inproc, Transport: TransportTCP, Paths: []int{0, 1}, Events: ev(1000, 1000)}
	Judge(sc, []*Result{braid, other, tcp})
	want := []struct {
		goal string
		pass bool
		in   string
	}{
		{GoalGoodput, true, "96.0%"},
		{GoalGap, true, "250 ms; TCP's 160 ms + the slowest live path's RTT 100ms = 260 ms"},
		{GoalGap, false, "200 ms; TCP's 170 ms + the slowest live path's RTT 20ms = 190 ms"},
	}
	if len(braid.Goals) != len(want) {
		t.Fatalf("goals %+v", braid.Goals)
	}
	for i, w := range want {
		g := braid.Goals[i]
		if g.Goal != w.goal || g.Pass != w.pass || !strings.Contains(g.Detail, w.in) {
			t.Errorf("goal %d: %+v, want %s %v with %q", i, g, w.goal, w.pass, w.in)
		}
	}
	if tcp.Goals != nil {
		t.Errorf("the baseline judged: %+v", tcp.Goals)
	}

	// Messages under loss: p99 against the best single path's.
	sc.Workload = Workload{Kind: Messages, MessageSize: 1 << 16, MessagesPerSec: 10}
	sc.Events = nil
	m := &Result{Scenario: "j", Backend: Netns, Transport: TransportBraid, Paths: []int{0, 1}, LatP99Ms: 30}
	a := &Result{Scenario: "j", Backend: Netns, Transport: TransportBraid, Variant: "path 0 alone", Paths: []int{0}, LatP99Ms: 25}
	b := &Result{Scenario: "j", Backend: Netns, Transport: TransportBraid, Variant: "path 1 alone", Paths: []int{1}, LatP99Ms: 80}
	Judge(sc, []*Result{m, a, b})
	if len(m.Goals) != 1 || m.Goals[0].Goal != GoalLatency || m.Goals[0].Pass || !strings.Contains(m.Goals[0].Detail, "(path 0 alone) 25.0 ms") {
		t.Errorf("latency goal %+v", m.Goals)
	}
	m.LatP99Ms = 25
	Judge(sc, []*Result{m, a, b})
	if len(m.Goals) != 1 || !m.Goals[0].Pass {
		t.Errorf("p99 equal to the best single path's: %+v", m.Goals)
	}
	var out strings.Builder
	writeGoals(&out, m)
	if !strings.Contains(out.String(), "goal p99     pass: p99 25.0 ms") {
		t.Errorf("printed %q", out.String())
	}
}
