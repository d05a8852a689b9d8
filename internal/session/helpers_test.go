package session

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// syncBuffer is a goroutine-safe log sink so tests can assert on logged reasons.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkLeaks asserts, after every cleanup registered later has run, that the test left no
// goroutine behind.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// waitFor polls cond until it holds, failing the test after 30 s (generous: under the race
// detector on a loaded machine a step can take seconds).
func waitFor(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
