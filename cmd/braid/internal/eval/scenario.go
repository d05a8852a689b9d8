// Package eval is Braid's evaluation harness: it runs a scenario (paths with rates and delays,
// timed events such as a cut, and a workload) over emulated paths and reports goodput, per-path
// bytes, stalls after events and message latency, as tables, JSON and PNG plots.
//
// Two backends emulate the paths. "inproc" (any user) puts one internal/faultproxy per path on
// loopback between a client and a server in the same process. "netns" (root, Linux) builds two
// network namespaces joined by one veth pair per path, shaped with tc tbf, with the delay added
// in user space, and runs the same scenario over Linux MPTCP as the comparison peer.
package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on what a scenario may ask for, so that every run is bounded in time and bytes.
const (
	MaxPaths        = 8
	MaxDuration     = 5 * time.Minute
	MaxRate         = 10_000_000_000 // bits per second
	MaxDelay        = 5 * time.Second
	MaxEvents       = 256
	MaxMessageSize  = 16 << 20
	MaxMessageRate  = 10_000 // messages per second
	DefaultBulkSize = 1 << 20
)

// Scenario is a parsed, validated scenario file.
type Scenario struct {
	Name        string        // from the file name unless given
	Description string        // one line for reports
	Duration    time.Duration // how long the workload runs
	Paths       []PathSpec    // by index, from 0
	Events      []Event       // sorted by At
	Workload    Workload
	Compare     []Compare // extra runs over a subset of the paths
}

// PathSpec is one emulated path: its rate, one-way delay and packet loss.
type PathSpec struct {
	Rate  Rate          // bits per second, each direction
	Delay time.Duration // one way, each direction
	Loss  Loss          // of every packet, each direction (netns backend only)
}

// Action is what an event does to its path.
type Action string

// The event actions.
const (
	ActionCut      Action = "cut"      // the path fails (inproc: connections reset, new ones refused; netns: link down)
	ActionRestore  Action = "restore"  // back to the path's scenario rate and delay, and up
	ActionThrottle Action = "throttle" // a new rate
	ActionDelay    Action = "delay"    // a new one-way delay
	ActionLoss     Action = "loss"     // a new packet loss (netns backend only)
)

// Event changes one path at a time after the workload's start.
type Event struct {
	At     time.Duration
	Path   int
	Action Action
	Rate   Rate          // for throttle
	Delay  time.Duration // for delay
	Loss   Loss          // for loss
}

// String describes the event for tables and plots, e.g. "3s cut path 2".
func (e Event) String() string {
	s := fmt.Sprintf("%v %s path %d", e.At, e.Action, e.Path)
	switch e.Action {
	case ActionThrottle:
		s += " to " + e.Rate.String()
	case ActionDelay:
		s += " to " + e.Delay.String()
	case ActionLoss:
		s += " to " + e.Loss.String()
	}
	return s
}

// WorkloadKind says what the client sends.
type WorkloadKind string

// The workloads.
const (
	// Bulk sends messages of MessageSize back to back for the whole duration.
	Bulk WorkloadKind = "bulk"
	// Messages sends messages of MessageSize at MessagesPerSec and measures their latency.
	Messages WorkloadKind = "messages"
)

// Workload is what the client sends to the server.
type Workload struct {
	Kind           WorkloadKind
	MessageSize    int     // bytes
	MessagesPerSec float64 // for Messages
}

// Compare is an extra run of the same scenario over a subset of its paths, e.g. the fast path
// alone. Events on the other paths are dropped.
type Compare struct {
	Name  string
	Paths []int
}

// Rate is a link rate in bits per second.
type Rate int64

// BytesPerSec returns the rate in bytes per second.
func (r Rate) BytesPerSec() float64 { return float64(r) / 8 }

// Mbit returns the rate in Mbit/s.
func (r Rate) Mbit() float64 { return float64(r) / 1e6 }

// String formats the rate as a scenario would, e.g. "200mbit".
func (r Rate) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if int64(r) >= u.mult && int64(r)%u.mult == 0 {
			return strconv.FormatInt(int64(r)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(r), 10) + "bit"
}

