package session

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/reasm"
)

// TestSessionConstantsPinned ties the session-layer limits to docs/PROTOCOL.md, section 5.
func TestSessionConstantsPinned(t *testing.T) {
	d := DefaultConfig()
	pins := []struct {
		name      string
		got, want int64
	}{
		{"MinChunkSize", MinChunkSize, 1 << 10},
		{"MaxChunkSize", MaxChunkSize, 1 << 20},
		{"ItemOverhead", reasm.ItemOverhead, 64},
		{"charge of 3 chunks of 1 KiB", reasm.Charge(3, 1024), 3*1024 + 64},
		{"chunks of an empty message", int64(reasm.Chunks(0, 1024)), 1},
		{"default MaxPaths", int64(d.MaxPaths), 16},
		{"MaxPaths limit", maxPathsLimit, 1024},
		{"default MaxSessions", int64(d.MaxSessions), 1024},
		{"default MaxConns", int64(d.MaxConns), 16384},
		{"default MaxConnsPerIP", int64(d.MaxConnsPerIP), 1024},
		{"default AcceptBacklog", int64(d.AcceptBacklog), 128},
		{"default HandshakeTimeout", int64(d.HandshakeTimeout), int64(10 * time.Second)},
		{"default SessionWindow", d.SessionWindow, 64 << 20},
		{"default MaxMessageSize", int64(d.MaxMessageSize), 16 << 20},
		{"default ChunkSize", int64(d.ChunkSize), 256 << 10},
		{"default KeepAlive", int64(d.KeepAlive), int64(time.Second)},
		{"default PathTimeout", int64(d.PathTimeout), int64(4 * time.Second)},
		{"default MinRTO", int64(d.MinRTO), int64(200 * time.Millisecond)},
		{"default ResumeGrace", int64(d.ResumeGrace), int64(30 * time.Second)},
		{"default IdleTimeout", int64(d.IdleTimeout), int64(2 * time.Minute)},
		{"default Linger", int64(d.Linger), int64(5 * time.Second)},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %d, docs/PROTOCOL.md says %d", p.name, p.got, p.want)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := (&Config{Paths: 2}).withDefaults()
	if err != nil || c.Paths != 2 || c.ChunkSize != 256<<10 || c.Logger == nil {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []*Config{
		{ChunkSize: 100}, {ChunkSize: 2 << 20}, {Paths: -1}, {MaxPaths: 5000}, {Scheduler: "nope"},
		{SessionWindow: -1}, {KeepAlive: -time.Second}, {MaxConns: -1}, {MaxConnsPerIP: -1},
		{SessionWindow: 1 << 20}, // smaller than two 16 MiB messages
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestValidateIsWhatDialAccepts: Validate rejects every configuration Dial and Listen would,
// with an error matching ErrBadOptions, and reports the first broken rule in a fixed order.
func TestValidateIsWhatDialAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"keepalive not below path timeout", Config{KeepAlive: 5 * time.Second}, "PathTimeout"},
		{"keepalive equals path timeout", Config{KeepAlive: time.Second, PathTimeout: time.Second}, "PathTimeout"},
		{"small window", Config{SessionWindow: 1 << 20}, "SessionWindow"},
		{"chunk beyond frame", Config{MaxFrameSize: 64 << 10, ChunkSize: 128 << 10}, "MaxFrameSize"},
		{"pieces beyond frame", Config{MaxFrameSize: 64<<10 + 24, ChunkSize: 64 << 10, Mode: "shamir:2/3", MaxMessageSize: 1 << 20}, "pieces"},
		{"coded mode, wrong paths", Config{Mode: "shamir:2/3", Paths: 2}, "needs 3 paths"},
		{"bad mode", Config{Mode: "xor"}, "Mode"},
		{"bad scheduler", Config{Scheduler: "nope"}, "Scheduler"},
		{"negative linger", Config{Linger: -1}, "Linger"},
		{"frame above the limit", Config{MaxFrameSize: 1 << 30}, "MaxFrameSize"},
		{"insecure with a pin", Config{Insecure: true, ServerFingerprint: testFingerprint()}, "Insecure"},
		{"insecure requiring PQ", Config{Insecure: true, RequirePostQuantum: true}, "Insecure"},
		{"insecure with a token", Config{Insecure: true, Token: "t"}, "clear"},
		{"bad fingerprint", Config{ServerFingerprint: "SHA256:short"}, "ServerFingerprint"},
		{"bad authorized client", Config{AuthorizedClients: []string{"md5:x"}}, "AuthorizedClients"},
		{"long token", Config{Token: strings.Repeat("t", 65)}, "Token"},
		{"negative handshakes", Config{MaxHandshakesPerIP: -1}, "MaxHandshakesPerIP"},
		{"window beyond the limit", Config{SessionWindow: 1 << 62, ChunkSize: 1 << 20}, "SessionWindow"},
		{"window of too many chunks", Config{SessionWindow: 1 << 31, ChunkSize: 1 << 10}, "chunks"},
		{"message beyond the limit", Config{MaxMessageSize: 1 << 50}, "MaxMessageSize"},
		{"message whose window would be too large", Config{MaxMessageSize: 1 << 40, ChunkSize: 1 << 20}, "needs a window"},
		{"message whose window holds too many chunks", Config{MaxMessageSize: 1 << 30, ChunkSize: 1 << 10}, "needs a window"},
		{"memory beyond the limit", Config{MaxMemory: 1 << 62}, "MaxMemory"},
		{"certificate that does not parse", Config{TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{{1, 2, 3}}}}}}, "certificate 0"},
		{"server id too long", Config{ServerID: make([]byte, 8)}, "ServerID"},
		{"server id config 7", Config{ServerID: []byte{1}, ServerIDConfig: 7}, "ServerID"},
		{"server id config alone", Config{ServerIDConfig: 1}, "without a ServerID"},
		// Several rules broken: the first field in declaration order is the one reported.
		{"first of several", Config{ReadTimeout: -1, Paths: -1, Linger: -1, Scheduler: "nope"}, "ReadTimeout"},
		{"paths before scheduler", Config{Paths: -1, Scheduler: "nope"}, "Paths"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first string
			for i := range 20 {
				err := tc.cfg.Validate()
				if !errors.Is(err, ErrBadOptions) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Validate: %v, want ErrBadOptions about %s", err, tc.want)
				}
				if i == 0 {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("Validate reported %q, then %q", first, err)
				}
			}
			cfg := tc.cfg
			if _, err := Listen("127.0.0.1:0", serving(&cfg)); !errors.Is(err, ErrBadOptions) {
				t.Fatalf("Listen accepted what Validate rejects: %v", err)
			}
			if _, err := Dial(context.Background(), "127.0.0.1:1", pinned(&cfg)); !errors.Is(err, ErrBadOptions) {
				t.Fatalf("Dial: %v, want ErrBadOptions before dialling", err)
			}
		})
	}
	for _, good := range []Config{{}, {KeepAlive: 3 * time.Second}, {SessionWindow: 32 << 20, MaxMessageSize: 1 << 20}, {Mode: "erasure:2/3"}} {
		if err := good.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", good, err)
		}
	}
}

// TestValidConfigsAccepted: a configuration that validates is accepted by Listen and Dial, up to
// the limits of every memory setting, and the session it makes carries a message.
func TestValidConfigsAccepted(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"largest window", Config{SessionWindow: maxSessionWindow, ChunkSize: MaxChunkSize}},
		{"most chunks in the window", Config{SessionWindow: maxWindowChunks * MinChunkSize, ChunkSize: MinChunkSize, MaxMessageSize: 1 << 20}},
		{"largest memory budget", Config{MaxMemory: maxMemory}},
		{"large messages", Config{MaxMessageSize: 1 << 30, ChunkSize: MaxChunkSize}},
		{"smallest window for the messages", Config{SessionWindow: 2 * reasm.Charge(16, 1<<10), ChunkSize: 1 << 10, MaxMessageSize: 16 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Insecure = true
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			l, err := Listen("127.0.0.1:0", &cfg)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, l.Addr().String(), &cfg)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Abort()
			s, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Abort()
			if err := c.Send(ctx, []byte("fits")); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Receive(ctx); err != nil || string(got) != "fits" {
				t.Fatalf("received %q, %v", got, err)
			}
		})
	}
}
