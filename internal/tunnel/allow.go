package tunnel

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// AllowList is a tunnel server's policy: which targets a client may have it connect to. It
// allows nothing unless a rule says so. The zero value (and nil) allows nothing.
//
// A rule is HOST:PORTS.
//
//	HOST   db.internal         that name (case-insensitive), and only when the client asks for it by name
//	       *.example.com       any name under example.com (not example.com itself)
//	       192.0.2.10  [::1]   that address (IPv6 in brackets)
//	       10.0.0.0/8  [fd00::/8]  any address in that network
//	       *                   any host: an open proxy on PORTS, so say it only on purpose
//	PORTS  443  8000-8099  *   one port, a range, or any
//
// A target asked for by name is allowed if a name rule matches it; then the server connects to
// whatever the name resolves to. Otherwise the server resolves it and keeps only the addresses an
// address rule allows, and connects to one of those (the address it checked, so a name that
// resolves differently the next time cannot slip past). A target asked for by address is allowed
// only by an address rule: 127.0.0.1:22 does not match a rule for localhost:22, but localhost:22
// matches a rule for 127.0.0.1:22.
type AllowList struct {
	rules []rule
}

type rule struct {
	any    bool         // host "*"
	name   string       // exact name, lower case, no trailing dot
	suffix string       // "*.example.com" as ".example.com"
	prefix netip.Prefix // an address is a /32 or /128 prefix
	lo, hi uint16       // ports, inclusive
	text   string       // as written, for messages
}

// ParseAllowList reads rules separated by commas or white space (each flag value may hold
// several).
func ParseAllowList(specs ...string) (*AllowList, error) {
	a := &AllowList{}
	for _, spec := range specs {
		if err := a.Add(spec); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Add adds the rules in spec (separated by commas or white space).
func (a *AllowList) Add(spec string) error {
	for _, f := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		r, err := parseRule(f)
		if err != nil {
			return err
		}
		a.rules = append(a.rules, r)
	}
	return nil
}

// AddFile adds the rules of a file: one or more per line, # starts a comment.
func (a *AllowList) AddFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if err := a.Add(line); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	return sc.Err()
}

// Len returns the number of rules.
func (a *AllowList) Len() int {
	if a == nil {
		return 0
	}
	return len(a.rules)
}

// String lists the rules as given, separated by commas.
func (a *AllowList) String() string {
	if a == nil {
		return ""
	}
	parts := make([]string, len(a.rules))
	for i, r := range a.rules {
		parts[i] = r.text
	}
	return strings.Join(parts, ",")
}

// AnyHost returns the rules whose host is *: each makes the server an open proxy on its ports.
func (a *AllowList) AnyHost() []string {
	var out []string
	if a != nil {
		for _, r := range a.rules {
			if r.any {
				out = append(out, r.text)
			}
		}
	}
	return out
}

func parseRule(s string) (rule, error) {
	r := rule{text: s}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.HasSuffix(s[:i], ":") || (strings.Contains(s[:i], ":") && !strings.HasPrefix(s, "[")) {
		return r, fmt.Errorf("allow rule %q: want HOST:PORTS (IPv6 in brackets), e.g. 127.0.0.1:22, *.example.com:443, 10.0.0.0/8:*", s)
	}
	host, ports := s[:i], s[i+1:]
	var err error
	if r.lo, r.hi, err = parsePorts(ports); err != nil {
		return r, fmt.Errorf("allow rule %q: %w", s, err)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return r, fmt.Errorf("allow rule %q: unbalanced brackets", s)
		}
		host = host[1 : len(host)-1]
	}
	switch {
	case host == "*":
		r.any = true
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return r, fmt.Errorf("allow rule %q: %w", s, err)
		}
		r.prefix = p.Masked()
	case isIPLiteral(host):
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.Zone() != "" {
			return r, fmt.Errorf("allow rule %q: bad address %q", s, host)
		}
		r.prefix = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
	case strings.HasPrefix(host, "*."):
		name, ok := normalName(host[2:])
		if !ok {
			return r, fmt.Errorf("allow rule %q: bad domain %q", s, host[2:])
		}
		r.suffix = "." + name
	default:
		name, ok := normalName(host)
		if !ok {
			return r, fmt.Errorf("allow rule %q: bad host name %q", s, host)
		}
		r.name = name
	}
	return r, nil
}

func isIPLiteral(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil || strings.Contains(s, ":")
}

func parsePorts(s string) (lo, hi uint16, err error) {
	if s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	p, err := parsePort(a)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return p, p, nil
	}
	q, err := parsePort(b)
	if err != nil {
		return 0, 0, err
	}
	if q < p {
		return 0, 0, fmt.Errorf("port range %s is empty", s)
	}
	return p, q, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q (1-65535, a range A-B, or *)", s)
	}
	return uint16(n), nil
}

// normalName lower-cases a DNS name and drops a trailing dot; ok is false for anything that is
// not a plausible name (labels of letters, digits, hyphens and underscores, at most 253 bytes).
func normalName(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if s == "" || len(s) > 253 {
		return "", false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s, true
}

func (r rule) port(p uint16) bool { return p >= r.lo && p <= r.hi }

// Target is a parsed "host:port" as a client asked for it.
type Target struct {
	Name string     // the host name, normalised, if it was given by name
	Addr netip.Addr // the address, if it was given by address
	Port uint16     // the port
}

// String returns the target as host:port.
func (t Target) String() string {
	if t.Name != "" {
		return net.JoinHostPort(t.Name, strconv.Itoa(int(t.Port)))
	}
	return netip.AddrPortFrom(t.Addr, t.Port).String()
}

// ParseTarget reads "host:port" (IPv6 in brackets).
func ParseTarget(s string) (Target, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	p, err := parsePort(port)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", s, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Target{}, fmt.Errorf("target %q: zoned addresses are not accepted", s)
		}
		return Target{Addr: ip.Unmap(), Port: p}, nil
	}
	name, ok := normalName(host)
	if !ok {
		return Target{}, fmt.Errorf("target %q: bad host name", s)
	}
	return Target{Name: name, Port: p}, nil
}

// AllowsName reports whether a name rule (or *) allows t, a target given by name: then the
// server may connect to whatever it resolves to.
func (a *AllowList) AllowsName(t Target) bool {
	if a == nil || t.Name == "" {
		return false
	}
	for _, r := range a.rules {
		if !r.port(t.Port) {
			continue
		}
		if r.any || r.name == t.Name || r.suffix != "" && strings.HasSuffix(t.Name, r.suffix) {
			return true
		}
	}
	return false
}

// AllowsAddr reports whether an address rule (or *) allows connecting to ip:port.
func (a *AllowList) AllowsAddr(ip netip.Addr, port uint16) bool {
	if a == nil {
		return false
	}
	ip = ip.Unmap()
	for _, r := range a.rules {
		if r.port(port) && (r.any || r.prefix.IsValid() && r.prefix.Contains(ip)) {
			return true
		}
	}
	return false
}

// MayAllowAddr reports whether any address rule could allow some address on port: if not, a
// name need not even be resolved to be refused.
func (a *AllowList) MayAllowAddr(port uint16) bool {
	if a == nil {
		return false
	}
	for _, r := range a.rules {
		if r.port(port) && (r.any || r.prefix.IsValid()) {
			return true
		}
	}
	return false
}
