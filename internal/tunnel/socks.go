package tunnel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/braidnet/braid/mux"
)

// SOCKS5 (RFC 1928) and its username/password authentication (RFC 1929): the values used here.
const (
	socksVersion      = 5
	socksAuthVersion  = 1
	socksNoAuth       = 0x00
	socksUserPass     = 0x02
	socksNoAcceptable = 0xFF
	socksConnect      = 0x01
	socksIPv4         = 0x01
	socksDomain       = 0x03
	socksIPv6         = 0x04
)

// SOCKS reply codes (RFC 1928 section 6).
const (
	SOCKSSucceeded          = 0x00
	SOCKSGeneralFailure     = 0x01
	SOCKSNotAllowed         = 0x02
	SOCKSNetworkUnreachable = 0x03
	SOCKSHostUnreachable    = 0x04
	SOCKSConnectionRefused  = 0x05
	SOCKSTTLExpired         = 0x06
	SOCKSCommandUnsupported = 0x07
	SOCKSAddressUnsupported = 0x08
)

// socksHandshakeTimeout bounds a SOCKS client's greeting, authentication and request.
const socksHandshakeTimeout = 30 * time.Second

// SOCKSUsers holds the username/password pairs a SOCKS listener accepts (RFC 1929). Passwords
// are kept as SHA-256 digests and compared in constant time.
type SOCKSUsers map[string][sha256.Size]byte

// ParseSOCKSUsers reads user:password lines (blank lines and # comments skipped).
func ParseSOCKSUsers(r io.Reader) (SOCKSUsers, error) {
	users := SOCKSUsers{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || len(user) > 255 || len(pass) > 255 {
			return nil, fmt.Errorf("line %d: want user:password (each at most 255 bytes)", n)
		}
		users[user] = sha256.Sum256([]byte(pass))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errors.New("no user:password line")
	}
	return users, nil
}

// LoadSOCKSUsers reads a ParseSOCKSUsers file.
func LoadSOCKSUsers(name string) (SOCKSUsers, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users, err := ParseSOCKSUsers(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return users, nil
}

func (u SOCKSUsers) check(user, pass string) bool {
	want, ok := u[user]
	got := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1 && ok
}

// SOCKS serves SOCKS5 on ln until ctx ends or ln fails: CONNECT requests only, for IPv4, IPv6
// and domain-name targets; a name is sent to the server as it is, and resolved there. With
// users, clients must authenticate by username and password; without, no authentication is
// asked. A refusal by the server is answered with the SOCKS reply code for its cause
// (SOCKSReply).
func (cl *Client) SOCKS(ctx context.Context, ln net.Listener, users SOCKSUsers) error {
	return cl.serve(ctx, ln, func(ctx context.Context, c net.Conn) {
		if st := cl.socksOpen(ctx, c, users, ln.Addr()); st != nil {
			Pipe(st, c)
		}
	})
}

// socksOpen runs the SOCKS handshake on c and opens its stream, answering the client; nil if
// it fails. Not inlined: see Server.connect.
//
//go:noinline
func (cl *Client) socksOpen(ctx context.Context, c net.Conn, users SOCKSUsers, local net.Addr) *mux.Stream {
	c.SetDeadline(time.Now().Add(socksHandshakeTimeout))
	target, err := socksHandshake(c, users)
	if err != nil {
		cl.log().Debug("tunnel: SOCKS handshake failed", "from", c.RemoteAddr(), "err", err)
		return nil
	}
	st, err := cl.Open(ctx, target)
	if err != nil {
		cl.log().Warn("tunnel: connection refused by the server", "local", local, "from", c.RemoteAddr(), "target", target, "err", err)
		c.Write(socksReply(SOCKSReply(err)))
		return nil
	}
	if _, err := c.Write(socksReply(SOCKSSucceeded)); err != nil {
		st.Reset(mux.CodeReset, "the SOCKS client went away")
		st.Close()
		return nil
	}
	c.SetDeadline(time.Time{})
	cl.log().Debug("tunnel: stream opened", "stream", st.ID(), "target", target, "from", c.RemoteAddr())
	return st
}

// SOCKSReply maps an Open error to the SOCKS reply code that reports it.
func SOCKSReply(err error) byte {
	var oe *mux.OpenError
	if !errors.As(err, &oe) {
		return SOCKSGeneralFailure
	}
	switch oe.Code {
	case mux.CodeNotAllowed:
		return SOCKSNotAllowed
	case mux.CodeNetUnreachable:
		return SOCKSNetworkUnreachable
	case mux.CodeHostUnreachable, mux.CodeNotFound:
		return SOCKSHostUnreachable
	case mux.CodeRefused:
		return SOCKSConnectionRefused
	case mux.CodeTimeout:
		return SOCKSTTLExpired
	}
	return SOCKSGeneralFailure
}

// socksReply is a reply with the zero IPv4 address and port as BND (the server's own address is
// not known here; clients of CONNECT do not use it).
func socksReply(code byte) []byte {
	return []byte{socksVersion, code, 0, socksIPv4, 0, 0, 0, 0, 0, 0}
}

// socksHandshake reads a client's greeting, authenticates it, reads its request and returns the
// target as host:port. Requests it cannot serve are answered with their reply code.
func socksHandshake(c net.Conn, users SOCKSUsers) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", err
	}
	if hdr[0] != socksVersion {
		return "", fmt.Errorf("SOCKS version %d, want 5", hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return "", err
	}
	want := byte(socksNoAuth)
	if users != nil {
		want = socksUserPass
	}
	if !slices.Contains(methods, want) {
		c.Write([]byte{socksVersion, socksNoAcceptable})
		return "", fmt.Errorf("client offers methods %v, not %d", methods, want)
	}
	if _, err := c.Write([]byte{socksVersion, want}); err != nil {
		return "", err
	}
	if users != nil {
		if err := socksAuth(c, users); err != nil {
			return "", err
		}
	}
	var req [4]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return "", err
	}
	if req[0] != socksVersion {
		return "", fmt.Errorf("request version %d", req[0])
	}
	var host string
	switch req[3] {
	case socksIPv4, socksIPv6:
		b := make([]byte, 4)
		if req[3] == socksIPv6 {
			b = make([]byte, 16)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return "", err
		}
		ip, _ := netip.AddrFromSlice(b)
		host = ip.String()
	case socksDomain:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return "", err
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return "", err
		}
		host = string(name)
	default:
		c.Write(socksReply(SOCKSAddressUnsupported))
		return "", fmt.Errorf("address type %d", req[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(c, port[:]); err != nil {
		return "", err
	}
	if req[1] != socksConnect {
		c.Write(socksReply(SOCKSCommandUnsupported))
		return "", fmt.Errorf("command %d (only CONNECT is supported)", req[1])
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}

// socksAuth runs RFC 1929's username/password exchange.
func socksAuth(c net.Conn, users SOCKSUsers) error {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	if hdr[0] != socksAuthVersion {
		return fmt.Errorf("authentication version %d", hdr[0])
	}
	user := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, user); err != nil {
		return err
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return err
	}
	pass := make([]byte, n[0])
	if _, err := io.ReadFull(c, pass); err != nil {
		return err
	}
	if !users.check(string(user), string(pass)) {
		c.Write([]byte{socksAuthVersion, 1})
		return fmt.Errorf("bad username or password for %q", user)
	}
	_, err := c.Write([]byte{socksAuthVersion, 0})
	return err
}
