package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	}
	for _, c := range cases {
		code, out, errOut := runCmd(t, ctx, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("braid %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errOut, c.code, c.want)
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	var serveErr bytes.Buffer
	go func() { served <- run(ctx, []string{"serve", "--listen", addr}, &bytes.Buffer{}, &serveErr) }()
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
	if code, out, e := runCmd(t, context.Background(), "send", "--single", "--message", "hello", addr); code != 0 || !strings.Contains(out, "TEXT #1, 5 bytes received") {
		t.Fatalf("send --single: %d %q %q", code, out, e)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "in.bin")
	data := bytes.Repeat([]byte("braid "), 500_000)
	os.WriteFile(file, data, 0o644)
	sum := sha256.Sum256(data)
	for _, args := range [][]string{
		{"send", "--paths", "3", "--file", file, addr},
		{"send", "--path", "127.0.0.1=" + addr, "--path", addr, "--message", "hi"},
	} {
		code, out, e := runCmd(t, context.Background(), args...)
		if code != 0 || !strings.Contains(out, "receiver verified sha256") {
			t.Fatalf("%q: %d %q %q", args, code, out, e)
		}
		if args[1] == "--paths" && (!strings.Contains(out, hex.EncodeToString(sum[:])) || strings.Count(out, addr) != 3) {
			t.Fatalf("%q: wrong digest or path table:\n%s", args, out)
		}
	}
	if code, out, e := runCmd(t, context.Background(), "ping", "-c", "3", "-i", "1ms", addr); code != 0 || !strings.Contains(out, "3 probes transmitted, 3 received, 0% loss") || !strings.Contains(out, "rtt min/avg/median/p99/max") {
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
	for in, want := range map[string]int{"512": 512, "64KiB": 64 << 10, "4MiB": 4 << 20, "1GiB": 1 << 30, "2M": 2 << 20, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5MiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
