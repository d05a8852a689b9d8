package session

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"github.com/braidnet/braid/internal/disperse"
	"github.com/braidnet/braid/internal/reasm"
	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// The server's sessions: the table the Listener's connections open and attach to (the session
// handshake of SESSION_NEW and SESSION_ATTACH), the memory budget windows are granted from, and
// the per-address limit on sessions not yet established.

// sessionTable is a server's sessions, by id.
type sessionTable struct {
	cfg        *Config
	counters   *listenerCounters // the Listener's
	hooks      *testHooks        // for each session; nil outside tests
	mu         sync.Mutex
	byID       map[wire.SessionID]*Session
	pendingIP  map[string]int // sessions not yet established, by source address
	memLimit   int64          // the memory budget for receive windows (memoryBudget)
	memGranted int64          // the windows granted to sessions held
	accept     chan *Session
	closed     chan struct{}
	isClosed   bool
}

// shut stops new sessions and returns the existing ones.
func (t *sessionTable) shut() []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.isClosed {
		t.isClosed = true
		close(t.closed)
	}
	var all []*Session
	for _, s := range t.byID {
		all = append(all, s)
	}
	return all
}

// errPathEnded ends a connection handler whose connection served as a session path.
var errPathEnded = errors.New("session path ended")

// handshake handles a connection whose first frame is SESSION_NEW or SESSION_ATTACH. On success
// the connection becomes a path and this call runs its reader until the path ends or the reader
// dozes; it returns errPathEnded, and done is called when the path has ended (by this call, or
// later by the goroutine that ran the dozing reader on). Otherwise done is not called.
func (t *sessionTable) handshake(sc *handshakeConn, markPath, done func()) error {
	f, err := sc.r.ReadFrame()
	if err != nil {
		if isTimeout(err) {
			err = fmt.Errorf("%w: no handshake within %v", ErrTimeout, t.cfg.HandshakeTimeout)
		}
		return t.refuse(sc, f.Type, err)
	}
	var (
		s         *Session
		idx, slot int
	)
	if f.Type == wire.TypeSessionNew {
		s, err = t.open(sc, f.Payload)
	} else {
		s, idx, slot, err = t.attach(sc, f.Payload)
	}
	if err != nil {
		return t.refuse(sc, f.Type, err)
	}
	if h := t.hooks; h != nil && h.attaching != nil && f.Type == wire.TypeSessionAttach {
		h.attaching(slot)
	}
	markPath()
	p := newPath(s, idx, slot, PathSpec{}, sc.c, sc.r, sc.w)
	p.reserved = true
	p.kex = sc.sec.kex
	if err := s.addPath(p); err != nil {
		s.unreserve(slot)
		if f.Type == wire.TypeSessionNew {
			s.end(err)
		}
		return t.refuse(sc, f.Type, err)
	}
	sc.c.SetDeadline(noDeadline)
	if f.Type == wire.TypeSessionNew {
		t.offer(s)
	}
	s.readPath(p, done)
	return errPathEnded
}

// refuse tells the peer why its handshake (a frame of type t) is refused, counts it by its code
// (and as a refused session if it was SESSION_NEW), and returns cause.
func (t *sessionTable) refuse(sc *handshakeConn, typ wire.Type, cause error) error {
	t.counters.refuse(codeFor(cause))
	if typ == wire.TypeSessionNew {
		t.counters.refused.Add(1)
	}
	return sc.fail(cause)
}

