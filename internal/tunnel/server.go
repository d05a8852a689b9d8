// Package tunnel carries TCP connections over a Braid session: the server end connects each
// stream to its target (under an allow-list), and the client end feeds streams from local
// listeners — a fixed target per listener (ssh -L) or a SOCKS5 server (ssh -D) — or from a
// pipe (braid cat). Streams are those of package mux; Pipe joins one to a TCP connection with
// half-closes and resets carried across.
package tunnel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid/mux"
)

// Server serves the streams a tunnel client opens.
type Server struct {
	// Dialer connects streams that name a target; its AllowList decides which may.
	Dialer Dialer
	// Stdout, if not nil, receives the data of a stream that names no target (braid cat
	// without one), one such stream at a time; the server sends FIN back once the stream's data
	// has all been written. Without it such streams are refused with CodeNoTarget.
	Stdout io.Writer
	// Logger receives a line per refusal (Info, at most refusalLogBurst a second, then a count
	// of those left out) and per stream at Debug. Default slog.Default().
	Logger *slog.Logger

	stdoutBusy atomic.Bool
	limiter    logLimiter
}

// serveStream serves one stream to its end: it connects it to its target and pipes the two.
func (sv *Server) serveStream(ctx context.Context, st *mux.Stream, log *slog.Logger) {
	if c := sv.connect(ctx, st, log); c != nil {
		pipeLogged(st, c, log)
	}
}

// serving is StartSession's record of one mux: the streams being served, whether the mux has
// ended, and what to call once both are done.
type serving struct {
	mu     sync.Mutex
	active int  // streams being served
	ended  bool // the mux has ended
	done   func()
}

// add counts a stream about to be served; false once the mux has ended (which ended the
// stream), so that nothing is counted after done may have been called.
func (sg *serving) add() bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.ended {
		return false
	}
	sg.active++
	return true
}

// sub counts a stream served; end, the mux's end (once). Whichever leaves the mux ended with
// nothing active calls done: the end, if no stream was active, or the last stream after it.
func (sg *serving) sub() { sg.settle(func() { sg.active-- }) }
func (sg *serving) end() { sg.settle(func() { sg.ended = true }) }

func (sg *serving) settle(change func()) {
	sg.mu.Lock()
	change()
	fin := sg.ended && sg.active == 0
	sg.mu.Unlock()
	if fin {
		sg.done()
	}
}

// handler returns a mux.Config.Handler that serves each stream on a goroutine of its own, and
// the record that counts them (its done is the caller's to set before the mux can end).
func (sv *Server) handler(ctx context.Context, log *slog.Logger) (func(*mux.Stream), *serving) {
	sg := &serving{}
	return func(st *mux.Stream) {
		if !sg.add() {
			return
		}
		go func() {
			defer sg.sub()
			sv.serveStream(ctx, st, log)
		}()
	}, sg
}

// connect answers stream st: it connects it to its target and returns the connection, or
// refuses it, or serves it to Stdout, and returns nil. It is apart from Pipe (and not inlined)
// so that the goroutine that then waits on an idle stream parks with a shallow stack, which the
// garbage collector shrinks: each idle stream costs that goroutine's stack.
//
//go:noinline
func (sv *Server) connect(ctx context.Context, st *mux.Stream, log *slog.Logger) net.Conn {
	target := st.Target()
	if target == "" {
		sv.serveStdout(st, log)
		return nil
	}
	start := time.Now()
	c, err := sv.Dialer.Dial(ctx, target)
	if err != nil {
		var re *RefusedError
		if !errors.As(err, &re) {
			re = &RefusedError{Code: mux.CodeFailure, Reason: err.Error()}
		}
		sv.limiter.log(log, "tunnel: stream refused", "stream", st.ID(), "target", target, "code", re.Code.String(), "reason", re.Reason)
		st.Refuse(re.Code, re.Reason)
		return nil
	}
	if err := st.Confirm(); err != nil {
		c.Close()
		st.Close()
		return nil
	}
	log.Debug("tunnel: stream connected", "stream", st.ID(), "target", target, "remote", c.RemoteAddr(), "dial", time.Since(start))
	return c
}

// pipeLogged is Pipe, and a debug line when it is done.
func pipeLogged(st *mux.Stream, c net.Conn, log *slog.Logger) {
	if err := Pipe(st, c); log.Enabled(context.Background(), slog.LevelDebug) {
		logPipeDone(st, err, log)
	}
}

//go:noinline
func logPipeDone(st *mux.Stream, err error, log *slog.Logger) {
	log.Debug("tunnel: stream done", "stream", st.ID(), "target", st.Target(), "err", err)
}

// serveStdout writes a target-less stream to Stdout, then answers with FIN.
func (sv *Server) serveStdout(st *mux.Stream, log *slog.Logger) {
	if sv.Stdout == nil {
		sv.limiter.log(log, "tunnel: stream refused", "stream", st.ID(), "target", "", "code", mux.CodeNoTarget.String())
		st.Refuse(mux.CodeNoTarget, "the stream names no target and this server has no default (serve --stdout)")
		return
	}
	if !sv.stdoutBusy.CompareAndSwap(false, true) {
		sv.limiter.log(log, "tunnel: stream refused", "stream", st.ID(), "target", "", "code", mux.CodeTooManyStreams.String(), "reason", "stdout busy")
		st.Refuse(mux.CodeTooManyStreams, "standard output is taken by another stream")
		return
	}
	defer sv.stdoutBusy.Store(false)
	defer st.Close()
	if err := st.Confirm(); err != nil {
		return
	}
	n, err := st.WriteTo(sv.Stdout)
	if err != nil {
		log.Warn("tunnel: stream to stdout failed", "stream", st.ID(), "bytes", n, "err", err)
		st.Reset(mux.CodeReset, "writing to standard output: "+err.Error())
		return
	}
	if err := st.CloseWrite(); err != nil {
		log.Warn("tunnel: stream to stdout", "stream", st.ID(), "err", err)
		return
	}
	log.Info("tunnel: stream written to stdout", "stream", st.ID(), "bytes", n)
}

// refusalLogBurst is how many refusal lines a server logs in a second; beyond, they are counted
// and the count logged with the next line, so that a client cannot flood the log.
const refusalLogBurst = 20

type logLimiter struct {
	mu         sync.Mutex
	second     int64
	n, dropped int
}

func (l *logLimiter) log(log *slog.Logger, msg string, args ...any) {
	now := time.Now().Unix()
	l.mu.Lock()
	if now != l.second {
		l.second, l.n = now, 0
	}
	l.n++
	if l.n > refusalLogBurst {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		args = append(args, "not_logged_before", dropped)
	}
	log.Info(msg, args...)
}
