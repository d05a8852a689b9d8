package tunnel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/braidnet/braid/mux"
)

func TestAllowList(t *testing.T) {
	a, err := ParseAllowList("127.0.0.1:22,db.internal:5432", "*.example.com:443 10.0.0.0/8:8000-8099", "[::1]:*", "[fd00::/8]:53")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target  string
		byName  bool
		allowed []string // addresses AllowsAddr must accept (the rest of probe must be refused)
	}{
		{target: "db.internal:5432", byName: true},
		{target: "DB.Internal.:5432", byName: true},
		{target: "db.internal:5433"},
		{target: "www.example.com:443", byName: true},
		{target: "a.b.example.com:443", byName: true},
		{target: "example.com:443"},
		{target: "www.example.com:80"},
		{target: "evilexample.com:443"},
		{target: "127.0.0.1:22", allowed: []string{"127.0.0.1"}},
		{target: "127.0.0.1:23"},
		{target: "10.1.2.3:8050", allowed: []string{"10.1.2.3"}},
		{target: "10.1.2.3:8100"},
		{target: "[::1]:65535", allowed: []string{"::1"}},
		{target: "[fd12::1]:53", allowed: []string{"fd12::1"}},
		{target: "[::ffff:127.0.0.1]:22", allowed: []string{"127.0.0.1"}},
	} {
		tg, err := ParseTarget(c.target)
		if err != nil {
			t.Errorf("%s: %v", c.target, err)
			continue
		}
		if got := a.AllowsName(tg); got != c.byName {
			t.Errorf("%s: AllowsName %v", c.target, got)
		}
		if tg.Name == "" {
			want := len(c.allowed) > 0
			if got := a.AllowsAddr(tg.Addr, tg.Port); got != want {
				t.Errorf("%s: AllowsAddr %v", c.target, got)
			}
		}
	}
	if !a.MayAllowAddr(443) { // [::1]:*
		t.Error("MayAllowAddr(443)")
	}
	names, _ := ParseAllowList("db.internal:5432", "10.0.0.0/8:22")
	if names.MayAllowAddr(5432) || !names.MayAllowAddr(22) {
		t.Error("MayAllowAddr with only a name rule for the port")
	}
	var empty *AllowList
	if empty.AllowsName(Target{Name: "x", Port: 1}) || empty.AllowsAddr(netip.MustParseAddr("127.0.0.1"), 1) || empty.MayAllowAddr(1) {
		t.Error("a nil AllowList allows something")
	}
	any, _ := ParseAllowList("*:443")
	if !any.AllowsName(Target{Name: "anything.org", Port: 443}) || !any.AllowsAddr(netip.MustParseAddr("192.0.2.1"), 443) || any.AllowsAddr(netip.MustParseAddr("192.0.2.1"), 80) {
		t.Error("*:443")
	}
	for _, bad := range []string{"127.0.0.1", "::1:22", "host:0", "host:70000", "host:9-8", "[::1:22", "*.:80", "bad_host!:1", "10.0.0.0/33:1", "[fe80::1%eth0]:1", ":80"} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("rule %q accepted", bad)
		}
	}
}

func TestAllowFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "allow")
	os.WriteFile(name, []byte("# local services\n127.0.0.1:6379   # redis\n\n*.internal:443, 10.0.0.0/8:22\n"), 0o600)
	a := &AllowList{}
	if err := a.AddFile(name); err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 || a.String() != "127.0.0.1:6379,*.internal:443,10.0.0.0/8:22" {
		t.Errorf("rules %q", a.String())
	}
	os.WriteFile(name, []byte("ok:1\nnot a rule\n"), 0o600)
	if err := (&AllowList{}).AddFile(name); err == nil {
		t.Error("bad file accepted")
	}
}

// Dial connects only to addresses the list allows, checking the resolved addresses of names it
// does not allow by name, and connects to the address it checked.
func TestDialerChecksResolvedAddresses(t *testing.T) {
	allow, _ := ParseAllowList("127.0.0.1:1-65535")
	var dialed []string
	d := &Dialer{Allow: allow, LookupNetIP: func(_ context.Context, _, host string) ([]netip.Addr, error) {
		switch host {
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("127.0.0.1")}, nil
		case "outside.test":
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}, DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("test: not dialing")}
	}}
	_, err := d.Dial(context.Background(), "mixed.test:80")
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != mux.CodeFailure || len(dialed) != 1 || dialed[0] != "127.0.0.1:80" {
		t.Errorf("mixed.test: %v, dialed %v", err, dialed)
	}
	dialed = nil
	if _, err := d.Dial(context.Background(), "outside.test:80"); !errors.As(err, &re) || re.Code != mux.CodeNotAllowed || dialed != nil {
		t.Errorf("outside.test: %v, dialed %v", err, dialed)
	}
	if _, err := d.Dial(context.Background(), "missing.test:80"); !errors.As(err, &re) || re.Code != mux.CodeNotFound {
		t.Errorf("missing.test: %v", err)
	}
	// No address rule for port 80 on other hosts: a name is refused without a lookup.
	d.Allow, _ = ParseAllowList("127.0.0.1:22")
	d.LookupNetIP = func(context.Context, string, string) ([]netip.Addr, error) {
		t.Error("looked up a name no rule could allow")
		return nil, errors.New("no")
	}
	if _, err := d.Dial(context.Background(), "mixed.test:80"); !errors.As(err, &re) || re.Code != mux.CodeNotAllowed {
		t.Errorf("port 80: %v", err)
	}
	if _, err := d.Dial(context.Background(), "no port"); !errors.As(err, &re) || re.Code != mux.CodeFailure {
		t.Errorf("bad target: %v", err)
	}
}

func TestParseForwarding(t *testing.T) {
	for _, c := range []struct {
		spec, bind, target string
	}{
		{"8080:example.com:80", "127.0.0.1:8080", "example.com:80"},
		{"0.0.0.0:8080:db:5432", "0.0.0.0:8080", "db:5432"},
		{"*:8080:db:5432", ":8080", "db:5432"},
		{"[::1]:8080:[2001:db8::1]:443", "[::1]:8080", "[2001:db8::1]:443"},
		{"localhost:0:127.0.0.1:22", "localhost:0", "127.0.0.1:22"},
	} {
		f, err := ParseForwarding(c.spec)
		if err != nil || f.Bind != c.bind || f.Target != c.target {
			t.Errorf("%s: %+v, %v", c.spec, f, err)
		}
	}
	for _, bad := range []string{"8080", "8080:host", "x:host:80", "8080:host:x", "8080::80", "a:b:c:d:e", "[::1:80:h:1"} {
		if f, err := ParseForwarding(bad); err == nil {
			t.Errorf("%q accepted: %+v", bad, f)
		}
	}
	for _, c := range []struct{ spec, bind string }{{"1080", "127.0.0.1:1080"}, {"*:1080", ":1080"}, {"[::]:1080", "[::]:1080"}} {
		if b, err := ParseDynamic(c.spec); err != nil || b != c.bind {
			t.Errorf("-D %s: %q, %v", c.spec, b, err)
		}
	}
	for _, bad := range []string{"", "x", "a:b:c", "70000"} {
		if _, err := ParseDynamic(bad); err == nil {
			t.Errorf("-D %q accepted", bad)
		}
	}
}
