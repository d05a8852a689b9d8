package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

// TestRouteConstantsPinned ties the routable id layout to docs/PROTOCOL.md 5.2.1: changing any
// value here changes what load balancers and clients derive from an id.
func TestRouteConstantsPinned(t *testing.T) {
	pins := []struct {
		name      string
		got, want int
	}{
		{"RouteConfigShift", RouteConfigShift, 5},
		{"RouteLengthMask", RouteLengthMask, 0x1f},
		{"MaxRouteConfig", MaxRouteConfig, 6},
		{"RouteUnroutable", RouteUnroutable, 7},
		{"MinServerIDSize", MinServerIDSize, 1},
		{"MaxServerIDSize", MaxServerIDSize, 7},
		{"MinNonceSize", MinNonceSize, 8},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %d, PROTOCOL.md says %d", p.name, p.got, p.want)
		}
	}
}

// counting is a deterministic "random" source: 0xa0, 0xa1, ...
type counting struct{ next byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xa0 + c.next
		c.next++
	}
	return len(p), nil
}

// TestNewSessionIDLayout pins whole ids, byte for byte, as PROTOCOL.md's examples give them.
func TestNewSessionIDLayout(t *testing.T) {
	cases := []struct {
		name     string
		config   int
		serverID []byte
		want     string // hex of the 16-byte id, with the counting source
	}{
		{"unroutable", 0, nil, "e0a1a2a3a4a5a6a7a8a9aaabacadaeaf"},                // 0xa0 keeps its low 5 bits: 0x00
		{"unroutable ignores config", 5, nil, "e0a1a2a3a4a5a6a7a8a9aaabacadaeaf"}, // no server id, no config
		{"one byte", 0, []byte{0x03}, "0103a2a3a4a5a6a7a8a9aaabacadaeaf"},
		{"two bytes, config 2", 2, []byte{0xbe, 0xef}, "42beefa3a4a5a6a7a8a9aaabacadaeaf"},
		{"seven bytes, config 6", 6, []byte{1, 2, 3, 4, 5, 6, 7}, "c7010203040506" + "07a8a9aaabacadaeaf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := NewSessionID(c.config, c.serverID, &counting{})
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(id[:]); got != c.want {
				t.Fatalf("id %s, want %s", got, c.want)
			}
			r, ok, err := ParseRoute(&id)
			if err != nil || ok != (c.serverID != nil) {
				t.Fatalf("ParseRoute: ok %v, err %v", ok, err)
			}
			if ok && (int(r.Config) != c.config || !bytes.Equal(r.ServerID, c.serverID) || r.Label() != hex.EncodeToString(c.serverID)) {
				t.Fatalf("route %+v (label %q), want config %d server id %x", r, r.Label(), c.config, c.serverID)
			}
			if nonce := SessionIDSize - 1 - len(c.serverID); nonce < MinNonceSize {
				t.Fatalf("%d random bytes left, at least %d", nonce, MinNonceSize)
			}
		})
	}
}

func TestNewSessionIDRefuses(t *testing.T) {
	cases := []struct {
		name     string
		config   int
		serverID []byte
	}{
		{"server id too long", 0, make([]byte, 8)},
		{"config 7 is unroutable", 7, []byte{1}},
		{"negative config", -1, []byte{1}},
	}
	for _, c := range cases {
		if _, err := NewSessionID(c.config, c.serverID, rand.Reader); !errors.Is(err, ErrBadServerID) {
			t.Errorf("%s: err %v, want ErrBadServerID", c.name, err)
		}
	}
	short := bytes.NewReader(make([]byte, 5))
	if _, err := NewSessionID(0, []byte{1}, short); err == nil {
		t.Error("a source that runs dry gave an id")
	}
}

// TestSessionIDsDiffer: the nonce is random, so two ids of one server differ, in the nonce only.
func TestSessionIDsDiffer(t *testing.T) {
	seen := make(map[SessionID]bool)
	for range 1000 {
		id, err := NewSessionID(1, []byte{0x12, 0x34}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %x drawn twice", id)
		}
		seen[id] = true
		if id[0] != 0x22 || id[1] != 0x12 || id[2] != 0x34 {
			t.Fatalf("id %x: routable prefix not 22 1234", id)
		}
	}
}

func TestParseRouteRejectsBadLengths(t *testing.T) {
	for _, first := range []byte{0x00, 0x08, 0x1f, 0x20, 0xc8, 0xdf} {
		id := SessionID{first}
		if _, ok, err := ParseRoute(&id); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("first octet %#02x: ok %v, err %v; want ErrMalformed", first, ok, err)
		}
	}
	for _, first := range []byte{0xe0, 0xe8, 0xff} {
		id := SessionID{first}
		if _, ok, err := ParseRoute(&id); ok || err != nil {
			t.Errorf("first octet %#02x: ok %v, err %v; want unroutable", first, ok, err)
		}
	}
}

// FuzzParseRoute: any 16 bytes parse without panicking; a routable result re-encodes to the id's
// own prefix, and an id made from it parses back to the same route.
func FuzzParseRoute(f *testing.F) {
	f.Add(make([]byte, SessionIDSize))
	f.Add([]byte("\x01\x03abcdefghijklmn"))
	f.Add([]byte("\xc7\x01\x02\x03\x04\x05\x06\x07abcdefgh"))
	f.Add([]byte("\xffabcdefghijklmno"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != SessionIDSize {
			return
		}
		id := SessionID(b)
		r, ok, err := ParseRoute(&id)
		if err != nil {
			if ok || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ok %v with err %v", ok, err)
			}
			return
		}
		if !ok {
			if id[0]>>RouteConfigShift != RouteUnroutable {
				t.Fatalf("%x: unroutable with config %d", id, id[0]>>RouteConfigShift)
			}
			return
		}
		n := len(r.ServerID)
		if n < MinServerIDSize || n > MaxServerIDSize || r.Config > MaxRouteConfig {
			t.Fatalf("%x: route %+v out of range", id, r)
		}
		again, err := NewSessionID(int(r.Config), r.ServerID, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again[:1+n], id[:1+n]) || !bytes.Equal(again[1+n:], b[1+n:]) {
			t.Fatalf("re-encoded %x from %x", again, id)
		}
		if r2, ok, err := ParseRoute(&again); !ok || err != nil || r2.Config != r.Config || !bytes.Equal(r2.ServerID, r.ServerID) {
			t.Fatalf("round trip: %+v %v %v, want %+v", r2, ok, err, r)
		}
	})
}

func TestLoggedIDSize(t *testing.T) {
	for _, c := range []struct {
		config   int
		serverID []byte
		want     int
	}{
		{0, nil, 8},
		{0, []byte{1}, 8},
		{0, []byte{1, 2}, 9},
		{3, []byte{1, 2, 3, 4, 5, 6, 7}, 14},
	} {
		id, err := NewSessionID(c.config, c.serverID, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := LoggedIDSize(&id); got != c.want || got-1-len(c.serverID) < 6 {
			t.Errorf("server id %x: %d bytes logged, want %d", c.serverID, got, c.want)
		}
	}
	bad := SessionID{0x1f} // routable config, impossible length
	if got := LoggedIDSize(&bad); got != 8 {
		t.Errorf("malformed id: %d bytes logged, want 8", got)
	}
}
