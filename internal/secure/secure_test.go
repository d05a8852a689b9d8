package secure

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestFingerprintForms(t *testing.T) {
	cert, err := SelfSigned("127.0.0.1", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(cert.Leaf)
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
		t.Fatalf("fingerprint %q", fp)
	}
	if got, _ := CertFingerprint(cert); got != fp {
		t.Fatalf("CertFingerprint %q, Fingerprint %q", got, fp)
	}
	body := strings.TrimPrefix(fp, "SHA256:")
	for _, in := range []string{fp, "sha256:" + body, body, " " + fp + "\n", fp + "="} {
		if got, err := ParseFingerprint(in); err != nil || got != fp {
			t.Errorf("ParseFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "SHA256:", "SHA256:" + body[:40], "MD5:" + body, "SHA256:" + body + "AAAA", "SHA256:!!!"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
	if cert.Leaf.IPAddresses[0].String() != "127.0.0.1" || cert.Leaf.DNSNames[0] != "example.test" {
		t.Fatalf("names: %v %v", cert.Leaf.IPAddresses, cert.Leaf.DNSNames)
	}
}

// FuzzParseFingerprint: whatever it accepts it returns in the canonical form, which parses to
// itself.
func FuzzParseFingerprint(f *testing.F) {
	f.Add("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
	f.Add("sha256:x")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if again, err := ParseFingerprint(fp); err != nil || again != fp {
			t.Fatalf("%q → %q → %q, %v", s, fp, again, err)
		}
	})
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "id")
	a, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	if st, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	b, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("second: created %v, %v", created, err)
	}
	fa, _ := CertFingerprint(a)
	fb, _ := CertFingerprint(b)
	if fa != fb {
		t.Fatalf("identity changed across loads: %s, %s", fa, fb)
	}
	os.Remove(filepath.Join(dir, CertFile))
	if _, _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("key without certificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal("the lone key was removed or overwritten")
	}
}

func TestKnownHosts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "known_hosts")
	var added []string
	kh := &KnownHosts{File: file, Added: func(a, fp string) { added = append(added, a) }}
	a, _ := SelfSigned()
	b, _ := SelfSigned()
	fa, fb := Fingerprint(a.Leaf), Fingerprint(b.Leaf)
	if err := kh.Verify("h:1", fa); err != nil {
		t.Fatal(err)
	}
	if err := kh.Verify("h:1", fa); err != nil {
		t.Fatal(err)
	}
	if err := kh.Verify("h:2", fb); err != nil {
		t.Fatal(err)
	}
	err := kh.Verify("h:1", fb)
	if !errors.Is(err, ErrIdentityChanged) || !strings.Contains(err.Error(), file+":1") {
		t.Fatalf("changed key: %v", err)
	}
	if len(added) != 2 {
		t.Fatalf("added %v, want h:1 and h:2 once each", added)
	}
	// Many paths verifying at once record the address once.
	kh2 := &KnownHosts{File: filepath.Join(t.TempDir(), "kh")}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); kh2.Verify("h:3", fa) }()
	}
	wg.Wait()
	if data, _ := os.ReadFile(kh2.File); strings.Count(string(data), "\n") != 1 {
		t.Fatalf("concurrent first use wrote %q", data)
	}
	os.WriteFile(kh2.File, []byte("# comment\nh:4 not-a-fingerprint\n"), 0o600)
	if err := kh2.Verify("h:4", fa); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("malformed line: %v", err)
	}
}

