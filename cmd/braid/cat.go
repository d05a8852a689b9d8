package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/braidnet/braid/mux"
)

func runCat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cat", "[flags] ADDR [HOST:PORT]  or  --path LOCAL=REMOTE ... [HOST:PORT]", stderr)
	quiet := fs.Bool("q", false, "print nothing but the stream's data on standard output (the session line goes to standard error otherwise)")
	sf := addTunnelFlags(fs)
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The last argument is the target if it follows the server address (or stands alone with
	// --path flags).
	rest, target := fs.Args(), ""
	if len(sf.specs) == 0 && len(rest) == 2 || len(sf.specs) > 0 && len(rest) == 1 {
		rest, target = rest[:len(rest)-1], rest[len(rest)-1]
		if _, port, err := net.SplitHostPort(target); err != nil || port == "" {
			return usageError(fs, "target %q: want HOST:PORT", target)
		}
	}
	log, err := lf.logger(stderr) // a pipe stays quiet unless -v
	if err != nil {
		return usageError(fs, "%v", err)
	}
	// Standard output carries the stream; notes go to standard error.
	notes := stderr
	if *quiet {
		notes = io.Discard
	}
	s, m, err := sf.dial(ctx, fs, rest, log, notes, stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	defer m.Close()
	st, err := m.Open(ctx, target)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { st.Reset(mux.CodeCancel, "interrupted") })
	defer stop()
	// Standard input to the stream, then FIN; the stream to standard output until the far end's
	// FIN. Both must finish; a reset either way fails the command.
	up := make(chan error, 1)
	go func() {
		_, err := st.ReadFrom(stdin)
		if err == nil {
			err = st.CloseWrite()
		} else {
			st.Reset(mux.CodeReset, "reading standard input: "+err.Error())
		}
		up <- err
	}()
	_, err = st.WriteTo(stdout)
	if err != nil {
		st.Reset(mux.CodeReset, "writing standard output: "+err.Error())
		return err
	}
	select {
	case err = <-up:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	st.Close()
	m.Close()
	// Close waits for the server to acknowledge everything sent: success means it arrived.
	if err := s.Close(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("closing the session: %w", err)
	}
	return nil
}
