package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/tunnel"
	"github.com/braidnet/braid/mux"
)

func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"help"}, 0, "demo"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"send", "127.0.0.1:1"}, 2, "give exactly one of --message or --file"},
		{[]string{"send", "--message", "x"}, 2, "need exactly one server address"},
		{[]string{"send", "--message", "x", "--path", "a=b", "127.0.0.1:1"}, 2, "need exactly one server address, or --path flags"},
		{[]string{"ping", "-s", "100", "127.0.0.1:1"}, 2, "-s must be 8..64"},
		{[]string{"bench", "--volume", "lots"}, 2, "--volume"},
		{[]string{"serve", "--log-format", "xml"}, 2, "unknown --log-format"},
		{[]string{"ping", "-h"}, 0, "Usage: braid ping"},
		{[]string{"send", "--message", "x", "127.0.0.1:1"}, 1, "connection refused"},
		{[]string{"send", "--message", "x", "--mode", "shamir:3/2", "127.0.0.1:1"}, 2, "--mode"},
		{[]string{"send", "--message", "x", "--mode", "shamir:2/3", "--paths", "2", "127.0.0.1:1"}, 2, "needs 3 paths"},
		{[]string{"send", "--message", "x", "--mode", "aont:3/2", "127.0.0.1:1"}, 2, "--mode"},
		{[]string{"send", "--message", "x", "--mode", "aont:2/3", "--paths", "2", "127.0.0.1:1"}, 2, "needs 3 paths"},
		{[]string{"demo", "--mode", "stripes"}, 2, "--mode"},
		{[]string{"bench", "--paths", "2", "--modes", "shamir:2/3"}, 1, "needs 3 paths"},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, ctx, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("braid %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
}

// TestDemoShamir: without TLS, in shamir:2/3 the demo's file arrives intact and no path's bytes
// show the plaintext or depart from uniform, while in plain mode every path shows it; with TLS
// (the default) no path shows it in either mode.
func TestDemoShamir(t *testing.T) {
	for _, c := range []struct {
		mode     string
		insecure bool
		visible  string
	}{{"shamir:2/3", true, "no"}, {"plain", true, "yes"}, {"plain", false, "no"}, {"shamir:2/3", false, "no"}} {
		args := []string{"demo", "-q", "--mode", c.mode, "--size", "2000000"}
		header := "first bytes\n"
		if c.insecure {
			args = append(args, "--insecure")
			header = "first payload bytes\n"
		}
		code, out, errOut := runCmd(t, context.Background(), args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.mode, code, errOut)
		}
		if !strings.Contains(out, "receiver verified sha256") || !strings.Contains(out, "what each path carried") {
			t.Fatalf("%s: output lacks the transfer or the path table:\n%s", c.mode, out)
		}
		if !c.insecure && !strings.Contains(out, "key exchange X25519MLKEM768") {
			t.Fatalf("%s: no post-quantum key exchange reported:\n%s", c.mode, out)
		}
		_, table, _ := strings.Cut(out, header)
		rows := 0
		for _, line := range strings.Split(table, "\n") {
			f := strings.Fields(line)
			if len(f) != 6 || f[0] == "(chi-square" { // slot, recorded, payload, chi-square, visible, bytes
				continue
			}
			rows++
			if f[4] != c.visible {
				t.Errorf("%s: plaintext visible %q on slot %s, want %q", c.mode, f[4], f[0], c.visible)
			}
			// Random bytes give about 255; 400 is beyond p = 1e-8.
			if x, err := strconv.ParseFloat(f[3], 64); err != nil || (c.visible == "no") != (x < 400) {
				t.Errorf("%s: slot %s chi-square %s", c.mode, f[0], f[3])
			}
		}
		if want := map[string]int{"shamir:2/3": 3, "plain": 4}[c.mode]; rows != want {
			t.Errorf("%s: %d path rows, want %d:\n%s", c.mode, rows, want, out)
		}
	}
}