// open creates a session from a SESSION_NEW payload and answers SESSION_ACCEPT.
func (t *sessionTable) open(sc *handshakeConn, payload []byte) (*Session, error) {
	m, err := wire.ParseSessionNew(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	cs := int(m.ChunkSize)
	mode, modeErr := disperse.FromWire(m.Mode, m.K, m.N)
	switch {
	case m.Version != wire.ProtocolVersion:
		return nil, fmt.Errorf("%w: version %d, this server speaks %d", ErrBadOptions, m.Version, wire.ProtocolVersion)
	case modeErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, modeErr)
	case mode.N > t.cfg.MaxPaths:
		return nil, fmt.Errorf("%w: mode %s needs %d paths, this server allows %d", ErrBadOptions, mode, mode.N, t.cfg.MaxPaths)
	case mode.Coded() && cs >= MinChunkSize && cs <= MaxChunkSize && wire.PieceHeaderSize+mode.PieceSize(cs) > t.cfg.MaxFrameSize:
		return nil, fmt.Errorf("%w: pieces of %d-byte chunks exceed the frame limit %d", ErrBadOptions, cs, t.cfg.MaxFrameSize)
	case cs < MinChunkSize || cs > MaxChunkSize || cs+wire.ChunkHeaderSize > t.cfg.MaxFrameSize:
		return nil, fmt.Errorf("%w: chunk size %d outside %d..%d", ErrBadOptions, cs, MinChunkSize, min(MaxChunkSize, t.cfg.MaxFrameSize-wire.ChunkHeaderSize))
	case m.Window < uint64(2*reasm.Charge(1, mode.ChunkCharge(cs))):
		return nil, fmt.Errorf("%w: window %d below two chunks", ErrBadOptions, m.Window)
	case t.cfg.requiresClientAuth() && !sc.sec.clientCert &&
		(t.cfg.Token == "" || subtle.ConstantTimeCompare(m.Token, []byte(t.cfg.Token)) != 1):
		return nil, fmt.Errorf("%w: no trusted client certificate or token", ErrUnauthorized)
	}
	var terms sessionTerms
	// Routable if the server has an id (PROTOCOL.md 5.2.1); Validate checked its layout.
	if terms.id, err = wire.NewSessionID(t.cfg.ServerIDConfig, t.cfg.ServerID, rand.Reader); err != nil {
		return nil, err
	}
	rand.Read(terms.token[:])
	terms.key = sc.sec.key // nil without TLS: the token keys attach proofs
	terms.chunkSize, terms.peerWindow, terms.mode = cs, int64(min(m.Window, 1<<62)), mode
	grant, err := t.grantWindow(2 * reasm.Charge(1, mode.ChunkCharge(cs)))
	if err != nil {
		return nil, err
	}
	terms.window = grant
	s, err := newSession(t.cfg, terms)
	if err != nil {
		t.returnWindow(grant)
		return nil, err
	}
	claim := &pendingClaim{t: t, ip: remoteIP(sc.c)}
	s.onEstablished = claim.release
	s.onEnd = func() {
		claim.release()
		t.returnWindow(grant)
		t.remove(s)
	}
	s.hooks = t.hooks
	s.onViolation = t.counters.refuse
	if err := t.register(sc, s, cs, claim); err != nil {
		s.end(err) // stops its monitor and forgets it
		return nil, err
	}
	t.counters.opened.Add(1)
	s.log.Info("session opened", "remote", sc.c.RemoteAddr().String(), "chunk_size", cs, "mode", mode.String(), "key_exchange", sc.sec.kex)
	return s, nil
}

// register makes a new session attachable and answers SESSION_ACCEPT.
func (t *sessionTable) register(sc *handshakeConn, s *Session, cs int, claim *pendingClaim) error {
	if _, err := s.reserveIndex(1, 0); err != nil { // index 0, slot 0: this connection's
		return err
	}
	// Register before answering: the client attaches its other paths as soon as it reads
	// SESSION_ACCEPT. Nobody can attach earlier, since only the answer reveals id and token.
	t.mu.Lock()
	switch {
	case t.isClosed:
		t.mu.Unlock()
		return fmt.Errorf("%w: server shutting down", ErrShuttingDown)
	case len(t.byID) >= t.cfg.MaxSessions:
		t.mu.Unlock()
		return fmt.Errorf("%w: %d sessions", ErrTooManySessions, t.cfg.MaxSessions)
	case t.pendingIP[claim.ip] >= t.cfg.MaxPendingSessionsPerIP:
		n := t.pendingIP[claim.ip]
		t.mu.Unlock()
		return fmt.Errorf("%w: %d sessions from %s not yet established, MaxPendingSessionsPerIP %d", ErrTooManySessions, n, claim.ip, t.cfg.MaxPendingSessionsPerIP)
	}
	t.byID[s.id] = s
	t.pendingIP[claim.ip]++
	claim.counted = true
	t.mu.Unlock()
	acc := wire.AppendSessionAccept(nil, wire.SessionAccept{ID: s.id, Token: s.token, PathIndex: 0,
		MaxPaths: uint16(t.cfg.MaxPaths), ChunkSize: uint32(cs), Window: uint64(s.window)})
	return sc.writeNow(wire.TypeSessionAccept, acc)
}

