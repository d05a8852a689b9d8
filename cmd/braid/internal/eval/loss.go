package eval

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Loss is a path's packet loss: the long-run fraction of packets dropped, and how they cluster.
// Burst 0 or 1 is random (Bernoulli) loss: each packet is dropped with probability Rate,
// independently. Burst b > 1 is bursty loss (a Gilbert–Elliott channel whose bad state drops
// every packet and whose good state drops none): the channel stays bad for b packets on average,
// and spends the fraction Rate of packets in it, so the loss rate is still Rate.
type Loss struct {
	Rate  float64 // 0 ≤ Rate ≤ MaxLoss
	Burst float64 // mean packets per loss burst; ≤ 1 means random loss
}

// Limits on loss: beyond MaxLoss a path is better described as cut; MaxBurst bounds the bursts.
const (
	MaxLoss  = 0.5
	MaxBurst = 1000
)

// String formats the loss as a scenario would, e.g. "1%" or "5% in bursts of 4".
func (l Loss) String() string {
	s := strconv.FormatFloat(l.Rate*100, 'g', 4, 64) + "%"
	if l.Burst > 1 {
		s += " in bursts of " + strconv.FormatFloat(l.Burst, 'g', 4, 64)
	}
	return s
}

// ParseLoss parses a loss rate written as a percentage, "1%" or "0.5%", or as a fraction, "0.01".
func ParseLoss(s string) (float64, error) {
	t := strings.TrimSpace(s)
	num, percent := strings.CutSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("loss %q: want a percentage (e.g. \"1%%\") or a fraction (e.g. \"0.01\")", s)
	}
	if percent {
		v /= 100
	}
	if v < 0 || v > MaxLoss {
		return 0, fmt.Errorf("loss %q: must be between 0%% and %g%%", s, MaxLoss*100)
	}
	return v, nil
}

func checkBurst(b float64) error {
	if math.IsNaN(b) || b < 0 || b > MaxBurst {
		return fmt.Errorf("burst %v: want a mean burst length in packets from 1 to %d (0 or 1: random loss)", b, MaxBurst)
	}
	return nil
}

// errLossInproc is why the inproc backend does not run a scenario with loss.
var errLossInproc = errors.New("packet loss needs the netns backend (--backend netns): the inproc backend relays TCP byte streams, which lose no packets")

// HasLoss reports whether any path of sc loses packets at any time.
func (sc *Scenario) HasLoss() bool {
	for _, p := range sc.Paths {
		if p.Loss.Rate > 0 {
			return true
		}
	}
	for _, e := range sc.Events {
		if e.Action == ActionLoss && e.Loss.Rate > 0 {
			return true
		}
	}
	return false
}

// lossModel decides each packet's fate under a Loss; it is a pure function of its random
// source, so that a seeded model is reproducible. Not safe for concurrent use.
type lossModel struct {
	rng    *rand.Rand
	loss   Loss
	toBad  float64 // Gilbert–Elliott: P(good → bad) per packet
	toGood float64 // P(bad → good) per packet
	bad    bool
}

func newLossModel(seed uint64, l Loss) *lossModel {
	m := &lossModel{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	m.set(l)
	return m
}

// set changes the loss; a bursty model starts the new one in its good state.
func (m *lossModel) set(l Loss) {
	m.loss, m.bad = l, false
	m.toBad, m.toGood = 0, 0
	if l.Burst > 1 && l.Rate > 0 {
		// The bad state's mean sojourn is 1/toGood = Burst packets; its stationary share
		// toBad/(toBad+toGood) is Rate.
		m.toGood = 1 / l.Burst
		m.toBad = l.Rate * m.toGood / (1 - l.Rate)
	}
}

// drop reports whether the next packet is lost.
func (m *lossModel) drop() bool {
	switch {
	case m.loss.Rate <= 0:
		return false
	case m.toGood == 0:
		return m.rng.Float64() < m.loss.Rate
	}
	if m.bad {
		m.bad = m.rng.Float64() >= m.toGood
	} else {
		m.bad = m.rng.Float64() < m.toBad
	}
	return m.bad
}
