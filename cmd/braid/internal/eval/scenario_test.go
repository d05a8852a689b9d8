package eval

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/scenarios"
)

const goodScenario = `{
  "name": "t",
  "duration": "4s",
  "paths": [{"rate": "200mbit", "delay": "5ms"}, {"rate": "1.5gbit"}, {"rate": "64kbit", "delay": "80ms"}],
  "events": [
    {"at": "3s", "path": 2, "action": "restore"},
    {"at": "1s", "path": 2, "action": "cut"},
    {"at": "2s", "path": 0, "action": "throttle", "rate": "10mbit"},
    {"at": "2s", "path": 1, "action": "delay", "delay": "20ms"}
  ],
  "workload": {"kind": "messages", "message_size": "64KiB", "messages_per_sec": 50},
  "compare": [{"name": "fast path alone", "paths": [0]}]
}`

func TestParseGood(t *testing.T) {
	sc, err := Parse([]byte(goodScenario))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "t" || sc.Duration != 4*time.Second || len(sc.Paths) != 3 {
		t.Fatalf("parsed %+v", sc)
	}
	if sc.Paths[0] != (PathSpec{Rate: 200e6, Delay: 5 * time.Millisecond}) || sc.Paths[1].Rate != 1.5e9 || sc.Paths[2].Rate != 64e3 {
		t.Errorf("paths %+v", sc.Paths)
	}
	var at []time.Duration
	for _, e := range sc.Events {
		at = append(at, e.At)
	}
	if len(at) != 4 || at[0] != time.Second || at[3] != 3*time.Second {
		t.Errorf("events not sorted by time: %v", sc.Events)
	}
	if e := sc.Events[1]; e.Action != ActionThrottle || e.Rate != 10e6 || e.Path != 0 {
		t.Errorf("throttle event %+v", e)
	}
	if e := sc.Events[2]; e.Action != ActionDelay || e.Delay != 20*time.Millisecond {
		t.Errorf("delay event %+v", e)
	}
	if sc.Workload != (Workload{Kind: Messages, MessageSize: 64 << 10, MessagesPerSec: 50}) {
		t.Errorf("workload %+v", sc.Workload)
	}
	if len(sc.Compare) != 1 || sc.Compare[0].Paths[0] != 0 {
		t.Errorf("compare %+v", sc.Compare)
	}
	sub := sc.Subset([]int{2, 0})
	if len(sub.Paths) != 2 || sub.Paths[0].Rate != 64e3 || len(sub.Events) != 3 || sub.Events[0].Path != 0 || sub.Events[1].Path != 1 {
		t.Errorf("subset %+v", sub)
	}
	if got := sc.SumRate(nil); got != 200e6+1.5e9+64e3 {
		t.Errorf("sum rate %v", got)
	}
}

