package secure

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrIdentityChanged is a server whose fingerprint differs from the one recorded for its address
// on first use.
var ErrIdentityChanged = errors.New("server identity changed")

// KnownHosts is a trust-on-first-use store of server fingerprints, one "address fingerprint"
// line per server, like ssh's known_hosts: the first connection to an address records the
// fingerprint it saw; later ones must present the same.
type KnownHosts struct {
	File string
	// Added, if not nil, is called when a new address is recorded.
	Added func(addr, fingerprint string)

	mu       sync.Mutex        // one process adds an address once, however many paths dial it at once
	verified map[string]string // address → fingerprint already checked: a session's other paths do not read the file again
}

// Verify accepts fingerprint for addr if the store has it, records it if the store has nothing
// for addr, and otherwise returns an error matching ErrIdentityChanged.
func (k *KnownHosts) Verify(addr, fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.verified[addr] == fingerprint {
		return nil
	}
	known, line, err := k.lookup(addr)
	if err != nil {
		return err
	}
	switch {
	case known == fingerprint:
		k.remember(addr, fingerprint)
		return nil
	case known != "":
		return fmt.Errorf("%w: %s presented %s, but %s:%d records %s for it; if the change is expected, delete that line",
			ErrIdentityChanged, addr, fingerprint, k.File, line, known)
	}
	if err := os.MkdirAll(filepath.Dir(k.File), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", addr, fingerprint); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	k.remember(addr, fingerprint)
	if k.Added != nil {
		k.Added(addr, fingerprint)
	}
	return nil
}

func (k *KnownHosts) remember(addr, fingerprint string) {
	if k.verified == nil {
		k.verified = make(map[string]string)
	}
	k.verified[addr] = fingerprint
}

// lookup returns the fingerprint recorded for addr and its line number, or "" if none.
func (k *KnownHosts) lookup(addr string) (string, int, error) {
	f, err := os.Open(k.File)
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || fields[0] != addr {
			continue
		}
		fp, err := ParseFingerprint(fields[1])
		if err != nil {
			return "", 0, fmt.Errorf("%s:%d: %w", k.File, n, err)
		}
		return fp, n, nil
	}
	return "", 0, sc.Err()
}
