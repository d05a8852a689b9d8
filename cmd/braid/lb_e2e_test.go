package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid"
)

// The scale-out test behind a real load balancer, run by .ci/lb-e2e.sh, which starts HAProxy
// (deploy/haproxy.cfg) in front of three `braid serve --server-id` backends on loopback and
// passes them in the environment:
//
//	BRAID_LB_ADDR         HAProxy's address
//	BRAID_LB_FINGERPRINT  the backends' shared key fingerprint
//	BRAID_LB_BACKENDS     "SID:PID:LOG,..." per backend: server id (hex), process id, log file
//	BRAID_LB_SESSIONS     sessions of the first part (default 1000)
//	BRAID_LB_INSECURE     "1": backends and clients without TLS (HAProxy routes on the frame bytes)
//
// It is a Go test rather than a braid subcommand so that none of it ships in the binary, and so
// that it checks transfers with the CLI's own receipts (sendTransfer). Without BRAID_LB_ADDR it
// is skipped.

const (
	lbPaths       = 4
	lbConcurrency = 16       // sessions being opened or used at once
	lbTransfer    = 96 << 10 // bytes per transfer: six 16 KiB chunks, spread over the paths
)

type lbBackend struct {
	sid string // hex
	pid int
	log string
}

func lbEnv(t *testing.T) (addr, fp string, backends []lbBackend, sessions int) {
	addr = os.Getenv("BRAID_LB_ADDR")
	if addr == "" {
		t.Skip("BRAID_LB_ADDR not set: run by .ci/lb-e2e.sh")
	}
	fp = os.Getenv("BRAID_LB_FINGERPRINT")
	for _, b := range strings.Split(os.Getenv("BRAID_LB_BACKENDS"), ",") {
		f := strings.SplitN(b, ":", 3)
		if len(f) != 3 {
			t.Fatalf("BRAID_LB_BACKENDS entry %q: want SID:PID:LOG", b)
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, lbBackend{sid: strings.ToLower(f[0]), pid: pid, log: f[2]})
	}
	sessions = 1000
	if v := os.Getenv("BRAID_LB_SESSIONS"); v != "" {
		var err error
		if sessions, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	return addr, fp, backends, sessions
}

// lbSID is the server id a session's id names (its logged form: the id's first 8 bytes in
// hex; octet 0 is the layout, with the server id length in its low 5 bits), or "" if the id is
// not routable.
func lbSID(id string) string {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) < 2 || b[0]>>5 == 7 || b[0]&0x1f == 0 || int(b[0]&0x1f) >= len(b) {
		return ""
	}
	return hex.EncodeToString(b[1 : 1+int(b[0]&0x1f)])
}

// lbSend sends one transfer of random bytes on s and checks the receiver's SHA-256.
func lbSend(ctx context.Context, s *braid.Session, name string, seed uint64) error {
	data := make([]byte, lbTransfer)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var read atomic.Int64
	_, _, err := sendTransfer(ctx, s, transferHeader{Kind: "file", Name: name, Size: int64(len(data))}, bytes.NewReader(data), &read)
	return err
}

func lbConfig(fp string) *braid.Config {
	c := &braid.Config{Paths: lbPaths, ChunkSize: 16 << 10, ServerFingerprint: fp, HandshakeTimeout: 20 * time.Second}
	if os.Getenv("BRAID_LB_INSECURE") == "1" {
		c.Insecure, c.ServerFingerprint = true, ""
	}
	return c
}

// pathsUp reads a backend's log: how many paths came up for each session id.
func pathsUp(t *testing.T, file string) map[string]int {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`msg="path up" session=([0-9a-f]+) side=server`)
	up := make(map[string]int)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			up[m[1]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return up
}

// forEach runs fn(i) for i in [0, n), lbConcurrency at a time, and returns the errors by i.
func forEach(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, lbConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errs
}