// ParseRate parses a rate such as "200mbit", "1.5gbit", "64kbit" or "9600bit" (decimal units of
// bits per second, as tc writes them; case is ignored).
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("rate %q: %q is not a number", s, num)
		}
		bits := v * u.mult
		if bits < 1000 || bits > MaxRate {
			return 0, fmt.Errorf("rate %q: must be between 1kbit and %s", s, Rate(MaxRate))
		}
		return Rate(math.Round(bits)), nil
	}
	return 0, fmt.Errorf("rate %q: want a number and a unit, one of gbit, mbit, kbit, bit (e.g. \"200mbit\")", s)
}

// ParseSize parses a byte count such as "64KiB", "1MiB", "1500" or "10kB": binary units KiB,
// MiB, GiB and, as dd and iperf3 read them, K, M, G; decimal kB (or KB), MB, GB. The number may
// have a fraction ("1.5MiB"); the count is rounded to a byte, and at most 1 TiB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v*u.mult > 1<<40 {
			return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit KiB, MiB, GiB, K, M, G, kB, MB, GB (e.g. \"64KiB\")", s)
		}
		return int64(math.Round(v * u.mult)), nil
	}
	return 0, fmt.Errorf("size %q: unknown unit", s)
}

// The file format: JSON, with rates, sizes and durations as strings.
type fileScenario struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Duration    string      `json:"duration"`
	Paths       []filePath  `json:"paths"`
	Events      []fileEvent `json:"events"`
	Workload    *struct {
		Kind           string  `json:"kind"`
		MessageSize    string  `json:"message_size"`
		MessagesPerSec float64 `json:"messages_per_sec"`
	} `json:"workload"`
	Compare []struct {
		Name  string `json:"name"`
		Paths []int  `json:"paths"`
	} `json:"compare"`
}

type filePath struct {
	Rate  string  `json:"rate"`
	Delay string  `json:"delay"`
	Loss  string  `json:"loss"`
	Burst float64 `json:"burst"`
}

type fileEvent struct {
	At     string   `json:"at"`
	Path   *int     `json:"path"`
	Action string   `json:"action"`
	Rate   string   `json:"rate"`
	Delay  string   `json:"delay"`
	Loss   string   `json:"loss"`
	Burst  *float64 `json:"burst"`
}

