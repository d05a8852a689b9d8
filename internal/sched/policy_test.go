package sched

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	kib   = 1 << 10
	mib   = 1 << 20
	chunk = 256 * kib // the session's default chunk size
	ms    = time.Millisecond
)

// mbit converts Mbit/s to bytes per second.
func mbit(x float64) float64 { return x * 1e6 / 8 }

var (
	r200 = mbit(200) // 25 MB/s
	r100 = mbit(100)
	r25  = mbit(25) // 3.125 MB/s
)

// allNames is every policy, by its constant.
var allNames = []string{AdaptiveName, LowestRTTName, RedundantName, RoundRobinName}

func newPolicy(t testing.TB, name string) Scheduler {
	t.Helper()
	s, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pickPositions runs n picks of size bytes and returns the positions picked. If enqueue is set,
// each pick adds size to the chosen path's QueuedBytes, as the session's queue would grow. It
// fails the test on an index out of range or a dead path.
func pickPositions(t *testing.T, s Scheduler, paths []Path, size, n int, enqueue bool) []int {
	t.Helper()
	var got []int
	for range n {
		i := s.Pick(paths, size)
		if i < -1 || i >= len(paths) {
			t.Fatalf("%s: Pick returned %d for %d paths", s.Name(), i, len(paths))
		}
		if i >= 0 && !paths[i].Live {
			t.Fatalf("%s: Pick chose dead path %+v", s.Name(), paths[i])
		}
		got = append(got, i)
		if i >= 0 && enqueue {
			paths[i].QueuedBytes += int64(size)
		}
	}
	return got
}

func TestPolicyNames(t *testing.T) {
	if got, want := Names(), []string{"adaptive", "lowest-rtt", "redundant", "round-robin"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if !slices.Equal(Names(), slices.Sorted(slices.Values(allNames))) {
		t.Errorf("Names() = %v, constants %v", Names(), allNames)
	}
	if DefaultName != AdaptiveName {
		t.Errorf("DefaultName = %q", DefaultName)
	}
	tests := []struct {
		name      string
		typ       string
		replicate bool
	}{
		{AdaptiveName, "*sched.Adaptive", false},
		{LowestRTTName, "*sched.LowestRTT", false},
		{RedundantName, "*sched.Redundant", true},
		{RoundRobinName, "*sched.RoundRobin", false},
	}
	for _, tt := range tests {
		s := newPolicy(t, tt.name)
		if s.Name() != tt.name || fmt.Sprintf("%T", s) != tt.typ {
			t.Errorf("New(%q) = %T named %q", tt.name, s, s.Name())
		}
		r, ok := s.(Replicator)
		if ok != tt.replicate || (ok && !r.Replicate()) {
			t.Errorf("%s: Replicator %v", tt.name, ok)
		}
	}
	_, err := New("fastest")
	if err == nil {
		t.Fatal("New(fastest) succeeded")
	}
	for _, n := range append(allNames, "fastest") {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not mention %q", err, n)
		}
	}
}

func TestAdaptiveRule(t *testing.T) {
	fast := Path{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: r200}
	slow := Path{Index: 1, Live: true, SRTT: 10 * ms, DeliveryRate: r25}
	with := func(p Path, f func(*Path)) Path { f(&p); return p }
	tests := []struct {
		name  string
		paths []Path
		want  int // position
	}{
		{"idle: the faster path", []Path{fast, slow}, 0},
		{"idle, equal rates: the lower RTT", []Path{
			with(fast, func(p *Path) { p.SRTT = 50 * ms }), with(slow, func(p *Path) { p.DeliveryRate = r200 })}, 1},
		{"fast path a little backlogged: slow path later than the bound", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 256 * kib }), slow}, 0},
		{"fast path backlogged 1 MiB but with room: still the earliest, so the fast path", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 1 * mib }), slow}, 0},
		{"fast path full with 1 MiB: the idle slow path is within the bound", []Path{
			with(fast, func(p *Path) { p.QueuedBytes, p.Full = 1*mib, true }), slow}, 1},
		{"fast path full, slow path's own queue would delay delivery: wait for the fast path", []Path{
			with(fast, func(p *Path) { p.QueuedBytes, p.Full = 1*mib, true }), with(slow, func(p *Path) { p.QueuedBytes = 256 * kib })}, 0},
		{"fast path full, slow path full too: wait for the fast path", []Path{
			with(fast, func(p *Path) { p.QueuedBytes, p.Full = 1*mib, true }), with(slow, func(p *Path) { p.Full = true })}, 0},
		{"slow path really the earliest", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 8 * mib }), with(slow, func(p *Path) { p.QueuedBytes = 256 * kib })}, 1},
		{"long-RTT path beyond the bound, even idle", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 2 * mib }), with(slow, func(p *Path) { p.SRTT = 300 * ms })}, 0},
		{"in flight within one BDP is not a backlog", []Path{
			with(fast, func(p *Path) { p.SRTT, p.InFlight = 100*ms, 2e6 }),
			with(fast, func(p *Path) { p.Index, p.SRTT, p.QueuedBytes = 1, 100*ms, 64*kib })}, 0},
		{"in flight beyond one BDP is", []Path{
			with(fast, func(p *Path) { p.SRTT, p.InFlight = 100*ms, 5e6 }),
			with(fast, func(p *Path) { p.Index, p.SRTT, p.QueuedBytes = 1, 100*ms, 64*kib })}, 1},
		{"unmeasured path assumed as good as the best: probed", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 1 * mib }), {Index: 1, Live: true}}, 1},
		{"unmeasured path probed up to the cap waits for a sample", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 8 * mib }), {Index: 1, Live: true, InFlight: 2 * chunk}}, 0},
		{"unmeasured path just under the probe cap", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 8 * mib }), {Index: 1, Live: true, InFlight: 2*chunk - 1}}, 1},
		{"unmeasured path with an RTT sample keeps it", []Path{
			with(fast, func(p *Path) { p.QueuedBytes = 64 * kib }), {Index: 1, Live: true, SRTT: 200 * ms}}, 0},
		// A briefly stalled 5 ms path (Full, 320 KiB behind: 52 ms at its rate) and an unused
		// 80 ms one: at 50 Mbit/s the long path would deliver a 64 KiB chunk within the bound,
		// but it is in slow start and needs two more round trips first (400 ms): wait.
		{"unused long path in slow start: wait for the short one", []Path{
			{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: mbit(50), QueuedBytes: 320 * kib, Full: true},
			{Index: 1, Live: true, SRTT: 160 * ms}}, 0},
		{"unused path with a short RTT: slow start costs little", []Path{
			{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: mbit(50), QueuedBytes: 320 * kib, Full: true},
			{Index: 1, Live: true, SRTT: 10 * ms}}, 1},
		{"no samples anywhere: the least backlog", []Path{
			{Index: 0, Live: true, QueuedBytes: 1 * mib}, {Index: 1, Live: true}}, 1},
		{"no samples anywhere: no probe cap", []Path{
			{Index: 0, Live: true, QueuedBytes: 8 * mib}, {Index: 1, Live: true, QueuedBytes: 4 * mib}}, 1},
		{"no rate samples: RTT still counts", []Path{
			{Index: 0, Live: true, SRTT: 100 * ms}, {Index: 1, Live: true, SRTT: 10 * ms}}, 1},
		{"the earliest path is dead", []Path{with(fast, func(p *Path) { p.Live = false }), slow}, 1},
		{"positions, not Index", []Path{with(slow, func(p *Path) { p.Index = 7 }), with(fast, func(p *Path) { p.Index = 3 })}, 1},
	}
	for _, tt := range tests {
		for _, name := range []string{AdaptiveName, RedundantName} {
			if got := newPolicy(t, name).Pick(tt.paths, chunk); got != tt.want {
				t.Errorf("%s: %s: Pick = %d, want %d", name, tt.name, got, tt.want)
			}
		}
	}
}

