// Package braid is a multipath transport over TCP: it unifies several TCP connections ("paths")
// into one session, splits each message into chunks spread across the paths, and reassembles the
// messages exactly, in order, at the other end.
//
// # Sessions
//
// A client opens a session over several paths with Dial (N connections to one address) or
// DialPaths (explicit local and remote address per path, for real multi-interface setups); a
// server accepts sessions with Listen and Listener.Accept. Either end then sends and receives
// whole messages:
//
//	l, _ := braid.Listen("127.0.0.1:7878", nil)
//	go func() {
//		s, _ := l.Accept(ctx)
//		msg, _ := s.Receive(ctx) // whole, in order, exactly once
//		s.Send(ctx, msg)         // either end may send
//	}()
//	s, _ := braid.Dial(ctx, "127.0.0.1:7878", &braid.Config{Paths: 4, ServerFingerprint: l.Fingerprint()})
//	s.Send(ctx, []byte("hello"))
//	reply, _ := s.Receive(ctx)
//	s.Close() // the peer's Receive returns io.EOF after every message sent before it
//
// Session.Conn returns a net.Conn view of a session, a byte stream, so that io.Copy and other
// stream code work unchanged. Session.Stats reports the session's settings and per-path counters.
//
// # Path security
//
// Every path runs TLS 1.3 with the X25519MLKEM768 key exchange unless both ends set
// Config.Insecure. A Listener presents Config.TLS's certificate (an ephemeral self-signed one if
// none; see LoadOrCreateIdentity for a lasting one) and a client checks it by
// Config.ServerFingerprint (see Fingerprint and Listener.Fingerprint) or a CA chain
// (Config.TLS.RootCAs). Paths after the first join with a proof keyed by a secret exported from the
// first path's TLS connection. Config.AuthorizedClients, Config.Token and a client-certificate
// requirement in Config.TLS make a server accept only authenticated clients. See docs/SECURITY.md.
//
// # Flow control and limits
//
// Each end advertises a receive window (Config.SessionWindow); Send blocks while the peer's window
// is full, so a slow reader never grows either end's memory beyond its budget. Every limit —
// frame size, message size, paths per session, sessions per server, memory per session,
// handshake and idle timeouts — is in Config and is enforced before memory is allocated. A peer
// that breaks the protocol gets an ERROR frame with a code, and only its session (or connection)
// is closed.
//
// # Many servers behind a load balancer
//
// A server with Config.ServerID draws routable session ids that carry it, and a client sends
// every path it attaches to such a session with the TLS server name "<server id in hex>.<name>",
// so that a load balancer reading the ClientHello (HAProxy's req.ssl_sni) sends all paths of a
// session to the server that holds it, with no shared state; the server is still verified as
// configured. See docs/DEPLOY.md and deploy/haproxy.cfg.
//
// # Single-path frames
//
// Connections that do not open a session speak the base frame protocol of package frame
// (PING/PONG, TEXT and DATA answered by ACK; see docs/PROTOCOL.md). A Listener answers them on
// its own address, so one port serves both kinds of peer; frame.Dial is their client.
//
// # Errors
//
// Errors are matched with errors.Is against the sentinels of this package (ErrFrameTooLarge,
// ErrInvalidChunk, ErrUnknownSession, ErrOverBudget, ErrPathLost, ...), whether detected locally
// or reported by the peer in an ERROR frame (a *frame.RemoteError).
//
// # Logging
//
// Listeners and sessions log through the *slog.Logger in their Config: path and session
// events at Info, each frame's direction, type and size at Debug.
//
// # Surviving path failure
//
// Every chunk is acknowledged at the session level and kept until then. When a path dies (reset,
// closed, or silent for Config.PathTimeout: a blackhole) or stalls past its retransmission
// timeout, its unacknowledged chunks are sent again on the others and the receiver drops
// duplicates, so delivery stays exact and in order. A client re-dials lost paths with backoff. A
// session with no path at all waits Config.ResumeGrace for one, then fails with ErrPathLost at
// both ends. Close delivers everything sent before the peer sees io.EOF; Abort is distinguishable
// from it (the peer sees ErrSessionClosed).
//
// # Limitations
//
// Deadlines on the net.Conn view apply to calls started after they are set. Nothing bounds a
// path's bytes in flight below the session window, so on slow, deep-buffered paths a stall is
// detected late (see the README's failover figures).
package braid