// TestLoadBalancedSessions: every path of every session reaches the backend its id names,
// transfers are byte-exact; killing one backend fails exactly its sessions, with a clear error,
// and new sessions open on the others.
func TestLoadBalancedSessions(t *testing.T) {
	addr, fp, backends, n := lbEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bySID := make(map[string]lbBackend)
	for _, b := range backends {
		bySID[b.sid] = b
	}

	// Part 1: n sessions of lbPaths paths, each carrying one transfer, then closed.
	ids := make([]string, n)
	start := time.Now()
	errs := forEach(n, func(i int) error {
		s, err := braid.Dial(ctx, addr, lbConfig(fp))
		if err != nil {
			return fmt.Errorf("session %d: Dial: %w", i, err)
		}
		ids[i] = s.ID()
		if err := lbSend(ctx, s, fmt.Sprintf("lb-%d", i), uint64(i)); err != nil {
			s.Abort()
			return fmt.Errorf("session %d (%s): transfer: %w", i, s.ID(), err)
		}
		return s.Close()
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions x %d paths, each with a byte-exact %d-byte transfer, in %v", n, lbPaths, lbTransfer, time.Since(start).Round(time.Millisecond))

	where := make(map[string]map[string]int) // session id -> backend sid -> paths up there
	for _, b := range backends {
		for id, k := range pathsUp(t, b.log) {
			if where[id] == nil {
				where[id] = make(map[string]int)
			}
			where[id][b.sid] += k
		}
	}
	per := make(map[string]int)
	for _, id := range ids {
		sid := lbSID(id)
		if _, ok := bySID[sid]; !ok {
			t.Fatalf("session %s names server id %s, not one of the backends", id, sid)
		}
		if got := where[id]; len(got) != 1 || got[sid] != lbPaths {
			t.Fatalf("session %s (server id %s): paths up by backend %v, want all %d on %s", id, sid, got, lbPaths, sid)
		}
		per[sid]++
	}
	for _, b := range backends {
		if per[b.sid] == 0 {
			t.Fatalf("backend %s got no session of %d: %v", b.sid, n, per)
		}
	}
	t.Logf("every path of every session on the backend its id names; sessions per backend %v", per)

	// Part 2: sessions held open across the death of one backend.
	const held = 30
	victim := backends[1]
	sessions := make([]*braid.Session, held)
	errs = forEach(held, func(i int) error {
		s, err := braid.Dial(ctx, addr, lbConfig(fp))
		if err != nil {
			return err
		}
		sessions[i] = s
		return lbSend(ctx, s, fmt.Sprintf("held-%d", i), uint64(n+i))
	})
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Abort()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	doomed := 0
	for _, s := range sessions {
		if lbSID(s.ID()) == victim.sid {
			doomed++
		}
	}
	if doomed == 0 || doomed == held {
		t.Fatalf("%d of %d held sessions on backend %s: want some, not all", doomed, held, victim.sid)
	}
	proc, err := os.FindProcess(victim.pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil { // SIGKILL: no goodbye to its clients
		t.Fatal(err)
	}
	t.Logf("killed backend %s (pid %d), which held %d of %d sessions", victim.sid, victim.pid, doomed, held)
	killed := time.Now()
	errs = forEach(held, func(i int) error {
		return lbSend(ctx, sessions[i], fmt.Sprintf("after-%d", i), uint64(2*n+i))
	})
	settled := time.Since(killed).Round(time.Millisecond)
	var example error
	for i, s := range sessions {
		onVictim := lbSID(s.ID()) == victim.sid
		switch err := errs[i]; {
		case onVictim && err == nil:
			t.Errorf("session %s on the killed backend still carried a transfer", s.ID())
		case onVictim && !(errors.Is(err, braid.ErrPathLost) && errors.Is(err, braid.ErrUnknownSession) &&
			strings.Contains(err.Error(), "its id names server "+victim.sid)):
			t.Errorf("session %s on the killed backend: %v; want ErrPathLost from an UNKNOWN_SESSION re-dial naming server %s", s.ID(), err, victim.sid)
		case onVictim:
			example = err
		case err != nil:
			t.Errorf("session %s on backend %s, alive: %v", s.ID(), lbSID(s.ID()), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("the %d sessions on the killed backend failed (e.g. %q); the other %d carried their transfers; all settled %v after the kill", doomed, example, held-doomed, settled)

	// New sessions open on the survivors.
	const fresh = 12
	errs = forEach(fresh, func(i int) error {
		s, err := braid.Dial(ctx, addr, lbConfig(fp))
		if err != nil {
			return fmt.Errorf("new session %d: %w", i, err)
		}
		defer s.Close()
		if sid := lbSID(s.ID()); sid == victim.sid {
			return fmt.Errorf("new session %s on the killed backend", s.ID())
		}
		return lbSend(ctx, s, fmt.Sprintf("fresh-%d", i), uint64(3*n+i))
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d new sessions opened on the surviving backends", fresh)
}