func TestTiesTakeTurns(t *testing.T) {
	tests := []struct {
		name  string
		paths []Path
		want  []int // positions
	}{
		{"identical paths with RTT samples, all idle, lowest-rtt only", []Path{
			{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: r100},
			{Index: 1, Live: true, SRTT: 10 * ms, DeliveryRate: r100},
			{Index: 2, Live: true, SRTT: 10 * ms, DeliveryRate: r100}}, []int{0, 1, 2, 0, 1, 2, 0}},
		{"unmeasured paths, by Index", []Path{
			{Index: 5, Live: true}, {Index: 0, Live: true}, {Index: 3, Live: true}}, []int{1, 2, 0, 1, 2, 0}},
		{"a dead one skipped", []Path{
			{Index: 0, Live: true}, {Index: 1}, {Index: 2, Live: true}}, []int{0, 2, 0, 2}},
	}
	for _, tt := range tests {
		for _, name := range []string{AdaptiveName, LowestRTTName, RedundantName} {
			if strings.HasSuffix(tt.name, "lowest-rtt only") && name != LowestRTTName {
				continue // the adaptive rule keeps to the path it used last (TestAffinity)
			}
			s := newPolicy(t, name)
			if got := pickPositions(t, s, tt.paths, chunk, len(tt.want), false); !slices.Equal(got, tt.want) {
				t.Errorf("%s: %s: picked %v, want %v", name, tt.name, got, tt.want)
			}
		}
	}
}