// Parse reads a scenario from JSON. Unknown fields, missing fields and values out of range are
// errors that name the field, e.g. `paths[2].rate: rate "fast": ...`.
func Parse(data []byte) (*Scenario, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileScenario
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("scenario: %w", jsonError(data, err))
	}
	if dec.More() {
		return nil, errors.New("scenario: data after the JSON object")
	}
	sc := &Scenario{Name: f.Name, Description: f.Description}
	var err error
	if f.Duration == "" {
		return nil, errors.New("scenario: duration: missing (e.g. \"10s\")")
	}
	if sc.Duration, err = parseDuration(f.Duration, time.Second, MaxDuration); err != nil {
		return nil, fmt.Errorf("scenario: duration: %w", err)
	}
	if len(f.Paths) == 0 || len(f.Paths) > MaxPaths {
		return nil, fmt.Errorf("scenario: paths: want 1 to %d paths, have %d", MaxPaths, len(f.Paths))
	}
	for i, p := range f.Paths {
		var ps PathSpec
		if p.Rate == "" {
			return nil, fmt.Errorf("scenario: paths[%d].rate: missing (e.g. \"100mbit\")", i)
		}
		if ps.Rate, err = ParseRate(p.Rate); err != nil {
			return nil, fmt.Errorf("scenario: paths[%d].rate: %w", i, err)
		}
		if p.Delay != "" {
			if ps.Delay, err = parseDuration(p.Delay, 0, MaxDelay); err != nil {
				return nil, fmt.Errorf("scenario: paths[%d].delay: %w", i, err)
			}
		}
		if p.Loss != "" {
			if ps.Loss.Rate, err = ParseLoss(p.Loss); err != nil {
				return nil, fmt.Errorf("scenario: paths[%d].loss: %w", i, err)
			}
		}
		if err := checkBurst(p.Burst); err != nil {
			return nil, fmt.Errorf("scenario: paths[%d].burst: %w", i, err)
		}
		if p.Burst != 0 && p.Loss == "" {
			return nil, fmt.Errorf("scenario: paths[%d].burst: only with a loss", i)
		}
		ps.Loss.Burst = p.Burst
		sc.Paths = append(sc.Paths, ps)
	}
	if len(f.Events) > MaxEvents {
		return nil, fmt.Errorf("scenario: events: at most %d, have %d", MaxEvents, len(f.Events))
	}
	for i, fe := range f.Events {
		e, err := parseEvent(fe, len(sc.Paths), sc.Duration)
		if err != nil {
			return nil, fmt.Errorf("scenario: events[%d]: %w", i, err)
		}
		sc.Events = append(sc.Events, e)
	}
	slices.SortStableFunc(sc.Events, func(a, b Event) int { return int(a.At - b.At) })
	if f.Workload == nil {
		return nil, errors.New("scenario: workload: missing (e.g. {\"kind\": \"bulk\"})")
	}
	w := &sc.Workload
	switch WorkloadKind(f.Workload.Kind) {
	case Bulk:
		w.Kind, w.MessageSize = Bulk, DefaultBulkSize
		if f.Workload.MessagesPerSec != 0 {
			return nil, errors.New("scenario: workload.messages_per_sec: only for kind \"messages\"")
		}
	case Messages:
		w.Kind, w.MessageSize = Messages, 64<<10
		r := f.Workload.MessagesPerSec
		if r <= 0 || r > MaxMessageRate || math.IsNaN(r) {
			return nil, fmt.Errorf("scenario: workload.messages_per_sec: want more than 0 and at most %d, have %v", MaxMessageRate, r)
		}
		w.MessagesPerSec = r
	default:
		return nil, fmt.Errorf("scenario: workload.kind: %q; want \"bulk\" or \"messages\"", f.Workload.Kind)
	}
	if f.Workload.MessageSize != "" {
		n, err := ParseSize(f.Workload.MessageSize)
		if err != nil {
			return nil, fmt.Errorf("scenario: workload.message_size: %w", err)
		}
		if n < headerSize || n > MaxMessageSize {
			return nil, fmt.Errorf("scenario: workload.message_size: %d bytes; want %d to %d", n, headerSize, MaxMessageSize)
		}
		w.MessageSize = int(n)
	}
	for i, c := range f.Compare {
		if c.Name == "" {
			return nil, fmt.Errorf("scenario: compare[%d].name: missing", i)
		}
		if len(c.Paths) == 0 {
			return nil, fmt.Errorf("scenario: compare[%d].paths: missing", i)
		}
		seen := map[int]bool{}
		for _, p := range c.Paths {
			if p < 0 || p >= len(sc.Paths) || seen[p] {
				return nil, fmt.Errorf("scenario: compare[%d].paths: %v: want distinct indexes 0..%d", i, c.Paths, len(sc.Paths)-1)
			}
			seen[p] = true
		}
		sc.Compare = append(sc.Compare, Compare{Name: c.Name, Paths: slices.Clone(c.Paths)})
	}
	return sc, nil
}