func TestProof(t *testing.T) {
	key, id, binding := make([]byte, 32), make([]byte, 16), make([]byte, 32)
	rand.Read(key)
	rand.Read(id)
	rand.Read(binding)
	p := Proof(key, id, 3, binding)
	if !CheckProof(p[:], key, id, 3, binding) {
		t.Fatal("a proof does not check")
	}
	flip := func(b []byte) []byte { c := append([]byte(nil), b...); c[0] ^= 1; return c }
	for name, ok := range map[string]bool{
		"other key":     CheckProof(p[:], flip(key), id, 3, binding),
		"other session": CheckProof(p[:], key, flip(id), 3, binding),
		"other slot":    CheckProof(p[:], key, id, 4, binding),
		"other conn":    CheckProof(p[:], key, id, 3, flip(binding)),
		"no binding":    CheckProof(p[:], key, id, 3, nil),
		"short proof":   CheckProof(p[:16], key, id, 3, binding),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCheckAndConfigs(t *testing.T) {
	ok := tls.ConnectionState{Version: tls.VersionTLS13, NegotiatedProtocol: ALPN, CurveID: tls.X25519MLKEM768}
	if err := Check(ok, true); err != nil {
		t.Fatal(err)
	}
	for name, cs := range map[string]tls.ConnectionState{
		"TLS 1.2":   {Version: tls.VersionTLS12, NegotiatedProtocol: ALPN, CurveID: tls.X25519MLKEM768},
		"no ALPN":   {Version: tls.VersionTLS13, CurveID: tls.X25519MLKEM768},
		"classical": {Version: tls.VersionTLS13, NegotiatedProtocol: ALPN, CurveID: tls.X25519},
	} {
		if err := Check(cs, true); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := Check(tls.ConnectionState{Version: tls.VersionTLS13, NegotiatedProtocol: ALPN, CurveID: tls.X25519}, false); err != nil {
		t.Errorf("classical without the requirement: %v", err)
	}
	base := &tls.Config{ServerName: "keep", MinVersion: tls.VersionTLS10}
	c, err := ClientConfig(Options{Base: base, RequirePQ: true}, "10.0.0.1:7878")
	if err != nil || c.MinVersion != tls.VersionTLS13 || c.ServerName != "keep" || len(c.CurvePreferences) != 1 || base.MinVersion != tls.VersionTLS10 {
		t.Fatalf("client config %+v, %v (base changed: %v)", c, err, base.MinVersion != tls.VersionTLS10)
	}
	if c, _ := ClientConfig(Options{}, "10.0.0.1:7878"); c.ServerName != "10.0.0.1" || c.InsecureSkipVerify {
		t.Fatalf("default client verifies the address's host: %q %v", c.ServerName, c.InsecureSkipVerify)
	}
	if _, err := ClientConfig(Options{ServerFingerprint: "nope"}, "x:1"); err == nil {
		t.Fatal("a malformed pin accepted")
	}
	cert, _ := SelfSigned()
	s, err := ServerConfig(Options{AuthorizedClients: []string{Fingerprint(cert.Leaf)}}, cert)
	if err != nil || s.ClientAuth != tls.RequestClientCert || !s.SessionTicketsDisabled || len(s.Certificates) != 1 {
		t.Fatalf("server config %+v, %v", s, err)
	}
}

// TestConstantsPinned ties the code to docs/PROTOCOL.md, section 6: changing any value here is
// a wire change.
func TestConstantsPinned(t *testing.T) {
	for _, c := range []struct{ name, got, want string }{
		{"ALPN", ALPN, "braid/2"},
		{"SessionKeyLabel", SessionKeyLabel, "EXPORTER-braid-session-key"},
		{"BindingLabel", BindingLabel, "EXPORTER-braid-path-binding"},
		{"fingerprintPrefix", fingerprintPrefix, "SHA256:"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if ExportSize != 32 || ProofSize != 32 || PostQuantum != tls.X25519MLKEM768 {
		t.Errorf("ExportSize %d, ProofSize %d, PostQuantum %v", ExportSize, ProofSize, PostQuantum)
	}
	// The proof's layout: HMAC-SHA256 over the label, id, slot and binding, in that order.
	key, id, binding := []byte("k"), []byte("0123456789abcdef"), []byte("b")
	m := hmac.New(sha256.New, key)
	m.Write([]byte("braid attach v2\x00"))
	m.Write(id)
	m.Write([]byte{0x01, 0x02})
	m.Write(binding)
	if p := Proof(key, id, 0x0102, binding); !hmac.Equal(p[:], m.Sum(nil)) {
		t.Error("Proof does not follow the documented layout")
	}
}

// TestRouteName: the routing label goes before the name a path would send anyway; an IP
// address, no name at all, or a name too long for the label falls back to RouteDomain.
func TestRouteName(t *testing.T) {
	long := strings.Repeat("a", 251) // "ff." + 251 bytes: 254, one beyond a DNS name
	for _, c := range []struct {
		label, serverName, addr, want string
	}{
		{"01", "", "127.0.0.1:7878", "01.braid.invalid"},
		{"01", "", "[::1]:7878", "01.braid.invalid"},
		{"0a0b", "", "lb.example.net:443", "0a0b.lb.example.net"},
		{"0a0b", "braid.example.com", "10.1.2.3:7878", "0a0b.braid.example.com"},
		{"0a0b", "braid.example.com.", "", "0a0b.braid.example.com"},
		{"ff", "10.0.0.1", "10.0.0.1:7878", "ff.braid.invalid"},
		{"ff", "", "", "ff.braid.invalid"},
		{"ff", long, "", "ff.braid.invalid"},
	} {
		if got := RouteName(c.label, c.serverName, c.addr); got != c.want {
			t.Errorf("RouteName(%q, %q, %q) = %q, want %q", c.label, c.serverName, c.addr, got, c.want)
		}
	}
}

func TestLooksLikeTLS(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x16, 0x03, 0x01, 0x02, 0x00}, true}, // a ClientHello's record header
		{[]byte{0x16, 0x03, 0x03}, true},
		{[]byte{0x00, 0x00, 0x00, 0x10, 0x01}, false}, // a frame header
		{[]byte{0x16, 0x02, 0x00}, false},
		{[]byte{0x16}, false},
	} {
		if got := LooksLikeTLS(tc.b); got != tc.want {
			t.Errorf("LooksLikeTLS(% x) = %v", tc.b, got)
		}
	}
}