// grantWindow takes a new session's receive window from the memory budget: SessionWindow, or
// what is left if less, and at least least; otherwise the session is refused.
func (t *sessionTable) grantWindow(least int64) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := min(t.cfg.SessionWindow, t.memLimit-t.memGranted)
	if w < least {
		return 0, fmt.Errorf("%w: the memory budget (MaxMemory %d bytes) is granted to the sessions held", ErrTooManySessions, t.memLimit)
	}
	t.memGranted += w
	return w, nil
}

// returnWindow gives a session's window back to the budget.
func (t *sessionTable) returnWindow(w int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.memGranted -= w
}

// memoryBudget is MaxMemory, or its default: half the machine's RAM, or, where that is not
// known, what MaxSessions full windows need.
func memoryBudget(c *Config) int64 {
	if c.MaxMemory > 0 {
		return c.MaxMemory
	}
	if ram := physicalMemory(); ram > 0 {
		return ram / 2
	}
	return int64(c.MaxSessions) * c.SessionWindow
}

// pendingClaim is a new session's place in its source address's count of sessions not yet
// established (no frame since SESSION_ACCEPT), given back once, when the first frame arrives or
// the session ends, whichever is first. Established sessions do not count, so a flood of
// SESSION_NEW from one address can neither fill MaxSessions nor push anyone out.
type pendingClaim struct {
	t       *sessionTable
	ip      string
	counted bool // guarded by t.mu
}

func (c *pendingClaim) release() {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if !c.counted {
		return
	}
	c.counted = false
	uncount(c.t.pendingIP, c.ip)
}

// offer hands a new session, its first path running, to Accept; with the backlog full the
// session is refused.
func (t *sessionTable) offer(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case t.accept <- s:
		return
	default:
	}
	go s.abort(fmt.Errorf("%w: accept backlog of %d is full", ErrTooManySessions, cap(t.accept)), wire.CodeTooManySessions)
}

// elsewhere explains an unknown session whose id names another server than this one (a load
// balancer sent the path to the wrong server, or the server named is gone), or returns "".
func (t *sessionTable) elsewhere(id *wire.SessionID) string {
	r, ok, err := wire.ParseRoute(id)
	if !ok || err != nil || len(t.cfg.ServerID) == 0 || bytes.Equal(r.ServerID, t.cfg.ServerID) {
		return ""
	}
	return fmt.Sprintf(" (its id names server %s; this is server %x)", r.Label(), t.cfg.ServerID)
}

// attach adds a connection to an existing session from a SESSION_ATTACH payload and answers
// ATTACH_OK. A live path in the same slot is one the client has given up on (it re-dials only
// lost paths): addPath ends it once the new one has joined, so that an attach refused or failed
// before then leaves it alone. The slot is the handshake's until then: a second attach in it is
// refused (TOO_MANY_PATHS), and the client's re-dial tries again.
func (t *sessionTable) attach(sc *handshakeConn, payload []byte) (*Session, int, int, error) {
	a, err := wire.ParseSessionAttach(payload)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	t.mu.Lock()
	s := t.byID[a.ID]
	t.mu.Unlock()
	if s == nil {
		return nil, 0, 0, fmt.Errorf("%w: %x%s", ErrUnknownSession, a.ID[:wire.LoggedIDSize(&a.ID)], t.elsewhere(&a.ID))
	}
	if !secure.CheckProof(a.Proof[:], s.key, a.ID[:], a.Slot, sc.sec.binding) {
		return nil, 0, 0, fmt.Errorf("%w for session %s", ErrBadToken, s.ID()) // logged, at a bounded rate, by handle
	}
	slot := int(a.Slot)
	if limit := s.slotLimit(t.cfg.MaxPaths); slot >= limit {
		return nil, 0, 0, fmt.Errorf("%w: slot %d, want 0..%d", ErrBadOptions, slot, limit-1)
	}
	idx, err := s.reserveIndex(t.cfg.MaxPaths, slot)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := sc.writeNow(wire.TypeAttachOK, wire.AppendAttachOK(nil, uint16(idx))); err != nil {
		s.unreserve(slot)
		return nil, 0, 0, err
	}
	return s, idx, slot, nil
}

func (t *sessionTable) remove(s *Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[s.id] == s {
		delete(t.byID, s.id)
	}
}
