package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/cmd/braid/internal/bench"
)

// What a command reports when it ends, finished or interrupted: as text, or as JSON with
// --json. The same figures either way.

// pathSummary is one path's share of a session's work.
type pathSummary struct {
	Index          int     `json:"index"`
	Slot           int     `json:"slot"`
	Local          string  `json:"local"`
	Remote         string  `json:"remote"`
	State          string  `json:"state"` // up, stalled or down
	ChunksSent     uint64  `json:"chunks_sent"`
	BytesSent      uint64  `json:"bytes_sent"`
	ChunksResent   uint64  `json:"chunks_resent"`
	BytesAcked     uint64  `json:"bytes_acked"` // written on it and acknowledged by the peer (an acknowledgement that overtakes the writer's own bookkeeping is credited to no path)
	ChunksReceived uint64  `json:"chunks_received"`
	BytesReceived  uint64  `json:"bytes_received"`
	RTTms          float64 `json:"rtt_ms"`
	Share          float64 `json:"share"` // of the session's bytes in the transfer's direction, 0..1
	KeyExchange    string  `json:"key_exchange"`
}

// pathSummaries describes each path of st, its share counted in direction d. states, if not
// nil, gives each path's state as it was before the session closed (after, every path is down).
func pathSummaries(st braid.Stats, d direction, states map[int]string) []pathSummary {
	var all uint64
	for _, p := range st.Paths {
		all += pathBytes(p, d)
	}
	out := make([]pathSummary, 0, len(st.Paths))
	for _, p := range st.Paths {
		ps := pathSummary{Index: p.Index, Slot: p.Slot, Local: p.Local, Remote: p.Remote, State: pathState(p),
			ChunksSent: p.ChunksSent, BytesSent: p.BytesSent, ChunksResent: p.ChunksResent, BytesAcked: p.BytesAcked,
			ChunksReceived: p.ChunksReceived, BytesReceived: p.BytesReceived, RTTms: float64(p.SRTT) / 1e6, KeyExchange: p.KeyExchange}
		if all > 0 {
			ps.Share = float64(pathBytes(p, d)) / float64(all)
		}
		if s, ok := states[p.Index]; ok {
			ps.State = s
		}
		out = append(out, ps)
	}
	return out
}

// writeShareTable prints what each path carried in direction d: chunks and bytes written on it
// (resent ones included) and how many it was given to send again, or, receiving, what arrived
// on it; its share of the bytes, RTT and state.
func writeShareTable(w io.Writer, paths []pathSummary, d direction) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if d == receiving {
		fmt.Fprintln(tw, "path\tlocal\tremote\tstate\tchunks received\tbytes received\tshare\trtt\t")
	} else {
		fmt.Fprintln(tw, "path\tlocal\tremote\tstate\tchunks sent\tbytes sent\tresent\tshare\trtt\t")
	}
	var cs, bs, rs uint64
	for _, p := range paths {
		if d == receiving {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%.0f%%\t%.2f ms\t\n", p.Index, p.Local, p.Remote, p.State,
				p.ChunksReceived, p.BytesReceived, 100*p.Share, p.RTTms)
			cs, bs = cs+p.ChunksReceived, bs+p.BytesReceived
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%.0f%%\t%.2f ms\t\n", p.Index, p.Local, p.Remote, p.State,
			p.ChunksSent, p.BytesSent, p.ChunksResent, 100*p.Share, p.RTTms)
		cs, bs, rs = cs+p.ChunksSent, bs+p.BytesSent, rs+p.ChunksResent
	}
	if d == receiving {
		fmt.Fprintf(tw, "all\t\t\t\t%d\t%d\t\t\t\n", cs, bs)
	} else {
		fmt.Fprintf(tw, "all\t\t\t\t%d\t%d\t%d\t\t\t\n", cs, bs, rs)
	}
	tw.Flush()
}

