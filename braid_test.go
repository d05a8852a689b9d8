package braid_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/frame"
)

// TestPublicAPI drives the public surface the way an application does: a Listener, a session of
// four paths, messages both ways, the stream view, the stats, and a clean close.
func TestPublicAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := braid.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		s, err := l.Accept(ctx)
		if err != nil {
			served <- err
			return
		}
		for {
			msg, err := s.Receive(ctx)
			if err == io.EOF {
				served <- s.Close()
				return
			}
			if err != nil {
				served <- err
				return
			}
			if err := s.Send(ctx, msg); err != nil {
				served <- err
				return
			}
			s.Release(msg)
		}
	}()
	s, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 4, ChunkSize: 4 << 10, ServerFingerprint: l.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("braid"), 10_000) // 50 kB: chunks on every path
	for range 4 {
		if err := s.Send(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Receive(ctx)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
	}
	st := s.Stats()
	if st.ID != s.ID() || st.ChunkSize != 4<<10 || st.Mode != "plain" || len(st.Paths) != 4 {
		t.Fatalf("stats %+v", st)
	}
	// Each chunk once, beside those sent again (a chunk a loaded machine held up past its path's
	// lag limit) and copies of chunks given to a path whose TCP connection retransmitted.
	var chunks, again, sent uint64
	for _, p := range st.Paths {
		if !p.Live {
			t.Errorf("path %d not live", p.Index)
		}
		chunks += p.ChunksSent
		again += p.ChunksResent + p.LossCopies
		sent += p.BytesSent
	}
	perMessage := uint64(len(want)+4<<10-1) / (4 << 10)
	if chunks-again != 4*perMessage {
		t.Errorf("paths sent %d chunks, %d of them again or as copies; want %d once", chunks, again, 4*perMessage)
	}
	if again == 0 && sent != 4*uint64(len(want)) {
		t.Errorf("paths sent %d bytes, want %d", sent, 4*len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
	if err := s.Send(ctx, want); !errors.Is(err, braid.ErrSessionClosed) {
		t.Fatalf("Send after Close: %v, want ErrSessionClosed", err)
	}
}

// TestListenerServesFrames: a Listener answers the single-path frame protocol on its address.
func TestListenerServesFrames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := braid.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := braid.PinnedTLS(l.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	c, err := frame.Dial(ctx, l.Addr().String(), &frame.Config{TLS: pin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	ack, err := c.SendText(ctx, "hello")
	if err != nil || ack.Bytes != 5 {
		t.Fatalf("SendText: %+v %v", ack, err)
	}
	c.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, braid.ErrServerClosed) {
		t.Fatalf("Accept after Close: %v, want ErrServerClosed", err)
	}
}

// TestPublicErrors: the public sentinels match what the engine and the peer report.
func TestPublicErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bad := &braid.Config{KeepAlive: 10 * time.Second} // not below the default PathTimeout
	if err := bad.Validate(); !errors.Is(err, braid.ErrBadOptions) {
		t.Fatalf("Validate: %v, want ErrBadOptions", err)
	}
	if _, err := braid.Dial(ctx, "127.0.0.1:1", bad); !errors.Is(err, braid.ErrBadOptions) {
		t.Fatalf("Dial: %v, want ErrBadOptions", err)
	}
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{MaxPaths: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The server refuses more paths than it allows: a remote error, matched by the sentinel.
	_, err = braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 3, ServerFingerprint: l.Fingerprint()})
	if !errors.Is(err, braid.ErrTooManyPaths) {
		t.Fatalf("Dial with 3 paths to a 2-path server: %v, want ErrTooManyPaths", err)
	}
	if errors.Is(err, braid.ErrBadToken) {
		t.Fatalf("%v matches an unrelated sentinel", err)
	}
	if err := braid.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
}

// TestPublicIdentity: a server identity made with LoadOrCreateIdentity (kept, and loaded again
// the same) is what a client pins with its Fingerprint; another key is refused with ErrFingerprint.
func TestPublicIdentity(t *testing.T) {
	dir := t.TempDir()
	cert, created, err := braid.LoadOrCreateIdentity(dir)
	if err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	again, created, err := braid.LoadOrCreateIdentity(dir)
	if err != nil || created || braid.Fingerprint(again.Leaf) != braid.Fingerprint(cert.Leaf) {
		t.Fatalf("reload: created %v, %v", created, err)
	}
	l, err := braid.Listen("127.0.0.1:0", &braid.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Fingerprint() != braid.Fingerprint(cert.Leaf) {
		t.Fatalf("Listener.Fingerprint %s, the identity's %s", l.Fingerprint(), braid.Fingerprint(cert.Leaf))
	}
	ctx := context.Background()
	s, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 2, ServerFingerprint: braid.Fingerprint(cert.Leaf)})
	if err != nil {
		t.Fatal(err)
	}
	s.Abort()
	other, err := braid.SelfSignedCertificate("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 1, ServerFingerprint: braid.Fingerprint(other.Leaf)}); !errors.Is(err, braid.ErrFingerprint) || !errors.Is(err, braid.ErrTLS) {
		t.Fatalf("Dial pinning another key: %v, want ErrFingerprint and ErrTLS", err)
	}
}
