package wire

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Routable session ids (docs/PROTOCOL.md 5.2.1), modelled on QUIC-LB's routable connection ids
// (draft-ietf-quic-load-balancers): the first octet says how the id is laid out, a server id
// names the server that holds the session, and a random nonce fills the rest, so that a load
// balancer (or a client naming the server in its TLS SNI) can send every path of a session to
// the same server without any state shared between servers.
//
//	octet 0:   | config (3 bits) | server id length (5 bits) |
//	octets 1…: | server id (1–7 bytes) | nonce (the rest, 8–14 bytes) |
//
// Config 7 (RouteUnroutable) marks an id that names no server: its other 125 bits are random.
const (
	// RouteConfigShift is where the 3 config bits sit in the first octet.
	RouteConfigShift = 5
	// RouteLengthMask selects the server id length from the first octet.
	RouteLengthMask = 0x1f
	// MaxRouteConfig is the largest config codepoint of a routable id (0–6).
	MaxRouteConfig = 6
	// RouteUnroutable is the config codepoint of an id that carries no server id.
	RouteUnroutable = 7
	// MinServerIDSize and MaxServerIDSize bound a server id in bytes.
	MinServerIDSize = 1
	MaxServerIDSize = 7
	// MinNonceSize is the fewest random bytes a routable id keeps: 64 bits, so that ids stay
	// unguessable whatever the server id (attaching still needs the proof, 6.3).
	MinNonceSize = SessionIDSize - 1 - MaxServerIDSize
)

// ErrBadServerID reports a server id, or its config codepoint, that no routable id can carry.
var ErrBadServerID = errors.New("wire: bad server id")

// Route is the routable part of a session id.
type Route struct {
	Config   uint8  // config rotation codepoint, 0–MaxRouteConfig
	ServerID []byte // MinServerIDSize to MaxServerIDSize bytes
}

// Label is the server id as a DNS label: lowercase hex, two digits per byte.
func (r Route) Label() string { return hex.EncodeToString(r.ServerID) }

// CheckRoute reports whether config and serverID make a valid routable layout; a nil serverID
// (no routing) is valid with any config, which it ignores.
func CheckRoute(config int, serverID []byte) error {
	switch {
	case len(serverID) == 0:
		return nil
	case len(serverID) > MaxServerIDSize:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadServerID, len(serverID), MaxServerIDSize)
	case config < 0 || config > MaxRouteConfig:
		return fmt.Errorf("%w: config %d outside 0..%d", ErrBadServerID, config, MaxRouteConfig)
	}
	return nil
}

// NewSessionID draws a session id from rnd (crypto/rand.Reader outside tests). With a server id
// it is routable: config, the server id, then random bytes; without one it is unroutable (config
// 7) and random apart from those three bits.
func NewSessionID(config int, serverID []byte, rnd io.Reader) (SessionID, error) {
	var id SessionID
	if err := CheckRoute(config, serverID); err != nil {
		return id, err
	}
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return id, fmt.Errorf("wire: drawing a session id: %w", err)
	}
	if len(serverID) == 0 {
		id[0] = RouteUnroutable<<RouteConfigShift | id[0]&RouteLengthMask
		return id, nil
	}
	id[0] = byte(config)<<RouteConfigShift | byte(len(serverID))
	copy(id[1:], serverID)
	return id, nil
}

// ParseRoute returns the routable part of id. ok is false for an unroutable id (config 7); an
// id whose first octet names an impossible server id length (0, or more than MaxServerIDSize)
// is an error matching ErrMalformed. ServerID aliases id.
func ParseRoute(id *SessionID) (r Route, ok bool, err error) {
	config := id[0] >> RouteConfigShift
	if config == RouteUnroutable {
		return Route{}, false, nil
	}
	n := int(id[0] & RouteLengthMask)
	if n < MinServerIDSize || n > MaxServerIDSize {
		return Route{}, false, fmt.Errorf("%w: session id names a %d-byte server id (config %d)", ErrMalformed, n, config)
	}
	return Route{Config: config, ServerID: id[1 : 1+n]}, true, nil
}

// logNonce is how many nonce bytes the logged form of an id keeps: 48 random bits tell a
// server's sessions apart in logs and metric labels.
const logNonce = 6

// LoggedIDSize is how many leading bytes of id its logged form shows: 8, or for a routable id
// with a server id of more than one byte, the routable part and logNonce bytes of its nonce
// (at most 14), so that the sessions of one server never share a logged id.
func LoggedIDSize(id *SessionID) int {
	r, ok, err := ParseRoute(id)
	if !ok || err != nil {
		return 8
	}
	return max(8, 1+len(r.ServerID)+logNonce)
}
