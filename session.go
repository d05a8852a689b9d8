package braid

import (
	"context"
	"net"
	"time"

	"github.com/braidnet/braid/internal/session"
)

// Session is one logical connection made of several paths. Messages sent with Send arrive at the
// peer's Receive whole, in order, exactly once, whichever paths carried their chunks. Either end
// may send. All methods are safe for concurrent use.
//
// Flow control is session-wide: Send blocks while the peer's receive window is full, so neither
// end buffers more than its configured budget however slow the reader.
type Session struct {
	s *session.Session
}

func wrap(s *session.Session, err error) (*Session, error) {
	if err != nil {
		return nil, err
	}
	return &Session{s: s}, nil
}

// ID returns the session's id, as hex, for logs and metric labels: the first 8 of its 16 bytes,
// or with a server id of more than one byte (Config.ServerID) the server id and the first 6
// random bytes after it.
func (s *Session) ID() string { return s.s.ID() }

// String describes the session for logs.
func (s *Session) String() string { return s.s.String() }

// Send sends msg as one item. It blocks while the peer's receive window is full, until ctx ends
// or the session does. ctx governs only that wait: once the first chunk is queued the whole
// message is committed to the session. Send does not retain msg after it returns.
func (s *Session) Send(ctx context.Context, msg []byte) error { return s.s.Send(ctx, msg) }

// SendNoCopy is Send without the copy Send makes of msg: the session reads msg until the peer has
// acknowledged all of it (or the session no longer needs it: the peer closed, or the session
// ended), then calls done, if not nil, exactly once — on one of the session's goroutines, or
// before SendNoCopy returns. The caller must not modify msg until done has run. It spares a bulk
// sender a copy of every byte; in a coded mode (msg is encoded at once) done runs before it
// returns.
func (s *Session) SendNoCopy(ctx context.Context, msg []byte, done func()) error {
	return s.s.SendNoCopy(ctx, msg, done)
}

// Receive returns the next message, waiting until one is complete, ctx ends, or the session
// does. After the peer's Close it returns io.EOF once every message sent before it has been
// received. The returned slice is the caller's; a caller done with it may hand it back with
// Release, so that later messages reuse its memory.
func (s *Session) Receive(ctx context.Context) ([]byte, error) { return s.s.Receive(ctx) }

// AfterReady arranges for f to run, on a goroutine of its own, once Receive would return
// without waiting: a message is complete, the peer has closed, or the session is closing or has
// ended (at once if that is so already). It runs f once; to hear of the next message, call it
// again after Receive. A server holding many mostly idle sessions can so wait for them all
// without a goroutine parked in Receive for each. Calling stop before f has started keeps it
// from running and reports true; otherwise stop reports false, as context.AfterFunc's does.
func (s *Session) AfterReady(f func()) (stop func() bool) { return s.s.AfterReady(f) }

// Release hands back a message returned by Receive for reuse by later messages. It is optional
// (a message never released is simply garbage collected), but it spares a large-message receiver
// an allocation per message. msg must not be used afterwards.
func (s *Session) Release(msg []byte) { s.s.Release(msg) }

// Close ends the session gracefully: messages already sent are delivered before the peer's
// Receive returns io.EOF. It waits for the peer to acknowledge every chunk and then to close its
// side of every path; if Config.Linger passes with no progress, it aborts instead. Then it
// releases every path. Receive and Send return ErrSessionClosed afterwards.
//
// Close returns nil only if the peer acknowledged every chunk sent; otherwise (the linger
// expired, the session was lost or aborted, or the peer closed first) an error matching
// ErrUndelivered. Every call returns the same.
func (s *Session) Close() error { return s.s.Close() }

// Abort ends the session at once without delivering what is queued; the peer sees
// ErrSessionClosed from Receive and Send rather than io.EOF.
func (s *Session) Abort() { s.s.Abort() }

// Done returns a channel closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.s.Done() }