// TestAffinity: the adaptive rule keeps light traffic on the path the peer's data last came on
// (Answer), or else the path it used last, while that path has an RTT sample, is idle, and
// delivers within stickyFactor × the earliest + stickySlack; it moves when the path falls behind
// by more, has a backlog, or is full.
func TestAffinity(t *testing.T) {
	idle := func(i int, srtt time.Duration) Path {
		return Path{Index: i, Live: true, SRTT: srtt, DeliveryRate: r100}
	}
	tests := []struct {
		name  string
		first []Path // the view of the first pick, which sets the path used last
		then  []Path
		want  int // position picked from then
	}{
		{"identical idle paths: stay", []Path{idle(0, 10*ms), idle(1, 10*ms)}, []Path{idle(0, 10*ms), idle(1, 10*ms)}, 0},
		{"slightly later: stay", []Path{idle(0, 10*ms), idle(1, 11*ms)}, []Path{idle(0, 12*ms), idle(1, 11*ms)}, 0},
		{"much later: move", []Path{idle(0, 10*ms), idle(1, 11*ms)}, []Path{idle(0, 30*ms), idle(1, 11*ms)}, 1},
		{"a backlog: move", []Path{idle(0, 10*ms), idle(1, 10*ms)},
			[]Path{{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: r100, QueuedBytes: 4 * chunk}, idle(1, 10*ms)}, 1},
		{"no RTT sample: no affinity", []Path{{Index: 0, Live: true}, {Index: 1, Live: true}},
			[]Path{{Index: 0, Live: true}, {Index: 1, Live: true}}, 1},
		{"dead: move", []Path{idle(0, 10*ms), idle(1, 10*ms)}, []Path{{Index: 0, SRTT: 10 * ms}, idle(1, 10*ms)}, 1},
		{"the peer's data came on another path: answer there", []Path{idle(0, 10*ms), idle(1, 10*ms)},
			[]Path{idle(0, 10*ms), {Index: 1, Live: true, SRTT: 11 * ms, DeliveryRate: r100, Answer: true}}, 1},
		{"answer path much later: the earliest", []Path{idle(0, 10*ms), idle(1, 10*ms)},
			[]Path{idle(0, 10*ms), {Index: 1, Live: true, SRTT: 40 * ms, DeliveryRate: r100, Answer: true}}, 0},
	}
	for _, tt := range tests {
		for _, name := range []string{AdaptiveName, RedundantName} {
			s := newPolicy(t, name)
			if got := s.Pick(tt.first, chunk); got != 0 {
				t.Fatalf("%s: %s: first Pick = %d, want 0", name, tt.name, got)
			}
			if got := s.Pick(tt.then, chunk); got != tt.want {
				t.Errorf("%s: %s: Pick = %d, want %d", name, tt.name, got, tt.want)
			}
		}
	}
}