func parseEvent(fe fileEvent, paths int, dur time.Duration) (Event, error) {
	var e Event
	var err error
	if fe.At == "" {
		return e, errors.New("at: missing (e.g. \"3s\")")
	}
	if e.At, err = parseDuration(fe.At, 0, dur); err != nil {
		return e, fmt.Errorf("at: %w (the scenario lasts %v)", err, dur)
	}
	if fe.Path == nil {
		return e, errors.New("path: missing (an index from 0)")
	}
	if e.Path = *fe.Path; e.Path < 0 || e.Path >= paths {
		return e, fmt.Errorf("path: %d; the scenario has paths 0..%d", e.Path, paths-1)
	}
	e.Action = Action(fe.Action)
	switch e.Action {
	case ActionCut, ActionRestore:
	case ActionThrottle:
		if fe.Rate == "" {
			return e, errors.New("rate: missing for throttle")
		}
		if e.Rate, err = ParseRate(fe.Rate); err != nil {
			return e, fmt.Errorf("rate: %w", err)
		}
	case ActionDelay:
		if fe.Delay == "" {
			return e, errors.New("delay: missing for action delay")
		}
		if e.Delay, err = parseDuration(fe.Delay, 0, MaxDelay); err != nil {
			return e, fmt.Errorf("delay: %w", err)
		}
	case ActionLoss:
		if fe.Loss == "" {
			return e, errors.New("loss: missing for action loss (e.g. \"1%\", or \"0%\" to end it)")
		}
		if e.Loss.Rate, err = ParseLoss(fe.Loss); err != nil {
			return e, fmt.Errorf("loss: %w", err)
		}
		if fe.Burst != nil {
			if err := checkBurst(*fe.Burst); err != nil {
				return e, fmt.Errorf("burst: %w", err)
			}
			e.Loss.Burst = *fe.Burst
		}
	default:
		return e, fmt.Errorf("action: %q; want cut, restore, throttle, delay or loss", fe.Action)
	}
	if (fe.Loss != "" || fe.Burst != nil) && e.Action != ActionLoss {
		return e, fmt.Errorf("loss, burst: only for action loss, not %s", e.Action)
	}
	if fe.Rate != "" && e.Action != ActionThrottle {
		return e, fmt.Errorf("rate: only for throttle, not %s", e.Action)
	}
	if fe.Delay != "" && e.Action != ActionDelay {
		return e, fmt.Errorf("delay: only for action delay, not %s", e.Action)
	}
	return e, nil
}

func parseDuration(s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. \"5ms\", \"3s\")", s)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%v outside %v..%v", d, lo, hi)
	}
	return d, nil
}

// jsonError adds the line and column to a JSON syntax or type error.
func jsonError(data []byte, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("incomplete JSON: the input ends inside the object")
	case errors.Is(err, io.EOF):
		return errors.New("empty input: want a JSON object")
	}
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// Load reads the scenario called name: the file at that path if there is one, else NAME.json
// (".json" optional) in fsys (a directory, os.DirFS, or the scenarios built into braid).
func Load(fsys fs.FS, name string) (*Scenario, error) {
	path := name
	data, err := os.ReadFile(name)
	if err != nil {
		path = strings.TrimSuffix(name, ".json") + ".json"
		if data, err = fs.ReadFile(fsys, path); err != nil {
			return nil, fmt.Errorf("scenario %q: not a file, nor %s among the scenarios (braid eval --list)", name, path)
		}
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), ".json")
	}
	return sc, nil
}

// List returns the scenario names (file base names without ".json") in fsys, sorted.
func List(fsys fs.FS) ([]string, error) {
	m, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range m {
		names = append(names, strings.TrimSuffix(path.Base(p), ".json"))
	}
	slices.Sort(names)
	return names, nil
}

// SumRate is the sum of the rates of the given paths (all if nil) at the start.
func (sc *Scenario) SumRate(paths []int) Rate {
	var sum Rate
	for i, p := range sc.Paths {
		if paths == nil || slices.Contains(paths, i) {
			sum += p.Rate
		}
	}
	return sum
}

// Subset returns the scenario restricted to the given paths, renumbered from 0 in that order;
// events on other paths are dropped.
func (sc *Scenario) Subset(paths []int) *Scenario {
	out := *sc
	out.Paths = nil
	out.Events = nil
	out.Compare = nil
	for _, p := range paths {
		out.Paths = append(out.Paths, sc.Paths[p])
	}
	for _, e := range sc.Events {
		if i := slices.Index(paths, e.Path); i >= 0 {
			e.Path = i
			out.Events = append(out.Events, e)
		}
	}
	return &out
}