// Err returns why the session ended, or nil while it is open.
func (s *Session) Err() error { return s.s.Err() }

// Conn returns a view of the session as a net.Conn: a byte stream, in order, carried as messages
// over all the session's paths, so that io.Copy and other stream code work unchanged. Each Write
// sends its bytes as one or more messages; Read returns them in order, ignoring message
// boundaries, and io.EOF after the peer's Close.
//
// Deadlines apply to calls that start after they are set; a call already blocked keeps the
// deadline it started with. Close closes the whole session.
func (s *Session) Conn() net.Conn { return s.s.Conn() }

// Stats is a snapshot of a session's settings and counters.
type Stats struct {
	ID                string      // as ID returns
	Mode              string      // the dispersal mode: plain, redundant, shamir:K/N, erasure:K/N or aont:K/N
	ChunkSize         int         // agreed in the handshake, in bytes
	IntegrityFailures uint64      // sets of K pieces that failed the integrity check (coded modes)
	BytesAcked        uint64      // message bytes the peer has acknowledged (each byte once, whatever the mode)
	PathsUp           uint64      // paths that joined the session, re-dialed ones included
	PathsDown         uint64      // paths lost while the session ran (not those closed at its end)
	Redials           uint64      // paths re-dialed and attached again (client), including paths down at the start
	RedialFailures    uint64      // re-dial attempts that failed (client)
	Paths             []PathStats // by path index, dead paths included
}

// PathStats describes one path of a session.
type PathStats struct {
	Index          int    // the path's index in the session, assigned by the server
	Slot           int    // its place in the client's list of paths; coded modes send piece j on slot j
	Local, Remote  string // the connection's addresses
	Live           bool
	ChunksSent     uint64 // chunks, or pieces in a coded mode
	BytesSent      uint64 // chunk (or piece) payload bytes
	ChunksReceived uint64
	BytesReceived  uint64 // chunk payload bytes
	SRTT           time.Duration
	BadPieces      uint64  // pieces received on it that failed the integrity check (coded modes)
	KeyExchange    string  // the path's TLS key exchange, such as X25519MLKEM768; "none" without TLS
	BytesAcked     uint64  // payload bytes written on it that the peer acknowledged
	DeliveryRate   float64 // bytes per second the peer acknowledged while the path was busy, as last measured (0 before the first sample)
	Stalled        bool    // its retransmission timer expired and no round trip has completed since: it takes no new data
	ChunksResent   uint64  // chunks (or pieces) given to it to send again, after a path lost them or timed out
	BytesResent    uint64  // their payload bytes
	// Lags counts the times the path went far longer than its measured delivery rate allows
	// without an acknowledgement (it slowed or stopped): its unacknowledged chunks were sent
	// again on the other paths and it took no new data until a round trip completed.
	Lags uint64
	// Overtaken counts, at the receiving end, chunks the path was still reading when a complete
	// copy arrived by another path; the copy was delivered and the rest of the original skipped.
	Overtaken uint64
	// Lossy reports that the path's TCP connection retransmitted in the last two seconds, as
	// the session last looked (Linux, which reports it in TCP_INFO; never elsewhere). A chunk
	// the scheduler gives a lossy path is also sent on a clean path that has room for it.
	Lossy bool
	// LossCopies counts the chunks the path carried as copies of ones given to a lossy path.
	LossCopies uint64
}

// Stats returns a snapshot of the session's settings and per-path counters.
func (s *Session) Stats() Stats {
	st := s.s.Stats()
	out := Stats{ID: st.ID, Mode: st.Mode, ChunkSize: st.ChunkSize, IntegrityFailures: st.IntegrityFailures,
		BytesAcked: st.BytesAcked, PathsUp: st.PathsUp, PathsDown: st.PathsDown, Redials: st.Redials, RedialFailures: st.RedialFailures}
	for _, p := range st.Paths {
		out.Paths = append(out.Paths, PathStats(p))
	}
	return out
}
