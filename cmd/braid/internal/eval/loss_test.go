package eval

import (
	"math"
	"strings"
	"testing"
)

// lossRun feeds n packets through a model and returns the fraction dropped and the mean length
// of runs of consecutive drops.
func lossRun(m *lossModel, n int) (rate, burst float64) {
	var lost, bursts int
	prev := false
	for range n {
		d := m.drop()
		if d {
			lost++
			if !prev {
				bursts++
			}
		}
		prev = d
	}
	if bursts == 0 {
		return 0, 0
	}
	return float64(lost) / float64(n), float64(lost) / float64(bursts)
}

func TestLossModelRate(t *testing.T) {
	const n = 400_000
	for _, tc := range []struct {
		loss      Loss
		wantBurst float64 // mean run of drops; for random loss 1/(1-p)
	}{
		{Loss{Rate: 0.01}, 1 / 0.99},
		{Loss{Rate: 0.05}, 1 / 0.95},
		{Loss{Rate: 0.2, Burst: 1}, 1 / 0.8},
		{Loss{Rate: 0.01, Burst: 4}, 4},
		{Loss{Rate: 0.05, Burst: 10}, 10},
		{Loss{Rate: 0.3, Burst: 2.5}, 2.5},
	} {
		t.Run(tc.loss.String(), func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				rate, burst := lossRun(newLossModel(seed, tc.loss), n)
				// The fraction of bursts-of-drops: its standard deviation grows with the burst
				// length (sqrt(n/burst) independent bursts); allow 5 of them.
				b := max(tc.loss.Burst, 1)
				sd := math.Sqrt(tc.loss.Rate*(1-tc.loss.Rate)*b*2/n) + 1e-9
				if math.Abs(rate-tc.loss.Rate) > 5*sd {
					t.Errorf("seed %d: loss rate %.5f, want %.5f ± %.5f", seed, rate, tc.loss.Rate, 5*sd)
				}
				if math.Abs(burst-tc.wantBurst)/tc.wantBurst > 0.1 {
					t.Errorf("seed %d: mean burst %.3f, want %.3f ± 10%%", seed, burst, tc.wantBurst)
				}
			}
		})
	}
}

func TestLossModelDeterministicAndChangeable(t *testing.T) {
	a, b := newLossModel(7, Loss{Rate: 0.1, Burst: 3}), newLossModel(7, Loss{Rate: 0.1, Burst: 3})
	for i := range 10_000 {
		if a.drop() != b.drop() {
			t.Fatalf("packet %d: two models with one seed differ", i)
		}
	}
	m := newLossModel(1, Loss{})
	for range 10_000 {
		if m.drop() {
			t.Fatal("no loss dropped a packet")
		}
	}
	m.set(Loss{Rate: 0.5})
	if r, _ := lossRun(m, 100_000); r < 0.48 || r > 0.52 {
		t.Errorf("after set 50%%: rate %.4f", r)
	}
	m.set(Loss{})
	if r, _ := lossRun(m, 10_000); r != 0 {
		t.Errorf("after set 0: rate %.4f", r)
	}
}

func TestParseLoss(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  string
	}{
		{"1%", 0.01, ""}, {" 0.5 %", 0.005, ""}, {"0.05", 0.05, ""}, {"0%", 0, ""}, {"50%", 0.5, ""},
		{"51%", 0, "between"}, {"-1%", 0, "between"}, {"lots", 0, "percentage"}, {"NaN%", 0, "percentage"},
	} {
		got, err := ParseLoss(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseScenarioLoss(t *testing.T) {
	sc, err := Parse([]byte(`{"duration": "4s",
	  "paths": [{"rate": "10mbit", "loss": "1%"}, {"rate": "10mbit", "loss": "5%", "burst": 4}, {"rate": "10mbit"}],
	  "events": [{"at": "1s", "path": 2, "action": "loss", "loss": "2%", "burst": 3},
	             {"at": "2s", "path": 2, "action": "loss", "loss": "0%"}],
	  "workload": {"kind": "bulk"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Paths[0].Loss != (Loss{Rate: 0.01}) || sc.Paths[1].Loss != (Loss{Rate: 0.05, Burst: 4}) || sc.Paths[2].Loss != (Loss{}) {
		t.Errorf("paths %+v", sc.Paths)
	}
	if e := sc.Events[0]; e.Action != ActionLoss || e.Loss != (Loss{Rate: 0.02, Burst: 3}) || e.String() != "1s loss path 2 to 2% in bursts of 3" {
		t.Errorf("event %+v %q", e, e.String())
	}
	if !sc.HasLoss() || sc.Subset([]int{2}).HasLoss() != true || sc.Subset([]int{0}).HasLoss() != true {
		t.Error("HasLoss")
	}
	plain, _ := Parse([]byte(`{"duration": "1s", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk"}}`))
	if plain.HasLoss() {
		t.Error("HasLoss without loss")
	}
	for _, tc := range []struct{ js, want string }{
		{`{"duration": "1s", "paths": [{"rate": "10mbit", "loss": "60%"}], "workload": {"kind": "bulk"}}`, "paths[0].loss"},
		{`{"duration": "1s", "paths": [{"rate": "10mbit", "burst": 3}], "workload": {"kind": "bulk"}}`, "paths[0].burst: only with a loss"},
		{`{"duration": "1s", "paths": [{"rate": "10mbit", "loss": "1%", "burst": -2}], "workload": {"kind": "bulk"}}`, "paths[0].burst"},
		{`{"duration": "1s", "paths": [{"rate": "10mbit"}], "events": [{"at": "0s", "path": 0, "action": "loss"}], "workload": {"kind": "bulk"}}`, "loss: missing"},
		{`{"duration": "1s", "paths": [{"rate": "10mbit"}], "events": [{"at": "0s", "path": 0, "action": "cut", "loss": "1%"}], "workload": {"kind": "bulk"}}`, "only for action loss"},
		{`{"duration": "1s", "paths": [{"rate": "10mbit"}], "events": [{"at": "0s", "path": 0, "action": "loss", "loss": "1%", "burst": 5000}], "workload": {"kind": "bulk"}}`, "burst"},
	} {
		if _, err := Parse([]byte(tc.js)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.js, err, tc.want)
		}
	}
}

func TestInprocSkipsLoss(t *testing.T) {
	sc, err := Parse([]byte(`{"name": "lossy", "duration": "1s", "paths": [{"rate": "10mbit"}, {"rate": "10mbit", "loss": "1%"}],
	  "workload": {"kind": "bulk"}, "compare": [{"name": "clean path", "paths": [0]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	res, err := Run(t.Context(), sc, Options{Backend: Inproc, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	var ran, skipped int
	for _, r := range res {
		switch {
		case r.Skipped != "":
			skipped++
			if r.Skipped != errLossInproc.Error() {
				t.Errorf("skipped for %q", r.Skipped)
			}
		case r.Error == "":
			ran++
		}
	}
	// Braid and the TCP baseline over both paths are skipped; over the clean path alone they run.
	if skipped != 2 || ran != 2 {
		t.Errorf("ran %d, skipped %d; want 2 and 2\n%s", ran, skipped, progress.String())
	}
	if !strings.Contains(progress.String(), "netns") {
		t.Errorf("the note does not say where loss runs: %s", progress.String())
	}
}