func TestDemo(t *testing.T) {
	code, out, errOut := runCmd(t, context.Background(), "demo", "--size", "3000000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"type=PING", "type=PONG", "type=TEXT", "type=ACK", `"path up"`, "file: 3000000 bytes", "receiver verified sha256", "chunks sent", "== done"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestServeSendPingShutdown runs the server subcommand, talks to it with send and ping, then
// cancels it as SIGINT would and expects a clean exit.
func TestServeSendPingShutdown(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	var serveErr bytes.Buffer
	var serveOut testutil.SyncBuffer
	dir := t.TempDir()
	identity := filepath.Join(dir, "identity")
	go func() {
		served <- run(ctx, []string{"serve", "--listen", addr, "--identity", identity}, &serveOut, &serveErr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The server made an identity and printed its fingerprint.
	fp := regexp.MustCompile(`server fingerprint (SHA256:\S+)`).FindStringSubmatch(serveOut.String())
	if !strings.Contains(serveOut.String(), "created a new server identity") || fp == nil {
		t.Fatalf("serve output: %q", serveOut.String())
	}
	known := filepath.Join(dir, "known_hosts")
	// First use of the known-hosts file records the server; the next uses match it.
	if code, out, e := runCmd(t, context.Background(), "send", "--single", "--known-hosts", known, "--message", "hello", addr); code != 0 ||
		!strings.Contains(out, "TEXT #1, 5 bytes received") || !strings.Contains(e, "trusting "+addr+" on first use: fingerprint "+fp[1]) {
		t.Fatalf("send --single: %d %q %q", code, out, e)
	}
	if b, err := os.ReadFile(known); err != nil || string(b) != addr+" "+fp[1]+"\n" {
		t.Fatalf("known_hosts: %q, %v", b, err)
	}
	// braid identity shows the same key the server uses.
	if code, out, e := runCmd(t, context.Background(), "identity", "--dir", identity); code != 0 || !strings.Contains(out, "fingerprint "+fp[1]) || strings.Contains(out, "created") {
		t.Fatalf("identity: %d %q %q", code, out, e)
	}
	// A pinned key that is not the server's is refused, with a clear error.
	other := "SHA256:" + strings.Repeat("A", 43)
	if code, _, e := runCmd(t, context.Background(), "send", "--server-fingerprint", other, "--message", "x", addr); code == 0 ||
		!strings.Contains(e, "certificate fingerprint mismatch") {
		t.Fatalf("wrong fingerprint: %d %q", code, e)
	}
	// So is a server whose key changed since first use.
	changed := filepath.Join(dir, "changed_hosts")
	os.WriteFile(changed, []byte(addr+" "+other+"\n"), 0o600)
	if code, _, e := runCmd(t, context.Background(), "send", "--known-hosts", changed, "--message", "x", addr); code == 0 ||
		!strings.Contains(e, "server identity changed") {
		t.Fatalf("changed identity: %d %q", code, e)
	}
	file := filepath.Join(dir, "in.bin")
	data := bytes.Repeat([]byte("braid "), 500_000)
	os.WriteFile(file, data, 0o644)
	sum := sha256.Sum256(data)
	for _, args := range [][]string{
		{"send", "--known-hosts", known, "--paths", "3", "--file", file, addr},
		{"send", "--server-fingerprint", fp[1], "--path", "127.0.0.1=" + addr, "--path", addr, "--message", "hi"},
	} {
		code, out, e := runCmd(t, context.Background(), args...)
		if code != 0 || !strings.Contains(out, "receiver verified sha256") {
			t.Fatalf("%q: %d %q %q", args, code, out, e)
		}
		if args[3] == "--paths" && (!strings.Contains(out, hex.EncodeToString(sum[:])) || strings.Count(out, addr) != 3 || !strings.Contains(out, "key exchange X25519MLKEM768")) {
			t.Fatalf("%q: wrong digest or path table:\n%s", args, out)
		}
	}
	if code, out, e := runCmd(t, context.Background(), "ping", "--server-fingerprint", fp[1], "-c", "3", "-i", "1ms", addr); code != 0 || !strings.Contains(out, "3 probes transmitted, 3 received, 0% loss") || !strings.Contains(out, "rtt min/avg/median/p99/max") {
		t.Fatalf("ping: %d %q %q", code, out, e)
	}
	cancel()
	select {
	case code := <-served:
		if code != 0 || !strings.Contains(serveErr.String(), "stopped") {
			t.Fatalf("serve exit %d: %s", code, serveErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"512": 512, "64KiB": 64 << 10, "4MiB": 4 << 20, "1GiB": 1 << 30, "2M": 2 << 20, "10B": 10,
		"10MB": 10e6, "1.5MiB": 3 << 19, "16K": 16 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1MiBs", "2TiB", "4096GiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// TestServeAuthorizedClients: a server given --authorized-clients serves only clients that
// present a listed key (made with braid identity), and tells the others why it refuses them.
func TestServeAuthorizedClients(t *testing.T) {
	dir := t.TempDir()
	clientDir := filepath.Join(dir, "client")
	code, out, _ := runCmd(t, context.Background(), "identity", "--dir", clientDir)
	cfp := regexp.MustCompile(`fingerprint (SHA256:\S+)`).FindStringSubmatch(out)
	if code != 0 || !strings.Contains(out, "created a new identity") || cfp == nil {
		t.Fatalf("client identity: %d %q", code, out)
	}
	authorized := filepath.Join(dir, "authorized")
	os.WriteFile(authorized, []byte("# the one client\n"+cfp[1]+" laptop\n"), 0o600)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--authorized-clients", authorized)
	if code, _, e := runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--message", "x", addr); code == 0 || !strings.Contains(e, "not authorized") {
		t.Fatalf("a client without a key: %d %q", code, e)
	}
	if code, out, e := runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--cert", filepath.Join(clientDir, "cert.pem"),
		"--key", filepath.Join(clientDir, "key.pem"), "--message", "x", addr); code != 0 || !strings.Contains(out, "receiver verified") {
		t.Fatalf("the authorized client: %d %q %q", code, out, e)
	}
}

// startServe runs braid serve with args on a free loopback port until the test ends, and returns
// its address and server fingerprint.
func startServe(t *testing.T, args ...string) (addr, fingerprint string) {
	t.Helper()
	addr, fingerprint, _ = startServeStop(t, args...)
	return addr, fingerprint
}

// startServeStop is startServe, and also returns a function that stops the server as SIGINT
// does and returns its exit code (the test's end stops it too, if it runs still).
func startServeStop(t *testing.T, args ...string) (addr, fingerprint string, stop func() int) {
	t.Helper()
	addr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var serveOut, serveErr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve", "--listen", addr}, args...), &serveOut, &serveErr) }()
	stop = sync.OnceValue(func() int {
		cancel()
		return <-done
	})
	t.Cleanup(func() { stop() })
	var fp []string
	testutil.WaitFor(t, func() bool {
		fp = regexp.MustCompile(`server fingerprint (SHA256:\S+)`).FindStringSubmatch(serveOut.String())
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return fp != nil && err == nil
	}, "the server to start (%s)", serveErr.String())
	return addr, fp[1], stop
}

// TestServePartialFile: a file whose sender vanishes part way through never appears under its
// final name (nor is its .part left behind); one that arrives whole and verified does.
func TestServePartialFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", out)
	ctx := context.Background()
	s, err := braid.Dial(ctx, addr, &braid.Config{Paths: 2, ServerFingerprint: fp})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := json.Marshal(transferHeader{Kind: "file", Name: "cut.bin", Size: 8 << 20})
	s.Send(ctx, hdr)
	s.Send(ctx, make([]byte, 1<<20))
	testutil.WaitFor(t, func() bool { _, err := os.Stat(filepath.Join(out, "cut.bin.part")); return err == nil }, "the partial file")
	s.Abort() // the sender is gone after 1 of 8 MiB
	testutil.WaitFor(t, func() bool {
		entries, _ := os.ReadDir(out)
		return len(entries) == 0
	}, "the partial file to be removed")
	file := filepath.Join(dir, "whole.bin")
	os.WriteFile(file, bytes.Repeat([]byte("whole "), 200_000), 0o644)
	if code, o, e := runCmd(t, ctx, "send", "--server-fingerprint", fp, "--file", file, addr); code != 0 || !strings.Contains(o, "saved by the receiver as "+filepath.Join(out, "whole.bin")) {
		t.Fatalf("send: %d %q %q", code, o, e)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 || entries[0].Name() != "whole.bin" {
		t.Fatalf("output directory: %v", entries)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEncryptedRecords: only application_data records' contents count, a record cut short by
// the end of the recording included up to there.
func TestEncryptedRecords(t *testing.T) {
	rec := func(typ byte, body string) string {
		return string([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}) + body
	}
	for _, c := range []struct{ stream, want string }{
		{"", ""},
		{rec(22, "hello") + rec(20, "\x01") + rec(23, "abc") + rec(23, "de"), "abcde"},
		{rec(23, string(make([]byte, 300))), string(make([]byte, 300))},
		{rec(23, "abcdef")[:8], "abc"},
		{"\x17\x03", ""},
	} {
		if got := string(encryptedRecords([]byte(c.stream))); got != c.want {
			t.Errorf("encryptedRecords(%q) = %q, want %q", c.stream, got, c.want)
		}
	}
}

// TestServeIdleSessionsHoldNoGoroutine: braid serve waits for a session's next transfer with
// AfterReady, so sessions idle after a transfer hold no goroutine of its (their path readers doze
// and their writers park at both ends, which are all in this process); a server with a Receive
// loop per session would hold one each. Closing them ends everything they started.
func TestServeIdleSessionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("path readers doze on Linux only")
	}
	echo, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	addr, fp, stop := startServeStop(t, "--identity", t.TempDir(), "--allow", echo.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One session first, so that what the first one starts for good (the process's poller, the
	// server's first session's logging) is in the base.
	warm, err := braid.Dial(ctx, addr, &braid.Config{Paths: 2, ServerFingerprint: fp})
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Abort()
	transferOne := func(s *braid.Session) {
		msg := []byte("a message")
		if _, _, err := sendTransfer(ctx, s, transferHeader{Kind: "message", Size: int64(len(msg))}, bytes.NewReader(msg), new(atomic.Int64)); err != nil {
			t.Fatal(err)
		}
	}
	transferOne(warm)
	settled := func(want int) func() bool {
		return func() bool { return runtime.NumGoroutine() <= want }
	}
	// The base: the count once it has held still for 300 ms (the first session idle).
	base, since := runtime.NumGoroutine(), time.Now()
	testutil.WaitFor(t, func() bool {
		if n := runtime.NumGoroutine(); n != base {
			base, since = n, time.Now()
		}
		return time.Since(since) > 300*time.Millisecond
	}, "the goroutine count to settle")

	// Every other session is a tunnel, which has carried a stream to the echo target. Its mux,
	// at both ends here, reads with AfterReady once it has been idle for 100-200 ms.
	const n = 16
	sessions := make([]*braid.Session, n)
	muxes := make([]*mux.Mux, n)
	for i := range sessions {
		cfg := &braid.Config{Paths: 2, ServerFingerprint: fp}
		if i%2 == 0 {
			s, err := braid.Dial(ctx, addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Abort()
			transferOne(s)
			sessions[i] = s
			continue
		}
		s, m, err := tunnel.Dial(ctx, []braid.PathSpec{{Remote: addr}, {Remote: addr}}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Abort()
		defer m.Close()
		if err := answerStream(ctx, m, echo.Addr().String()); err != nil {
			t.Fatalf("tunnel session %d: %v", i, err)
		}
		sessions[i], muxes[i] = s, m
	}
	// The count alone would not show a goroutine per tunnel: the base holds some that end
	// meanwhile (the first session's). So no goroutine may be in a mux's or a Receive's code.
	testutil.WaitFor(t, func() bool {
		return settled(base+n/4)() && testutil.GoroutinesIn("braid/mux.(*", "session.(*Session).Receive") == 0
	},
		"%d idle sessions, half of them tunnels, to hold no goroutine (base %d)", n, base)
	const keep = 5 // left idle for the server's shutdown
	for i, s := range sessions[keep:] {
		if m := muxes[keep+i]; m != nil {
			m.Close()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, settled(base+2), "the closed sessions' goroutines to end (base %d)", base)

	// Shutting down closes the sessions that wait with AfterReady: each peer hears the end.
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	for i, s := range append(sessions[:keep], warm) {
		if i < keep && muxes[i] != nil {
			select {
			case <-muxes[i].Done():
				if err := muxes[i].Err(); !errors.Is(err, io.EOF) {
					t.Errorf("tunnel session %d after the server's shutdown: %v, want io.EOF", i, err)
				}
			case <-ctx.Done():
				t.Fatalf("tunnel session %d: the mux did not end at the server's shutdown", i)
			}
			continue
		}
		if _, err := s.Receive(ctx); err != io.EOF {
			t.Errorf("session %d after the server's shutdown: %v, want io.EOF", i, err)
		}
	}
}
