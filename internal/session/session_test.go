package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
)

func TestSessionBasic(t *testing.T) {
	testutil.CheckLeaks(t)
	l, _ := startListener(t, nil)
	ctx := context.Background()
	// Round-robin, so that every path carries chunks: the adaptive default may rightly leave a
	// path that measured slower unused for a transfer this short.
	cs, err := Dial(ctx, l.Addr().String(), pinned(&Config{Paths: 4, ChunkSize: 4 << 10, Scheduler: "round-robin"}))
	if err != nil {
		t.Fatal(err)
	}
	ss := acceptOne(t, l)
	if cs.ID() != ss.ID() || len(cs.Stats().Paths) != 4 {
		t.Fatalf("ids %s %s, %d paths", cs.ID(), ss.ID(), len(cs.Stats().Paths))
	}
	msgs := [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte("x"), 100_000), make([]byte, 4<<10)}
	for _, m := range msgs {
		if err := cs.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range msgs {
		got, err := ss.Receive(ctx)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
	// And back.
	if err := ss.Send(ctx, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if got, err := cs.Receive(ctx); err != nil || string(got) != "reply" {
		t.Fatalf("reply %q %v", got, err)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Receive(ctx); err != io.EOF {
		t.Fatalf("after close: %v", err)
	}
	ss.Close()
	var chunks uint64
	for _, p := range cs.Stats().Paths {
		if p.ChunksSent == 0 {
			t.Errorf("path %d carried nothing", p.Index)
		}
		chunks += p.ChunksSent
	}
	if chunks != 1+1+25+1 {
		t.Errorf("%d chunks sent", chunks)
	}
}

// TestSessionConcurrentBothWays: many sessions × 4 paths, random messages both ways.
func TestSessionConcurrentBothWays(t *testing.T) {
	testutil.CheckLeaks(t)
	// 200 sessions × 4 paths, messages of 0 B to 8 MiB both ways. The race detector multiplies
	// memory several times over (about 17 GB at full size), so under it messages stop at 1 MiB;
	// .ci/run also runs this test at full size without it.
	sessions, msgsPer, maxSize := 200, 6, 8<<20
	if raceEnabled {
		maxSize = 1 << 20
	}
	if testing.Short() {
		sessions, maxSize = 20, 1<<20
	}
	// Round-robin, so that every path must carry chunks both ways (an adaptive scheduler may
	// rightly leave a path that the loaded machine makes slow unused).
	cfg := &Config{Paths: 4, ChunkSize: 64 << 10, MaxMessageSize: 8 << 20, SessionWindow: 18 << 20, Scheduler: "round-robin",
		// 400 sessions' worth of goroutines on two cores (under the race detector) can leave a
		// path unread, or a close unacknowledged, for seconds; this test is about exactness at
		// scale, so liveness and linger are lenient.
		HandshakeTimeout: time.Minute, PathTimeout: time.Minute, MinRTO: 10 * time.Second, Linger: 30 * time.Second,
		// Every session dials at once, from one address.
		MaxHandshakes: 4 * sessions, MaxHandshakesPerIP: 4 * sessions, MaxPendingSessionsPerIP: sessions}
	l, _ := startListener(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	exchange := func(s *Session, seed uint64) error {
		return exchangeMessages(ctx, s, seed, msgsPer, maxSize, nil)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2*sessions)
	for i := range sessions {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := Dial(ctx, l.Addr().String(), pinned(cfg))
			if err != nil {
				errs <- err
				cancel() // its server side would wait in Accept for the whole timeout
				return
			}
			// Dial returns with the first path up; on a loaded machine the others can take
			// seconds to attach, after this side's messages have gone.
			waitPaths(s, 4)
			err = exchange(s, uint64(i))
			s.Close() // counters are final once Close has flushed every path
			if err != nil {
				errs <- err
				return
			}
			st := s.Stats()
			for _, p := range st.Paths {
				if p.ChunksSent == 0 || p.ChunksReceived == 0 {
					// All of the session's paths, and whether any was lost or re-dialed, so
					// that a failure under load says where the chunks went.
					var all []string
					for _, q := range st.Paths {
						all = append(all, fmt.Sprintf("%d: sent %d received %d resent %d lags %d srtt %v",
							q.Index, q.ChunksSent, q.ChunksReceived, q.ChunksResent, q.Lags, q.SRTT.Round(time.Millisecond)))
					}
					errs <- fmt.Errorf("path %d carried no chunks: %+v (session: %d paths up, %d down, %d re-dialed; paths: %s)",
						p.Index, p, st.PathsUp, st.PathsDown, st.Redials, strings.Join(all, "; "))
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			s, err := l.Accept(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			// Paths attach concurrently after the session opens; wait for all four so that
			// this side's chunks can use every one.
			waitPaths(s, 4)
			if err := exchange(s, uint64(1000+i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
