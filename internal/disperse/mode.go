// Package disperse is the session's dispersal layer: how one chunk is turned into what the paths
// carry. Plain and redundant modes send the chunk itself (on one path, or on every path); the
// coded modes turn it into N pieces, piece j for the path in slot j, any K of which rebuild it:
//
//   - shamir:K/N — each piece is a Shamir share (package sss): fewer than K pieces reveal nothing
//     about the chunk;
//   - erasure:K/N — the pieces are Reed–Solomon shards (N/K of the chunk's size in all): no
//     secrecy, but any N−K pieces may be lost;
//   - aont:K/N — AONT-RS (Resch and Plank, FAST 2011): the chunk is encrypted under a fresh
//     random key, the key is folded into the package (XOR the SHA-256 of the ciphertext), and
//     the package is cut into Reed–Solomon shards: N/K of the chunk's size like erasure, and,
//     computationally, fewer than K pieces reveal nothing of the chunk.
//
// Every shamir or erasure chunk carries an integrity tag: a GMAC under a fresh AES-128 key per
// chunk, the key itself secret-shared K-of-N across the pieces, so that whoever holds fewer than
// K paths can neither read the key nor forge a tag. An aont chunk carries instead a canary, the
// chunk's identity encrypted after its payload, which decrypts right only from the package as it
// was made. A Codec is a pure transform (chunk in, pieces out, and
// back) that the session drives; it knows nothing of paths or frames.
package disperse

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/braidnet/braid/internal/wire"
)

// Kind is a dispersal mode's family; its value is the mode byte of SESSION_NEW.
type Kind uint8

// The dispersal kinds.
const (
	Plain     = Kind(wire.ModePlain)
	Redundant = Kind(wire.ModeRedundant)
	Shamir    = Kind(wire.ModeShamir)
	Erasure   = Kind(wire.ModeErasure)
	AONT      = Kind(wire.ModeAONT)
)

var kindNames = map[Kind]string{Plain: "plain", Redundant: "redundant", Shamir: "shamir", Erasure: "erasure", AONT: "aont"}

// String returns the kind's name as --mode spells it.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("mode(%d)", uint8(k))
}

// ErrBadMode reports a mode that cannot be parsed or is outside its limits.
var ErrBadMode = errors.New("disperse: invalid dispersal mode")

// MaxN is the most pieces a coded mode may make: Shamir x coordinates are 1..255.
const MaxN = 255

// Mode is a dispersal mode with its parameters. The zero value is plain.
type Mode struct {
	Kind Kind
	K, N int // coded modes only: any K of the N pieces rebuild a chunk
}

// Coded reports whether the mode turns chunks into pieces.
func (m Mode) Coded() bool { return m.Kind == Shamir || m.Kind == Erasure || m.Kind == AONT }

// String returns the mode as Parse accepts it.
func (m Mode) String() string {
	if m.Coded() {
		return fmt.Sprintf("%s:%d/%d", m.Kind, m.K, m.N)
	}
	return m.Kind.String()
}

// Validate reports whether the mode is well formed: a known kind, and for the coded kinds
// 2 ≤ K ≤ N ≤ 255 (K = 1 would leave the integrity key, or in aont the whole package, in the
// clear on every path).
func (m Mode) Validate() error {
	switch m.Kind {
	case Plain, Redundant:
		if m.K != 0 || m.N != 0 {
			return fmt.Errorf("%w: %s takes no K/N", ErrBadMode, m.Kind)
		}
		return nil
	case Shamir, Erasure, AONT:
		if m.K < 2 || m.N < m.K || m.N > MaxN {
			return fmt.Errorf("%w: %s needs 2 <= K <= N <= %d, got K=%d N=%d", ErrBadMode, m.Kind, MaxN, m.K, m.N)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", ErrBadMode, uint8(m.Kind))
}

// Parse reads a mode: "plain", "redundant", "shamir:K/N", "erasure:K/N" or "aont:K/N". The empty
// string is plain.
func Parse(s string) (Mode, error) {
	name, params, coded := strings.Cut(strings.TrimSpace(s), ":")
	var m Mode
	switch strings.ToLower(name) {
	case "", "plain":
		m.Kind = Plain
	case "redundant":
		m.Kind = Redundant
	case "shamir":
		m.Kind = Shamir
	case "erasure":
		m.Kind = Erasure
	case "aont":
		m.Kind = AONT
	default:
		return Mode{}, fmt.Errorf("%w: %q (want plain, redundant, shamir:K/N, erasure:K/N or aont:K/N)", ErrBadMode, s)
	}
	if coded != m.Coded() {
		if coded {
			return Mode{}, fmt.Errorf("%w: %q: %s takes no parameters", ErrBadMode, s, m.Kind)
		}
		return Mode{}, fmt.Errorf("%w: %q: %s needs K/N, as in %s:2/3", ErrBadMode, s, m.Kind, m.Kind)
	}
	if coded {
		ks, ns, ok := strings.Cut(params, "/")
		k, errK := strconv.Atoi(ks)
		n, errN := strconv.Atoi(ns)
		if !ok || errK != nil || errN != nil {
			return Mode{}, fmt.Errorf("%w: %q: want %s:K/N with K and N numbers", ErrBadMode, s, m.Kind)
		}
		m.K, m.N = k, n
	}
	if err := m.Validate(); err != nil {
		return Mode{}, err
	}
	return m, nil
}

// FromWire builds a mode from SESSION_NEW's mode, K and N bytes, and validates it.
func FromWire(mode, k, n uint8) (Mode, error) {
	m := Mode{Kind: Kind(mode), K: int(k), N: int(n)}
	return m, m.Validate()
}

// Wire returns the mode, K and N bytes of SESSION_NEW for the mode.
func (m Mode) Wire() (mode, k, n uint8) { return uint8(m.Kind), uint8(m.K), uint8(m.N) }

// shardSize is the Reed–Solomon shard length for a chunk of length bytes: in erasure its payload
// and tag cut into K equal parts (the last padded with zeros); in aont its package, whose
// encrypted padding makes it K shards of at least AONTMinShard bytes.
func (m Mode) shardSize(length int) int {
	if m.Kind == AONT {
		return max((length+aontOverhead+m.K-1)/m.K, AONTMinShard)
	}
	return (length + TagSize + m.K - 1) / m.K
}

// PieceSize returns the length of each piece of a chunk of length payload bytes in a coded mode.
func (m Mode) PieceSize(length int) int {
	switch m.Kind {
	case Shamir:
		return length + TagSize + KeySize // a share of payload ‖ tag ‖ key
	case AONT:
		return m.shardSize(length) // a shard of the package, which holds its own key
	}
	return m.shardSize(length) + KeySize // a shard, then a share of the key
}

// ChunkCharge is what one chunk of chunkSize bytes costs against a receive window: its bytes, and
// in a coded mode the K−1 pieces a receiver may hold while it waits for the K-th. Flow control
// charges it, so that the window bounds the pieces held as well as the chunks rebuilt.
func (m Mode) ChunkCharge(chunkSize int) int {
	if !m.Coded() {
		return chunkSize
	}
	return chunkSize + (m.K-1)*m.PieceSize(chunkSize)
}