// sendSummary is what braid send reports.
type sendSummary struct {
	Command       string        `json:"command"` // "send"
	Session       string        `json:"session"`
	Mode          string        `json:"mode"`
	Scheduler     string        `json:"scheduler"`
	KeyExchange   string        `json:"key_exchange"`
	Kind          string        `json:"kind"` // file or message
	Name          string        `json:"name,omitempty"`
	Size          int64         `json:"size"`      // bytes; -1 for a stream of unknown length
	Delivered     int64         `json:"delivered"` // bytes the receiver acknowledged (all of them once verified)
	Complete      bool          `json:"complete"`  // the receiver verified every byte and the SHA-256
	Interrupted   bool          `json:"interrupted,omitempty"`
	Error         string        `json:"error,omitempty"`
	Seconds       float64       `json:"seconds"`
	BitsPerSecond float64       `json:"bits_per_second"`
	SHA256        string        `json:"sha256,omitempty"`
	Saved         string        `json:"saved,omitempty"` // the receiver's name for the file
	Paths         []pathSummary `json:"paths"`
}

// writeText prints the summary for people.
func (sm *sendSummary) writeText(w io.Writer) {
	what := sm.Kind
	if sm.Name != "" {
		what += " " + sm.Name
	}
	el := time.Duration(sm.Seconds * 1e9)
	switch {
	case sm.Complete:
		fmt.Fprintf(w, "sent %s: %d bytes in %v, %s; receiver verified sha256 %s\n", what, sm.Delivered, el.Round(time.Millisecond), bitrate(sm.BitsPerSecond), sm.SHA256)
		if sm.Saved != "" {
			fmt.Fprintf(w, "saved by the receiver as %s\n", sm.Saved)
		}
	default:
		of := ""
		if sm.Size >= 0 {
			of = fmt.Sprintf(" of %d", sm.Size)
		}
		why := "failed"
		if sm.Interrupted {
			why = "interrupted"
		}
		fmt.Fprintf(w, "%s: %s not delivered whole: %d%s bytes acknowledged by the receiver in %v, %s\n", why, what, sm.Delivered, of, el.Round(time.Millisecond), bitrate(sm.BitsPerSecond))
	}
	writeShareTable(w, sm.Paths, sending)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// serveTally counts what a server received, for its summary on exit.
type serveTally struct {
	mu        sync.Mutex
	start     time.Time
	Sessions  int            `json:"sessions"`
	Transfers map[string]int `json:"transfers"` // by kind: file, message, bench
	Bytes     int64          `json:"bytes"`     // transfer bytes received (or sent, for reverse bench)
	Saved     []string       `json:"saved"`     // files published
	Failed    int            `json:"failed"`    // transfers cut short or refused
}

func newServeTally() *serveTally {
	return &serveTally{start: time.Now(), Transfers: map[string]int{}, Saved: []string{}}
}

// add counts one transfer.
func (t *serveTally) add(h transferHeader, rc transferReceipt, err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Bytes += rc.Bytes
	if err != nil || rc.Error != "" {
		t.Failed++
		return
	}
	t.Transfers[h.Kind]++
	if rc.Saved != "" {
		t.Saved = append(t.Saved, rc.Saved)
	}
}

// session counts one accepted session.
func (t *serveTally) session() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Sessions++
}

// serveSummary is what braid serve reports on exit with --json.
type serveSummary struct {
	Command  string              `json:"command"` // "serve"
	Address  string              `json:"address"`
	Seconds  float64             `json:"seconds"`
	Received *serveTally         `json:"received"`
	Listener braid.ListenerStats `json:"listener"`
}

func (t *serveTally) summary(addr string, ls braid.ListenerStats) serveSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return serveSummary{Command: "serve", Address: addr, Seconds: time.Since(t.start).Seconds(), Received: t, Listener: ls}
}

// sessionLine is the line a client prints once its session of wanted paths is up.
func sessionLine(st braid.Stats, wanted int) string {
	paths := bench.Count(len(st.Paths), "path")
	if len(st.Paths) < wanted {
		paths = fmt.Sprintf("%d of %s up (the others are re-dialed)", len(st.Paths), bench.Count(wanted, "path"))
	}
	return fmt.Sprintf("session %s: %s, %s chunks, mode %s, key exchange %s", st.ID, paths, bench.Size(st.ChunkSize), st.Mode, bench.KeyExchanges(st.Paths))
}

// pathStates is each path's state now, to report after the session has closed.
func pathStates(st braid.Stats) map[int]string {
	m := make(map[int]string, len(st.Paths))
	for _, p := range st.Paths {
		m[p.Index] = pathState(p)
	}
	return m
}
