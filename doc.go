// Package braid is a multipath transport over TCP: it frames messages on TCP connections
// ("paths"), and unifies several paths into one session.
//
// # Frames
//
// Every frame is a 4-byte big-endian payload length, a 1-byte type and the payload; see
// docs/PROTOCOL.md for the normative specification. Server answers the base frame protocol on any
// number of connections (PING with PONG, TEXT and DATA with ACK) and Client speaks it on one:
//
//	srv, _ := braid.NewServer(nil)
//	go srv.Serve(listener)
//	c, _ := braid.DialClient(ctx, addr, nil)
//	rtt, _ := c.Ping(ctx, nil)
//	ack, _ := c.SendText(ctx, "hello")
//
// # Limits and errors
//
// Config sets the maximum frame size (checked against each header before the payload is read or
// allocated) and the idle, read and write timeouts; nil means DefaultConfig. A connection that
// breaks the protocol is sent an ERROR frame with a code and closed, with the reason logged,
// while every other connection keeps working. Errors are matched with errors.Is against the
// sentinels in this package (ErrFrameTooLarge, ErrProtocol, ErrTimeout, ...), whether detected
// locally or reported by the peer (RemoteError).
//
// # Logging
//
// Servers and clients log through the *slog.Logger in their Config; each frame's direction, type
// and size are logged at slog.LevelDebug.
package braid
