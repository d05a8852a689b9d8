package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// asMainEnv makes the test binary run as braid itself: braid bench --sessions starts its server
// as a child process of its own executable, which in a test is this binary.
const asMainEnv = "BRAID_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchSessions runs braid bench --sessions small, over TLS (its default) and plain TCP, and
// with tunnel sessions: every session set up and answering after the idle period (a tunnel
// session through a stream to the bench's echo target), the server measured, the transfer made.
func TestBenchSessions(t *testing.T) {
	t.Setenv(asMainEnv, "1") // for the server child
	for _, c := range []struct {
		sec    string
		addrs  int // --client-addrs
		tunnel bool
	}{{"tls", defaultClientAddrs(), false}, {"insecure", 1, false}, {"tls", defaultClientAddrs(), true}} {
		sec := c.sec
		name := sec
		args := []string{"bench", "--sessions", "40", "--idle", "1s", "--security", sec, "--client-addrs", strconv.Itoa(c.addrs), "--json"}
		if c.tunnel {
			name += "/tunnel"
			args = append(args, "--tunnel")
		}
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCmd(t, context.Background(), args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			var rep sessionsReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if rep.Security != sec || len(rep.Rows) != 1 || rep.ClientAddrs != c.addrs || rep.Tunnel != c.tunnel {
				t.Fatalf("report %+v", rep)
			}
			r := rep.Rows[0]
			if r.Sessions != 40 || r.Established != 40 || r.AttachFailures != 0 || r.Answered != 40 || r.AnswerFailures != 0 {
				t.Errorf("sessions %d, up %d, failed %d (%s), answered %d, not %d (%s)", r.Sessions, r.Established,
					r.AttachFailures, r.FirstFailure, r.Answered, r.AnswerFailures, r.FirstAnswerError)
			}
			if r.RSSBytes <= 0 || r.RSSBaseBytes <= 0 || r.IdleSeconds < 1 || r.IdleCPUPercent < 0 || r.SettledCPUPercent < 0 || r.SessionsPerSecond <= 0 {
				t.Errorf("server figures missing: %+v", r)
			}
			if r.BaselineBPS <= 0 || r.IdleBPS <= 0 || r.TransferRatio <= 0 {
				t.Errorf("transfer figures missing: %+v", r)
			}
			// The setup baseline ran, and the server's runtime was scraped. An idle session
			// may hold no goroutine (its readers doze, its writers park, serve waits with
			// AfterReady), but the server holds some of its own.
			if r.BaselinePerSecond <= 0 || r.SetupRatio <= 0 || r.ServerGoroutines < 1 {
				t.Errorf("baseline or runtime figures missing: %+v", r)
			}
		})
	}
	for _, bad := range []string{"0", "251"} {
		if code, _, errOut := runCmd(t, context.Background(), "bench", "--sessions", "1", "--client-addrs", bad); code != exitUsage {
			t.Errorf("--client-addrs %s: exit %d, want %d (%s)", bad, code, exitUsage, errOut)
		}
	}
	if code, _, errOut := runCmd(t, context.Background(), "bench", "--sessions", "0"); code != exitUsage {
		t.Errorf("--sessions 0: exit %d, want %d (%s)", code, exitUsage, errOut)
	}
}