func TestLowestRTTRule(t *testing.T) {
	a := Path{Index: 0, Live: true, SRTT: 50 * ms, DeliveryRate: r200} // cap 2.5 MB
	b := Path{Index: 1, Live: true, SRTT: 10 * ms, DeliveryRate: r25}  // cap: the floor, 512 KiB
	with := func(p Path, f func(*Path)) Path { f(&p); return p }
	tests := []struct {
		name  string
		paths []Path
		want  int
	}{
		{"lowest RTT with room, though slower", []Path{a, b}, 1},
		{"lowest RTT full: the next lowest", []Path{a, with(b, func(p *Path) { p.QueuedBytes = 2 * chunk })}, 0},
		{"in flight counts against the cap", []Path{a, with(b, func(p *Path) { p.InFlight = 2 * chunk })}, 0},
		{"just under the cap", []Path{a, with(b, func(p *Path) { p.InFlight = 2*chunk - 1 })}, 1},
		{"room up to twice the bandwidth-delay product", []Path{
			with(a, func(p *Path) { p.QueuedBytes = 2 * mib }), with(b, func(p *Path) { p.SRTT = 60 * ms })}, 0},
		{"no room past twice the bandwidth-delay product", []Path{
			with(a, func(p *Path) { p.QueuedBytes = 2.6e6 }), with(b, func(p *Path) { p.SRTT = 60 * ms })}, 1},
		{"the floor, two chunks, above a small product", []Path{
			with(a, func(p *Path) { p.SRTT, p.QueuedBytes = 5*ms, 2*chunk-1 }), with(b, func(p *Path) { p.SRTT = 6 * ms })}, 0},
		{"unmeasured RTT tried first", []Path{a, b, {Index: 2, Live: true}}, 2},
		{"none has room: the fewest queued bytes", []Path{
			with(a, func(p *Path) { p.QueuedBytes, p.InFlight = 1*mib, 32*mib }), with(b, func(p *Path) { p.QueuedBytes = 2 * mib })}, 0},
		{"none has room, equal queues: the lower RTT", []Path{
			with(a, func(p *Path) { p.QueuedBytes = 4 * mib }), with(b, func(p *Path) { p.QueuedBytes = 4 * mib })}, 1},
		{"dead lowest-RTT path skipped", []Path{a, with(b, func(p *Path) { p.Live = false })}, 0},
	}
	for _, tt := range tests {
		if got := newPolicy(t, LowestRTTName).Pick(tt.paths, chunk); got != tt.want {
			t.Errorf("%s: Pick = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestHasRoom(t *testing.T) {
	tests := []struct {
		name string
		p    Path
		size int
		want bool
	}{
		{"dead", Path{}, chunk, false},
		{"unmeasured, idle", Path{Live: true}, chunk, true},
		{"unmeasured, under two chunks", Path{Live: true, QueuedBytes: chunk, InFlight: chunk - 1}, chunk, true},
		{"unmeasured, two chunks", Path{Live: true, QueuedBytes: chunk, InFlight: chunk}, chunk, false},
		{"unmeasured, zero-size chunks", Path{Live: true}, 0, false},
		{"rate without RTT: the floor", Path{Live: true, DeliveryRate: r200, InFlight: 2 * chunk}, chunk, false},
		{"under 2 x BDP", Path{Live: true, DeliveryRate: r200, SRTT: 100 * ms, InFlight: 4.9e6}, chunk, true},
		{"over 2 x BDP", Path{Live: true, DeliveryRate: r200, SRTT: 100 * ms, InFlight: 5.1e6}, chunk, false},
		{"under the ceiling", Path{Live: true, DeliveryRate: 1e12, SRTT: time.Second, QueuedBytes: 32*mib - 1}, chunk, true},
		{"at the ceiling", Path{Live: true, DeliveryRate: 1e12, SRTT: time.Second, QueuedBytes: 32 * mib}, chunk, false},
		{"floor above the ceiling", Path{Live: true, DeliveryRate: 1e12, SRTT: time.Second, QueuedBytes: 100 * mib}, 64 * mib, true},
		{"negative counts as 0", Path{Live: true, QueuedBytes: math.MinInt64, InFlight: -5, SRTT: -time.Second, DeliveryRate: -1}, chunk, true},
		{"NaN rate: unmeasured", Path{Live: true, DeliveryRate: math.NaN(), SRTT: time.Hour, InFlight: 2 * chunk}, chunk, false},
		{"infinite rate, no RTT", Path{Live: true, DeliveryRate: math.Inf(1), InFlight: 2 * chunk}, chunk, false},
		{"infinite rate and RTT: the ceiling", Path{Live: true, DeliveryRate: math.Inf(1), SRTT: math.MaxInt64, InFlight: 31 * mib}, chunk, true},
		{"huge backlog", Path{Live: true, DeliveryRate: math.Inf(1), SRTT: math.MaxInt64, QueuedBytes: math.MaxInt64, InFlight: math.MaxInt64}, chunk, false},
	}
	for _, tt := range tests {
		if got := HasRoom(tt.p, tt.size); got != tt.want {
			t.Errorf("%s: HasRoom(%+v, %d) = %v", tt.name, tt.p, tt.size, got)
		}
	}
}

func TestRTTJump(t *testing.T) {
	for _, name := range []string{AdaptiveName, LowestRTTName, RedundantName} {
		s := newPolicy(t, name)
		paths := []Path{
			{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: r100},
			{Index: 1, Live: true, SRTT: 30 * ms, DeliveryRate: r100},
		}
		if got := pickPositions(t, s, paths, chunk, 5, false); !slices.Equal(got, []int{0, 0, 0, 0, 0}) {
			t.Errorf("%s: before the jump: %v", name, got)
		}
		paths[0].SRTT = 400 * ms
		if got := pickPositions(t, s, paths, chunk, 5, false); !slices.Equal(got, []int{1, 1, 1, 1, 1}) {
			t.Errorf("%s: after the jump: %v", name, got)
		}
		paths[0].SRTT = 10 * ms
		if got := pickPositions(t, s, paths, chunk, 2, false); !slices.Equal(got, []int{0, 0}) {
			t.Errorf("%s: after it recovers: %v", name, got)
		}
	}
}

func TestDeadPaths(t *testing.T) {
	attractive := Path{Live: false, SRTT: ms, DeliveryRate: 1e12}
	tests := []struct {
		name  string
		paths []Path
		want  int // the only acceptable position
	}{
		{"nil", nil, -1},
		{"empty", []Path{}, -1},
		{"all dead", []Path{attractive, {Index: 1}, {Index: 2, SRTT: ms}}, -1},
		{"only the worst is live", []Path{attractive, {Index: 1, Live: true, QueuedBytes: 1 << 40, SRTT: time.Hour, DeliveryRate: 1}, {Index: 2}}, 1},
		{"only an unmeasured one is live", []Path{attractive, {Index: 1, Live: true, InFlight: 1 << 40}}, 1},
	}
	for _, tt := range tests {
		for _, name := range allNames {
			paths := slices.Clone(tt.paths)
			for i, got := range pickPositions(t, newPolicy(t, name), paths, chunk, 6, true) {
				if got != tt.want {
					t.Errorf("%s: %s: pick %d = %d, want %d", name, tt.name, i, got, tt.want)
				}
			}
		}
	}
}

func TestUnmeasuredPathsProbed(t *testing.T) {
	unmeasured := func() []Path {
		return []Path{{Index: 0, Live: true}, {Index: 1, Live: true}, {Index: 2, Live: true}, {Index: 3, Live: true}}
	}
	mixed := func() []Path {
		return []Path{
			{Index: 0, Live: true, SRTT: 10 * ms, DeliveryRate: r200},
			{Index: 1, Live: true, SRTT: 10 * ms, DeliveryRate: r25},
			{Index: 2, Live: true},
			{Index: 3, Live: true, SRTT: 80 * ms},
		}
	}
	tests := []struct {
		name     string
		policies []string
		paths    func() []Path
		enqueue  bool
		picks    int
	}{
		{"all unmeasured, fixed view", allNames, unmeasured, false, 4},
		{"all unmeasured, queues growing", allNames, unmeasured, true, 4},
		// The unmeasured 80 ms path is in slow start: a chunk needs four of its round trips, so
		// it is the earliest once path 0's backlog exceeds about 360 ms (35 chunks).
		{"new paths among measured ones", allNames, mixed, true, 64},
	}
	for _, tt := range tests {
		for _, name := range tt.policies {
			paths := tt.paths()
			got := pickPositions(t, newPolicy(t, name), paths, chunk, tt.picks, tt.enqueue)
			for i := range paths {
				if !slices.Contains(got, i) {
					t.Errorf("%s: %s: path %d never picked in %v", name, tt.name, i, got)
				}
			}
		}
	}
	// Adaptive's probe stops at the cap while the path has no rate sample.
	paths := mixed()
	pickPositions(t, &Adaptive{}, paths, chunk, 200, true)
	for _, i := range []int{2, 3} {
		if q := paths[i].QueuedBytes; q == 0 || q > probeChunks*chunk {
			t.Errorf("unmeasured path %d given %d bytes", i, q)
		}
	}
}

func TestSlowStart(t *testing.T) {
	const w = initialWindow
	for _, c := range []struct {
		n, want float64 // bytes; round trips
	}{{0, 0}, {1, 0}, {w, 0}, {w + 1, 1}, {3 * w, 1}, {3*w + 1, 2}, {64 * kib, 2}, {256 * kib, 4}, {1 << 62, 48}} {
		if got := slowStart(c.n, 0.1); math.Abs(got-c.want*0.1) > 1e-9 {
			t.Errorf("slowStart(%v bytes) = %v s; want %v round trips", c.n, got, c.want)
		}
	}
}

// TestEstimateFinite checks the adaptive arithmetic on extreme inputs: never NaN or negative.
func TestEstimateFinite(t *testing.T) {
	bytes := []float64{0, 1, chunk, 1 << 62, math.MaxInt64}
	rates := []float64{math.SmallestNonzeroFloat64, 1, r25, maxRate}
	rtts := []float64{0, 1e-9, 0.01, time.Duration(math.MaxInt64).Seconds()}
	for _, q := range bytes {
		for _, f := range bytes {
			for _, size := range bytes {
				for _, r := range rates {
					for _, rtt := range rtts {
						wait, linger, _ := estimate(q, f, size, r, rtt)
						if math.IsNaN(wait) || math.IsNaN(linger) || wait < 0 || linger < wait {
							t.Fatalf("estimate(%g, %g, %g, %g, %g) = %g, %g", q, f, size, r, rtt, wait, linger)
						}
					}
				}
			}
		}
	}
}

func TestExtremeValues(t *testing.T) {
	normal := Path{Index: 9, Live: true, SRTT: 20 * ms, DeliveryRate: r100}
	tests := []struct {
		name  string
		paths []Path
		want  int // position, or -2 for any live path
	}{
		{"huge backlog", []Path{{Index: 0, Live: true, QueuedBytes: math.MaxInt64, InFlight: math.MaxInt64, SRTT: ms, DeliveryRate: r200}, normal}, 1},
		{"huge RTT", []Path{{Index: 0, Live: true, SRTT: math.MaxInt64, DeliveryRate: r200}, normal}, 1},
		{"negative everything", []Path{{Index: 0, Live: true, QueuedBytes: math.MinInt64, InFlight: -1, SRTT: -time.Second, DeliveryRate: -5}, normal}, -2},
		{"NaN and infinite rates", []Path{
			{Index: 0, Live: true, DeliveryRate: math.NaN()},
			{Index: 1, Live: true, SRTT: 10 * ms, DeliveryRate: math.Inf(1)},
			{Index: 2, Live: true, DeliveryRate: math.Inf(-1), QueuedBytes: math.MaxInt64}}, -2},
		{"infinite rate, zero RTT", []Path{{Index: 0, Live: true, DeliveryRate: math.Inf(1)}, normal}, 0},
		{"tiny rate", []Path{{Index: 0, Live: true, DeliveryRate: math.SmallestNonzeroFloat64}, {Index: 1, Live: true, DeliveryRate: 1}}, 1},
		{"all tiny rates", []Path{{Index: 0, Live: true, DeliveryRate: math.SmallestNonzeroFloat64, QueuedBytes: 1}, {Index: 1, Live: true, DeliveryRate: math.SmallestNonzeroFloat64}}, -2},
		{"max values", []Path{{Index: math.MaxInt, Live: true, QueuedBytes: math.MaxInt64, InFlight: math.MaxInt64, SRTT: math.MaxInt64, DeliveryRate: math.MaxFloat64}, {Index: math.MinInt, Live: true}}, -2},
	}
	for _, size := range []int{0, -1, chunk, math.MaxInt} {
		for _, tt := range tests {
			for _, name := range []string{AdaptiveName, LowestRTTName, RedundantName} {
				for i, got := range pickPositions(t, newPolicy(t, name), slices.Clone(tt.paths), size, 4, false) {
					// The expectations are for ordinary chunks; a chunk of MaxInt bytes is
					// delivered first by the fastest path, whatever its RTT or backlog.
					if got < 0 || (tt.want >= 0 && got != tt.want && size == chunk && name != LowestRTTName) {
						t.Errorf("%s: %s, size %d: pick %d = %d, want %d", name, tt.name, size, i, got, tt.want)
					}
				}
			}
		}
	}
}

func TestPickNoAllocs(t *testing.T) {
	for _, n := range []int{4, 16} {
		paths := benchPaths(n)
		for _, name := range allNames {
			s := newPolicy(t, name)
			if a := testing.AllocsPerRun(100, func() { s.Pick(paths, chunk) }); a != 0 {
				t.Errorf("%s with %d paths: %v allocations per Pick", name, n, a)
			}
		}
	}
}

// benchPaths is a view of n paths with varied measurements, one dead, one unmeasured.
func benchPaths(n int) []Path {
	paths := make([]Path, n)
	for i := range paths {
		paths[i] = Path{
			Index:        i,
			Live:         i != 1,
			QueuedBytes:  int64(i%5) * chunk,
			InFlight:     int64(i%3) * 300 * kib,
			SRTT:         time.Duration(10+7*i) * ms,
			DeliveryRate: mbit(float64(int(25) << (i % 4))),
		}
	}
	paths[n-1].SRTT, paths[n-1].DeliveryRate = 0, 0
	return paths
}

func BenchmarkPick(b *testing.B) {
	for _, name := range allNames {
		for _, n := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/paths=%d", name, n), func(b *testing.B) {
				paths := benchPaths(n)
				s := newPolicy(b, name)
				b.ReportAllocs()
				for b.Loop() {
					s.Pick(paths, chunk)
				}
			})
		}
	}
}

