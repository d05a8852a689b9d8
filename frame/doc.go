// Package frame is Braid's single-path protocol: length-prefixed typed frames over one TCP
// connection (a 4-byte big-endian length, a 1-byte type, the payload). A Server answers PING
// with PONG and TEXT and DATA with ACK on any number of connections, each with its own goroutine
// and limits; a Client speaks it (Ping, SendText, SendData, and Upload, which pipelines DATA
// frames under a window of unacknowledged ones). docs/PROTOCOL.md is the wire specification.
//
// The ERROR frame and its codes are shared with the multipath session protocol of package braid:
// each code stands for one of this package's sentinel errors, matched with errors.Is whether the
// condition was detected locally or reported by the peer (RemoteError). A braid.Listener answers
// this protocol too, on connections that open no session.
package frame