func TestParseDefaults(t *testing.T) {
	sc, err := Parse([]byte(`{"duration": "2s", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Workload.MessageSize != DefaultBulkSize || sc.Paths[0].Delay != 0 || len(sc.Events) != 0 {
		t.Errorf("defaults %+v", sc)
	}
}

func TestParseErrors(t *testing.T) {
	base := func(repl ...string) string {
		s := `{"duration": "4s", "paths": [{"rate": "10mbit", "delay": "5ms"}, {"rate": "20mbit"}], "events": [EVENTS], "workload": {"kind": "bulk"}}`
		s = strings.Replace(s, "EVENTS", `{"at": "1s", "path": 1, "action": "cut"}`, 1)
		for i := 0; i+1 < len(repl); i += 2 {
			s = strings.Replace(s, repl[i], repl[i+1], 1)
		}
		return s
	}
	cases := []struct {
		name, in, want string
	}{
		{"not json", `{"duration": `, "incomplete JSON"},
		{"empty", ``, "empty input"},
		{"syntax position", "{\n  \"duration\": 4s\n}", "line 2, column"},
		{"trailing data", base() + "{}", "data after the JSON object"},
		{"unknown field", base(`"duration"`, `"durations": "1s", "duration"`), `unknown field "durations"`},
		{"no duration", `{"paths": [{"rate": "1mbit"}], "workload": {"kind": "bulk"}}`, "duration: missing"},
		{"bad duration", base(`"4s"`, `"four"`), `duration: "four" is not a duration`},
		{"zero duration", base(`"4s"`, `"0s"`), "duration: 0s outside 1s..5m0s"},
		{"long duration", base(`"4s"`, `"1h"`), "outside 1s..5m0s"},
		{"no paths", `{"duration": "1s", "paths": [], "workload": {"kind": "bulk"}}`, "paths: want 1 to 8 paths, have 0"},
		{"too many paths", `{"duration": "1s", "paths": [{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"},{"rate":"1mbit"}], "workload": {"kind": "bulk"}}`, "have 9"},
		{"no rate", base(`{"rate": "20mbit"}`, `{"delay": "1ms"}`), "paths[1].rate: missing"},
		{"rate unit", base(`"10mbit"`, `"10mbps"`), `paths[0].rate: rate "10mbps": want a number and a unit`},
		{"rate number", base(`"10mbit"`, `"fastmbit"`), `paths[0].rate: rate "fastmbit": "fast" is not a number`},
		{"rate too low", base(`"10mbit"`, `"10bit"`), "between 1kbit and"},
		{"rate too high", base(`"10mbit"`, `"11gbit"`), "between 1kbit and"},
		{"negative delay", base(`"5ms"`, `"-5ms"`), "paths[0].delay: -5ms outside"},
		{"rate as number", base(`"10mbit"`, `10`), "line 1, column"},
		{"event path range", base(`"path": 1`, `"path": 2`), "events[0]: path: 2; the scenario has paths 0..1"},
		{"event no path", base(`"path": 1, `, ``), "events[0]: path: missing"},
		{"event after end", base(`"1s"`, `"5s"`), "events[0]: at: 5s outside 0s..4s (the scenario lasts 4s)"},
		{"event no at", base(`"at": "1s", `, ``), "events[0]: at: missing"},
		{"event action", base(`"cut"`, `"explode"`), `action: "explode"; want cut, restore, throttle, delay or loss`},
		{"throttle no rate", base(`"cut"`, `"throttle"`), "rate: missing for throttle"},
		{"throttle bad rate", base(`"cut"`, `"throttle", "rate": "x"`), "events[0]: rate: rate \"x\""},
		{"delay no delay", base(`"cut"`, `"delay"`), "delay: missing for action delay"},
		{"rate on cut", base(`"cut"`, `"cut", "rate": "1mbit"`), "rate: only for throttle, not cut"},
		{"delay on cut", base(`"cut"`, `"cut", "delay": "1ms"`), "delay: only for action delay, not cut"},
		{"no workload", `{"duration": "1s", "paths": [{"rate": "1mbit"}]}`, "workload: missing"},
		{"workload kind", base(`"bulk"`, `"stream"`), `workload.kind: "stream"; want "bulk" or "messages"`},
		{"messages no rate", base(`"bulk"`, `"messages"`), "workload.messages_per_sec: want more than 0"},
		{"bulk with rate", base(`"bulk"`, `"bulk", "messages_per_sec": 5`), "only for kind \"messages\""},
		{"message size unit", base(`"bulk"`, `"bulk", "message_size": "64 parsecs"`), "workload.message_size: size \"64 parsecs\""},
		{"message size small", base(`"bulk"`, `"bulk", "message_size": "8"`), "workload.message_size: 8 bytes; want 16 to"},
		{"message size big", base(`"bulk"`, `"bulk", "message_size": "17MiB"`), "want 16 to 16777216"},
		{"compare no name", base(`"workload"`, `"compare": [{"paths": [0]}], "workload"`), "compare[0].name: missing"},
		{"compare no paths", base(`"workload"`, `"compare": [{"name": "x"}], "workload"`), "compare[0].paths: missing"},
		{"compare range", base(`"workload"`, `"compare": [{"name": "x", "paths": [0, 5]}], "workload"`), "want distinct indexes 0..1"},
		{"compare dup", base(`"workload"`, `"compare": [{"name": "x", "paths": [0, 0]}], "workload"`), "want distinct indexes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded; want an error containing %q", c.in, c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "scenario: ") {
				t.Errorf("Parse(%s):\n  error %q\n  want  %q", c.in, err, c.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"200mbit": 200e6, "200Mbit": 200e6, " 1.5gbit ": 1.5e9, "64kbit": 64e3, "9600bit": 9600} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, err := ParseRate(got.String()); err != nil || again != got {
			t.Errorf("ParseRate(%q.String() = %q) = %v, %v", in, got.String(), again, err)
		}
	}
	for in, want := range map[string]int64{"64KiB": 64 << 10, "1MiB": 1 << 20, "1500": 1500, "10kB": 10000, "2 MB": 2e6, "7B": 7} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "mbit", "NaNmbit", "Infgbit", "-5mbit", "5 furlongs"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
	for _, in := range []string{"", "KiB", "-1", "NaN", "1e30", "5 furlongs"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestShippedScenarios(t *testing.T) {
	names, err := List(scenarios.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range names { // every shipped scenario parses
		sc, err := Load(scenarios.FS, want)
		if err != nil {
			t.Errorf("%s: %v", want, err)
			continue
		}
		if sc.Name != want || sc.Describe() == "" {
			t.Errorf("%s: name %q", want, sc.Name)
		}
	}
	for _, want := range []string{"cut-path", "four-rates", "rtt-mismatch", "smoke", "rate-collapse", "delay-jump", "loss-1pct", "loss-5pct", "flap"} {
		if !slices.Contains(names, want) {
			t.Errorf("no scenario %s", want)
		}
	}
	for _, lossy := range []string{"loss-1pct", "loss-5pct-messages"} {
		if sc, err := Load(scenarios.FS, lossy); err != nil || !sc.HasLoss() {
			t.Errorf("%s: %v, loss %v", lossy, err, err == nil && sc.HasLoss())
		}
	}
	if len(names) < 4 {
		t.Errorf("scenarios: %v", names)
	}
	if sc, err := Load(scenarios.FS, "smoke"); err == nil && sc.Duration > 5*time.Second {
		t.Errorf("smoke lasts %v; CI needs it short", sc.Duration)
	}
}

// lossInRange reports whether a parsed loss is within the limits (NaN fails every comparison).
func lossInRange(l Loss) bool {
	return l.Rate >= 0 && l.Rate <= MaxLoss && l.Burst >= 0 && l.Burst <= MaxBurst
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodScenario))
	f.Add([]byte(`{"duration": "2s", "paths": [{"rate": "10mbit"}], "workload": {"kind": "bulk"}}`))
	f.Add([]byte(`{"duration": "1s", "paths": [{"rate": "1e3bit", "delay": "1ns"}], "events": [{"at": "0s", "path": 0, "action": "delay", "delay": "5s"}], "workload": {"kind": "messages", "messages_per_sec": 1e4, "message_size": "16"}}`))
	f.Add([]byte(`{"duration": "2s", "paths": [{"rate": "10mbit", "loss": "1%", "burst": 4}], "events": [{"at": "1s", "path": 0, "action": "loss", "loss": "0.05", "burst": 1}], "workload": {"kind": "bulk"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scenario: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		// Whatever parses is within the limits that bound a run.
		if sc.Duration < time.Second || sc.Duration > MaxDuration || len(sc.Paths) < 1 || len(sc.Paths) > MaxPaths {
			t.Fatalf("out of range: %+v", sc)
		}
		for _, p := range sc.Paths {
			if p.Rate < 1000 || p.Rate > MaxRate || p.Delay < 0 || p.Delay > MaxDelay || !lossInRange(p.Loss) {
				t.Fatalf("path out of range: %+v", p)
			}
		}
		for i, e := range sc.Events {
			if e.Path < 0 || e.Path >= len(sc.Paths) || e.At < 0 || e.At > sc.Duration || (i > 0 && e.At < sc.Events[i-1].At) || !lossInRange(e.Loss) {
				t.Fatalf("event out of range or order: %+v", sc.Events)
			}
		}
		w := sc.Workload
		if w.MessageSize < headerSize || w.MessageSize > MaxMessageSize || (w.Kind == Messages) != (w.MessagesPerSec > 0) {
			t.Fatalf("workload %+v", w)
		}
		for _, c := range sc.Compare {
			_ = sc.Subset(c.Paths)
		}
		if b := byteBudget(sc).Load(); b <= 0 {
			t.Fatalf("no byte bound: %d", b)
		}
	})
}