// fuzzPathBytes is the encoding of one path in FuzzPick's input: flags (bit 0: live; the rest:
// Index), then QueuedBytes, InFlight, SRTT and the bits of DeliveryRate, 8 bytes each.
const fuzzPathBytes = 1 + 4*8

func fuzzEncode(paths ...Path) []byte {
	var b []byte
	for _, p := range paths {
		flags := byte(p.Index << 1)
		if p.Live {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(p.QueuedBytes))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.InFlight))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.SRTT))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.DeliveryRate))
	}
	return b
}

func FuzzPick(f *testing.F) {
	f.Add(fuzzEncode(benchPaths(4)...), chunk)
	f.Add(fuzzEncode(Path{Index: 0, Live: true}, Path{Index: 1, Live: true, DeliveryRate: math.NaN()}), 0)
	f.Add(fuzzEncode(Path{Index: 3, Live: true, QueuedBytes: math.MaxInt64, DeliveryRate: math.Inf(1), SRTT: math.MaxInt64}, Path{Index: 3}), -1)
	f.Add([]byte{}, math.MaxInt)
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		paths := make([]Path, 0, len(data)/fuzzPathBytes)
		for b := data; len(b) >= fuzzPathBytes; b = b[fuzzPathBytes:] {
			paths = append(paths, Path{
				Index:        int(b[0] >> 1),
				Live:         b[0]&1 != 0,
				QueuedBytes:  int64(binary.LittleEndian.Uint64(b[1:])),
				InFlight:     int64(binary.LittleEndian.Uint64(b[9:])),
				SRTT:         time.Duration(binary.LittleEndian.Uint64(b[17:])),
				DeliveryRate: math.Float64frombits(binary.LittleEndian.Uint64(b[25:])),
			})
		}
		anyLive := slices.ContainsFunc(paths, func(p Path) bool { return p.Live })
		orig := fuzzEncode(paths...)
		for _, name := range allNames {
			s := newPolicy(t, name)
			for range 3 {
				i := s.Pick(paths, size)
				if i < -1 || i >= len(paths) || (i >= 0 && !paths[i].Live) || (i < 0) == anyLive {
					t.Fatalf("%s: Pick = %d for %+v (size %d)", name, i, paths, size)
				}
			}
		}
		if !slices.Equal(fuzzEncode(paths...), orig) {
			t.Fatal("Pick modified its input")
		}
		e := estimator{chunk: float64(max(size, 0)), bestRate: nominalRate, probeCap: probeBytes}
		for i := range paths {
			if HasRoom(paths[i], size) && !paths[i].Live {
				t.Fatalf("HasRoom(%+v) for a dead path", paths[i])
			}
			wait, linger, ok := e.estimate(&paths[i])
			if ok && (math.IsNaN(wait) || math.IsNaN(linger) || wait < 0 || linger < wait) {
				t.Fatalf("estimate(%+v) = %g, %g", paths[i], wait, linger)
			}
		}
	})
}
