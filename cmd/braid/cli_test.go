package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// TestParseFlagsAnyOrder: flags may follow arguments; "--" ends the flags.
func TestParseFlagsAnyOrder(t *testing.T) {
	cases := []struct {
		args  []string
		paths int
		msg   string
		pos   []string
	}{
		{[]string{"ADDR", "--paths", "2"}, 2, "", []string{"ADDR"}},
		{[]string{"--paths", "3", "ADDR", "--message", "hi"}, 3, "hi", []string{"ADDR"}},
		{[]string{"a", "b", "-paths=5", "c"}, 5, "", []string{"a", "b", "c"}},
		{[]string{"ADDR", "--", "--paths", "7"}, 4, "", []string{"ADDR", "--paths", "7"}},
		{[]string{"--", "-x"}, 4, "", []string{"-x"}},
		{[]string{"-", "--message", "m"}, 4, "m", []string{"-"}},
		{nil, 4, "", nil},
	}
	for _, c := range cases {
		fs := newFlagSet("test", "ARGS", io.Discard)
		paths := fs.Int("paths", 4, "")
		msg := fs.String("message", "", "")
		if err := parseFlags(fs, c.args); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if *paths != c.paths || *msg != c.msg || !slices.Equal(fs.Args(), c.pos) && len(c.pos)+fs.NArg() > 0 {
			t.Errorf("%q: paths %d, message %q, args %q; want %d, %q, %q", c.args, *paths, *msg, fs.Args(), c.paths, c.msg, c.pos)
		}
	}
	var out bytes.Buffer
	fs := newFlagSet("test", "ARGS", &out)
	fs.Int("paths", 4, "")
	if err := parseFlags(fs, []string{"ADDR", "--nope"}); !errors.Is(err, errUsage) || !strings.Contains(out.String(), "flag provided but not defined: -nope") ||
		!strings.Contains(out.String(), "Run 'braid help test' for the flags.") || strings.Contains(out.String(), "-paths") {
		t.Errorf("unknown flag: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := parseFlags(fs, []string{"ADDR", "-h"}); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-paths") {
		t.Errorf("-h: %v\n%s", err, out.String())
	}
}

// TestHelpVersionAndExitCodes: braid help CMD shows a command's usage on standard output; braid
// version reports the build; usage errors exit 2; a failure prints one "braid CMD:" prefix.
func TestHelpVersionAndExitCodes(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		args     []string
		code     int
		stdout   string // must contain
		stderr   string
		noStderr bool
	}{
		{[]string{"help", "send"}, 0, "Usage: braid send", "", true},
		{[]string{"help", "send"}, 0, "-min-paths", "", true},
		{[]string{"help", "serve"}, 0, "-overwrite", "", true},
		{[]string{"help", "ping"}, 0, "-W duration", "", true},
		{[]string{"help", "bench"}, 0, "-reverse", "", true},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`, false},
		{[]string{"help"}, 0, "version", "", true},
		{[]string{"help", "help"}, 0, "Commands:", "", true},
		{[]string{"--help"}, 0, "Commands:", "", true},
		{[]string{"version"}, 0, "braid ", "", true},
		{[]string{"--version"}, 0, "go1.", "", true},
		{[]string{"version", "-v"}, 0, "module github.com/braidnet/braid", "", true},
		{[]string{"version", "extra"}, 2, "", "unexpected arguments", false},
		{[]string{"send", "--paths", "0", "--message", "x", "127.0.0.1:1"}, 2, "", "--paths must be at least 1", false},
		{[]string{"send", "--message", "x", "--min-paths", "5", "127.0.0.1:1"}, 2, "", "--min-paths must be 0..4", false},
		{[]string{"send", "--message", "x", "--scheduler", "fastest", "127.0.0.1:1"}, 2, "", "Scheduler", false},
		{[]string{"send", "--message", "x", "--server-fingerprint", "bogus", "127.0.0.1:1"}, 2, "", "ServerFingerprint", false},
		{[]string{"ping", "--server-fingerprint", "bogus", "127.0.0.1:1"}, 2, "", "ServerFingerprint", false},
		{[]string{"cat", "127.0.0.1:1", "nohostport"}, 2, "", `target "nohostport": want HOST:PORT`, false},
		{[]string{"send", "--message", "x", "--name", "n", "127.0.0.1:1"}, 2, "", "--name names a --file", false},
		{[]string{"send", "--message", "x", "-i", "1ms", "127.0.0.1:1"}, 2, "", "-i must be at least 10ms", false},
		{[]string{"ping", "-W", "0s", "127.0.0.1:1"}, 2, "", "-W positive", false},
		{[]string{"bench", "--paths", "2", "--time", "1ms", "127.0.0.1:1"}, 2, "", "--time must be", false},
		{[]string{"serve", "--release-memory", "-1s"}, 2, "", "--release-memory must not be negative", false},
		{[]string{"serve", "--max-frame", "0"}, 2, "", `--max-frame "0": want a positive size`, false},
		{[]string{"send", "--single", "--file", "x", "--frame-size", "1Q", "127.0.0.1:1"}, 2, "", `--frame-size "1Q"`, false},
		// Flags after the address, and one prefix however deep the error is wrapped.
		{[]string{"send", "127.0.0.1:1", "--message", "x", "--paths", "2"}, 1, "", "braid send: dial 127.0.0.1:1: connect: connection refused\n", false},
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, ctx, c.args...)
		if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errOut, c.stderr) || c.noStderr && errOut != "" {
			t.Errorf("braid %q: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout containing %q, stderr %q", c.args, code, out, errOut, c.code, c.stdout, c.stderr)
		}
		if c.code == 1 && strings.Count(errOut, "braid") != 1 {
			t.Errorf("braid %q: more than one prefix: %q", c.args, errOut)
		}
	}
	// A flag for braid's own use (the netns agent's) is not in the help.
	if _, out, _ := runCmd(t, ctx, "help", "eval"); !strings.Contains(out, "-scheduler") || strings.Contains(out, "-agent") {
		t.Errorf("braid help eval: want -scheduler and no -agent:\n%s", out)
	}
}

func TestErrorText(t *testing.T) {
	err := fmt.Errorf("braid: SESSION_NEW to 1.2.3.4:5: %w", errors.New("braid: dial 1.2.3.4:5: dial tcp 1.2.3.4:5: connect: no route to host"))
	if got, want := errorText(err), "SESSION_NEW to 1.2.3.4:5: dial 1.2.3.4:5: connect: no route to host"; got != want {
		t.Errorf("errorText: %q, want %q", got, want)
	}
}

func TestNumbered(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"/d/big.bin", 0, "/d/big.bin"},
		{"/d/big.bin", 1, "/d/big.1.bin"},
		{"/d/archive.tar.gz", 2, "/d/archive.2.tar.gz"},
		{"/d/.profile", 1, "/d/.profile.1"},
		{"/d/noext", 3, "/d/noext.3"},
	} {
		if got := numbered(c.in, c.n); got != c.want {
			t.Errorf("numbered(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestServeFileNaming: a second file of the same name is saved under a numbered name, not over
// the first; the sender may choose the name; --overwrite replaces.
func TestServeFileNaming(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", out)
	file := filepath.Join(dir, "a.bin")
	ctx := context.Background()
	for i, want := range []string{"a.bin", "a.1.bin", "a.2.bin"} {
		os.WriteFile(file, []byte(strings.Repeat("v", i+1)), 0o644)
		if code, o, e := runCmd(t, ctx, "send", "--server-fingerprint", fp, "--file", file, addr); code != 0 || !strings.Contains(o, "saved by the receiver as "+filepath.Join(out, want)) {
			t.Fatalf("send %d: %d %q %q", i, code, o, e)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a.bin")); string(b) != "v" {
		t.Errorf("the first a.bin was overwritten: %q", b)
	}
	if code, o, e := runCmd(t, ctx, "send", "--server-fingerprint", fp, "--file", file, "--name", "../../chosen.txt", addr); code != 0 || !strings.Contains(o, "saved by the receiver as "+filepath.Join(out, "chosen.txt")) {
		t.Fatalf("send --name: %d %q %q", code, o, e)
	}

	over := filepath.Join(dir, "over")
	os.Mkdir(over, 0o755)
	addr2, fp2 := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", over, "--overwrite")
	for i := range 2 {
		os.WriteFile(file, []byte(strings.Repeat("w", i+1)), 0o644)
		if code, o, e := runCmd(t, ctx, "send", "--server-fingerprint", fp2, "--file", file, addr2); code != 0 || !strings.Contains(o, "saved by the receiver as "+filepath.Join(over, "a.bin")) {
			t.Fatalf("send --overwrite %d: %d %q %q", i, code, o, e)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(over, "a.bin")); string(b) != "ww" {
		t.Errorf("--overwrite: a.bin is %q", b)
	}
}

// TestSendRefusesBeforeConnecting: a directory or a missing file is refused without a
// connection being opened.
func TestSendRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	for _, c := range []struct{ file, want string }{
		{dir, "is a directory"},
		{filepath.Join(dir, "missing"), "no such file or directory"},
	} {
		code, _, e := runCmd(t, context.Background(), "send", "--file", c.file, "--insecure", ln.Addr().String())
		if code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("send --file %s: exit %d, %q", c.file, code, e)
		}
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("a connection was opened")
	}
}

// gatedReader yields its first part, then waits until gate is closed before the rest: a
// stream that a sender reading all its input before sending would never finish.
type gatedReader struct {
	first, rest io.Reader
	gate        <-chan struct{}
	opened      bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); err != io.EOF {
		return n, err
	}
	if !g.opened {
		<-g.gate
		g.opened = true
	}
	return g.rest.Read(p)
}

// withStdin runs f with r as --file -'s input.
func withStdin(t *testing.T, r io.Reader) {
	t.Helper()
	old := stdin
	stdin = r
	t.Cleanup(func() { stdin = old })
}

// TestSendStdinStreams: --file - sends what it has read before its input ends (the server holds
// part of it while the rest is not yet written), and the file arrives whole and verified, also
// when it ends exactly on a piece boundary.
func TestSendStdinStreams(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", out)
	for _, size := range []int{2 * transferPiece, 3*transferPiece + 12345} {
		data := bytes.Repeat([]byte("stream "), size/7+1)[:size]
		gate := make(chan struct{})
		withStdin(t, &gatedReader{first: bytes.NewReader(data[:transferPiece+1000]), rest: bytes.NewReader(data[transferPiece+1000:]), gate: gate})
		name := fmt.Sprintf("s%d", size)
		done := make(chan struct{})
		var code int
		var o, e string
		go func() {
			defer close(done)
			code, o, e = runCmd(t, context.Background(), "send", "--server-fingerprint", fp, "--file", "-", "--name", name, "--json", addr)
		}()
		testutil.WaitFor(t, func() bool {
			st, err := os.Stat(filepath.Join(out, name+partSuffix))
			return err == nil && st.Size() >= transferPiece
		}, "the server to hold the first piece before the input ends")
		close(gate)
		<-done
		var sm sendSummary
		if err := json.Unmarshal([]byte(o), &sm); code != 0 || err != nil {
			t.Fatalf("send: %d %v %q %q", code, err, o, e)
		}
		if !sm.Complete || sm.Delivered != int64(size) || sm.Size != unknownSize || sm.Saved != filepath.Join(out, name) {
			t.Errorf("summary %+v", sm)
		}
		if b, _ := os.ReadFile(filepath.Join(out, name)); !bytes.Equal(b, data) {
			t.Errorf("saved %d bytes, sent %d", len(b), len(data))
		}
	}
}

// TestSendInterrupted: Ctrl-C (the context ending) during a transfer prints what was delivered
// and per path, exits 130, and leaves no file at the server.
func TestSendInterrupted(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", out)
	for _, asJSON := range []bool{false, true} {
		gate := make(chan struct{})
		defer close(gate)
		withStdin(t, &gatedReader{first: bytes.NewReader(make([]byte, 3*transferPiece)), rest: strings.NewReader(""), gate: gate})
		ctx, cancel := context.WithCancel(context.Background())
		args := []string{"send", "--server-fingerprint", fp, "--file", "-", "--name", "cut", "--paths", "2", addr}
		if asJSON {
			args = append(args, "--json")
		}
		done := make(chan struct{})
		var code int
		var o, e string
		go func() {
			defer close(done)
			code, o, e = runCmd(t, ctx, args...)
		}()
		// All three pieces at the server before the interrupt: the acknowledgements of the
		// first two, which the summary must count, then have a piece's time to reach the client
		// (writing a piece at the server does not mean the client has heard of it; waiting
		// for two, an interrupt came before the second's ACK once, under the race detector).
		testutil.WaitFor(t, func() bool {
			st, err := os.Stat(filepath.Join(out, "cut"+partSuffix))
			return err == nil && st.Size() >= 3*transferPiece
		}, "the stream's first pieces to arrive")
		cancel()
		<-done
		if code != exitInterrupted {
			t.Fatalf("exit %d, want %d: %q %q", code, exitInterrupted, o, e)
		}
		if asJSON {
			var sm sendSummary
			if err := json.Unmarshal([]byte(o), &sm); err != nil || !sm.Interrupted || sm.Complete || sm.Delivered < 2*transferPiece || len(sm.Paths) != 2 {
				t.Errorf("JSON summary %v: %+v", err, sm)
			}
		} else if !regexp.MustCompile(`interrupted: file cut not delivered whole: \d+ bytes acknowledged by the receiver`).MatchString(o) || !strings.Contains(o, "chunks sent") {
			t.Errorf("summary: %q", o)
		}
		testutil.WaitFor(t, func() bool {
			entries, _ := os.ReadDir(out)
			return len(entries) == 0
		}, "the partial file to go")
	}
}

// eofThenInterrupt gives its bytes, then ends as a pipe whose writer died of Ctrl-C does: EOF,
// with the interrupt reaching braid a moment later (cancel, after delay).
type eofThenInterrupt struct {
	r      io.Reader
	cancel context.CancelFunc
	delay  time.Duration
	once   sync.Once
}

func (e *eofThenInterrupt) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() { time.AfterFunc(e.delay, e.cancel) })
	}
	return n, err
}

// TestSendInterruptEndsPipe: Ctrl-C that also kills the writer of a piped input (its EOF comes
// just before braid hears of the interrupt) does not commit the truncated stream: nothing
// appears at the server under the name, and the command exits 130.
func TestSendInterruptEndsPipe(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	addr, fp := startServe(t, "--identity", filepath.Join(dir, "server"), "--out", out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	withStdin(t, &eofThenInterrupt{r: bytes.NewReader(make([]byte, 2*transferPiece+100)), cancel: cancel, delay: 2 * time.Millisecond})
	code, o, e := runCmd(t, ctx, "send", "--server-fingerprint", fp, "--file", "-", "--name", "cut", "--json", addr)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %q %q", code, exitInterrupted, o, e)
	}
	testutil.WaitFor(t, func() bool {
		entries, _ := os.ReadDir(out)
		return len(entries) == 0
	}, "the partial file to go, and no file saved")
}
