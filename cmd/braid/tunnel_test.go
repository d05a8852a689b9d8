package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

// serveProcess is braid serve running in the test, with its outputs.
type serveProcess struct {
	addr, fingerprint string
	out, err          *testutil.SyncBuffer
}

// startServeOut runs braid serve like startServe, keeping its outputs; the fingerprint line is
// looked for on both (with --stdout it goes to standard error).
func startServeOut(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	sp := &serveProcess{addr: freeAddr(t), out: &testutil.SyncBuffer{}, err: &testutil.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--listen", sp.addr, "--identity", t.TempDir()}, args...), sp.out, sp.err)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	re := regexp.MustCompile(`server fingerprint (SHA256:\S+)`)
	testutil.WaitFor(t, func() bool {
		m := re.FindStringSubmatch(sp.out.String() + sp.err.String())
		if m == nil {
			return false
		}
		sp.fingerprint = m[1]
		c, err := net.Dial("tcp", sp.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the server to start (%s)", sp.err)
	return sp
}

func echoServer(t *testing.T) string {
	return testutil.TCPServer(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

func TestTunnelCommand(t *testing.T) {
	sp := startServeOut(t, "--allow", "127.0.0.1:*")
	echo := echoServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tunnel", "--server-fingerprint", sp.fingerprint, "--paths", "3",
			"-L", "0:" + echo, "-L", "0:127.0.0.2:1", "-D", "0", sp.addr}, &out, &errOut)
	}()
	var fwd, refused, socks string
	testutil.WaitFor(t, func() bool {
		m := regexp.MustCompile(`forwarding (\S+) to (\S+)`).FindAllStringSubmatch(out.String(), -1)
		s := regexp.MustCompile(`SOCKS5 on (\S+)`).FindStringSubmatch(out.String())
		if len(m) < 2 || s == nil {
			return false
		}
		fwd, refused, socks = m[0][1], m[1][1], s[1]
		return true
	}, "the tunnel to start: %s %s", &out, &errOut)
	if !strings.Contains(out.String(), "3 paths") {
		t.Errorf("tunnel output: %q", out.String())
	}
	data := make([]byte, 5<<20)
	rand.Read(data)
	c, err := net.Dial("tcp", fwd)
	if err != nil {
		t.Fatal(err)
	}
	go func() { c.Write(data); c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("through -L: %d bytes back of %d, %v", len(got), len(data), err)
	}
	// A target the server does not allow: the connection is reset (on loopback, often before
	// the dial has returned), and the server logs why.
	if c, err = net.Dial("tcp", refused); err == nil {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read from a refused forwarding: %d, %v", n, err)
		}
		c.Close()
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return strings.Contains(sp.err.String(), "tunnel: stream refused") }, "the server's refusal line: %s", sp.err)
	// SOCKS5 CONNECT by name.
	c, err = net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(echo)
	p := 0
	for _, d := range port {
		p = p*10 + int(d-'0')
	}
	c.Write([]byte{5, 1, 0})
	c.Write(append(append([]byte{5, 1, 0, 3, 9}, "localhost"...), byte(p>>8), byte(p)))
	var resp [12]byte
	if _, err := io.ReadFull(c, resp[:12]); err != nil || resp[1] != 0 || resp[3] != 0 {
		t.Fatalf("SOCKS answer % x, %v", resp, err)
	}
	c.Write([]byte("via socks"))
	c.(*net.TCPConn).CloseWrite()
	got, _ = io.ReadAll(c)
	c.Close()
	if string(got) != "via socks" {
		t.Errorf("through SOCKS: %q", got)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("tunnel exited %d: %s", code, errOut.String())
	}
}

func TestCatCommand(t *testing.T) {
	data := make([]byte, 3<<20)
	rand.Read(data)
	defer func(r io.Reader) { stdin = r }(stdin)

	// To the server's standard output.
	sp := startServeOut(t, "--stdout")
	stdin = bytes.NewReader(data)
	code, out, errOut := runCmd(t, context.Background(), "cat", "--server-fingerprint", sp.fingerprint, "--paths", "2", sp.addr)
	if code != 0 || out != "" || !strings.Contains(errOut, "2 paths") {
		t.Fatalf("cat: exit %d, stdout %d bytes, stderr %q", code, len(out), errOut)
	}
	if !bytes.Equal([]byte(sp.out.String()), data) {
		t.Errorf("the server's stdout has %d bytes, sent %d", len(sp.out.String()), len(data))
	}

	// To a target, back to our standard output.
	sp2 := startServeOut(t, "--allow", "127.0.0.1:*")
	stdin = bytes.NewReader(data)
	code, out, errOut = runCmd(t, context.Background(), "cat", "-q", "--server-fingerprint", sp2.fingerprint, sp2.addr, echoServer(t))
	if code != 0 || out != string(data) || errOut != "" {
		t.Errorf("cat to an echo target: exit %d, %d bytes back of %d, stderr %q", code, len(out), len(data), errOut)
	}
	// No target and no --stdout on the server; a target not allowed.
	stdin = strings.NewReader("x")
	if code, _, errOut := runCmd(t, context.Background(), "cat", "--server-fingerprint", sp2.fingerprint, sp2.addr); code != 1 || !strings.Contains(errOut, "no target") {
		t.Errorf("cat without a target: exit %d, %q", code, errOut)
	}
	stdin = strings.NewReader("x")
	if code, _, errOut := runCmd(t, context.Background(), "cat", "--server-fingerprint", sp2.fingerprint, sp2.addr, "192.0.2.1:22"); code != 1 || !strings.Contains(errOut, "not on the server's allow-list") {
		t.Errorf("cat to a target not allowed: exit %d, %q", code, errOut)
	}
}

func TestTunnelUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tunnel", "127.0.0.1:1"}, "give at least one -L or -D"},
		{[]string{"tunnel", "-L", "8080", "127.0.0.1:1"}, "want [bind:]port:host:hostport"},
		{[]string{"tunnel", "-D", "x", "127.0.0.1:1"}, "bad port"},
		{[]string{"tunnel", "-D", "0"}, "need exactly one server address"},
		{[]string{"tunnel", "-D", "0", "--mode", "shamir:2/3", "--paths", "2", "127.0.0.1:1"}, "needs 3 paths"},
		{[]string{"tunnel", "-D", "0", "--mode", "aont:2/3", "--paths", "2", "127.0.0.1:1"}, "needs 3 paths"},
		{[]string{"tunnel", "-D", "0", "--scheduler", "fastest", "127.0.0.1:1"}, "scheduler"},
		{[]string{"serve", "--allow", "10.0.0.1"}, "want HOST:PORTS"},
		{[]string{"cat", "a", "b", "c"}, "need exactly one server address"},
	} {
		code, out, errOut := runCmd(t, context.Background(), c.args...)
		if code != 2 || !strings.Contains(out+errOut, c.want) {
			t.Errorf("braid %q: exit %d, %q; want 2 and %q", c.args, code, out+errOut, c.want)
		}
	}
}
