package tunnel

import (
	"net"
	"sync"

	"github.com/braidnet/braid/mux"
)

// closeWriter is a connection that can half-close (*net.TCPConn, *net.UnixConn, *mux.Stream).
type closeWriter interface {
	CloseWrite() error
}

// Pipe joins st and c until both directions have ended, then closes both. An end of stream on
// either side becomes a half-close (FIN) on the other, so protocols that half-close work. A
// reset on either side becomes a reset on the other: a stream reset by the peer closes c with
// a TCP RST, and a failed read or write on c resets st (CodeReset). It returns the first
// failure, or nil if both directions ended cleanly.
func Pipe(st *mux.Stream, c net.Conn) error {
	var (
		once     sync.Once
		firstErr error
	)
	// failed ends both directions after err: a reset goes to whichever side did not cause it.
	failed := func(err error) {
		once.Do(func() { firstErr = err })
		if st.Err() == nil {
			st.Reset(mux.CodeReset, err.Error())
		}
		abort(c) // on c's side, a reset too
	}
	// st → c runs by itself (a goroutine only while data waits to be written); c → st here.
	down := make(chan struct{})
	st.CopyTo(c, func(_ int64, err error) {
		defer close(down)
		if err == nil {
			if cw, ok := c.(closeWriter); ok {
				err = cw.CloseWrite()
			}
		}
		if err != nil {
			failed(err)
		}
	})
	_, err := st.ReadFrom(c)
	if err == nil {
		err = st.CloseWrite()
	}
	if err != nil {
		failed(err)
	}
	<-down
	st.Close()
	c.Close()
	return firstErr
}

// abort closes c with a TCP RST where it can (SO_LINGER 0), so that its peer sees the reset.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
