package reasm

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/braidnet/braid/internal/wire"
)

// The fuzz target runs a program against a Reassembler and, in lockstep, against model: a
// deliberately naive restatement of the rules in package doc and Reserve's contract. Every call's
// outcome must match the model's prediction.

type outcome int

const (
	accepted outcome = iota
	duplicate
	invalidChunk
	overBudget
)

func (o outcome) String() string {
	return [...]string{"accepted", "duplicate", "invalid", "over budget"}[o]
}

type modelItem struct {
	total   uint32
	lastLen int // -1 until the last chunk is reserved
	have    []bool
	busy    []bool
	count   int
}

type model struct {
	cfg     Config
	next    uint64
	items   map[uint64]*modelItem
	charged int64
}

func (m *model) predict(h wire.ChunkHeader, n int) outcome {
	cs := m.cfg.ChunkSize
	last := h.Total > 0 && h.Chunk == h.Total-1
	if h.Total == 0 || h.Total > m.cfg.MaxTotal || h.Chunk >= h.Total || n < 0 || n > cs ||
		(!last && n != cs) || (last && h.Total > 1 && n == 0) {
		return invalidChunk
	}
	if h.Item < m.next {
		return duplicate
	}
	it := m.items[h.Item]
	if it == nil {
		if m.charged+Charge(h.Total, cs) > m.cfg.Budget {
			return overBudget
		}
		return accepted
	}
	if it.total != h.Total || (last && it.lastLen >= 0 && it.lastLen != n) {
		return invalidChunk
	}
	if it.have[h.Chunk] || it.busy[h.Chunk] {
		return duplicate
	}
	return accepted
}

// reserve applies an accepted reservation.
func (m *model) reserve(h wire.ChunkHeader, n int) {
	it := m.items[h.Item]
	if it == nil {
		it = &modelItem{total: h.Total, lastLen: -1, have: make([]bool, h.Total), busy: make([]bool, h.Total)}
		m.items[h.Item] = it
		m.charged += Charge(h.Total, m.cfg.ChunkSize)
	}
	it.busy[h.Chunk] = true
	if h.Chunk == h.Total-1 {
		it.lastLen = n
	}
}

func (m *model) commit(h wire.ChunkHeader) {
	it := m.items[h.Item]
	it.busy[h.Chunk], it.have[h.Chunk] = false, true
	it.count++
}

func (m *model) cancel(h wire.ChunkHeader) {
	if it := m.items[h.Item]; it != nil && h.Chunk < it.total {
		it.busy[h.Chunk] = false
	}
}

func (m *model) ready() bool {
	it := m.items[m.next]
	return it != nil && it.count == int(it.total)
}

func (m *model) missing() int {
	it := m.items[m.next]
	if it == nil {
		return -1
	}
	return int(it.total) - it.count
}

// pop returns the charge of the item it delivers.
func (m *model) pop() (int64, bool) {
	if !m.ready() {
		return 0, false
	}
	c := Charge(m.items[m.next].total, m.cfg.ChunkSize)
	delete(m.items, m.next)
	m.next++
	m.charged -= c
	return c, true
}

// program reads a fuzz input byte by byte; past its end it reads zeros.
type program struct {
	b []byte
	i int
}

func (p *program) next() byte {
	if p.i >= len(p.b) {
		return 0
	}
	c := p.b[p.i]
	p.i++
	return c
}

func (p *program) done() bool { return p.i >= len(p.b) }

type fuzzChunk struct {
	h       wire.ChunkHeader
	payload []byte
}

type held struct {
	h   wire.ChunkHeader
	dst []byte
	k   int // index in chunks
}

func runProgram(t *testing.T, data []byte) {
	p := &program{b: data}
	cs := 1 + int(p.next()%16)
	maxTotal := 1 + uint32(p.next()%24) // beyond LazyFactor: chunks held on their own, then moved
	nmsg := 1 + int(p.next()%6)
	seed := p.next()

	msgs := make([][]byte, nmsg)
	var chunks []fuzzChunk
	var sumCharge, maxCharge int64
	for i := range msgs {
		n := int(p.next()) % (int(maxTotal)*cs + 1)
		msgs[i] = make([]byte, n)
		for j := range msgs[i] {
			msgs[i][j] = byte(i*71+j*13) ^ seed
		}
		parts := split(msgs[i], cs)
		for c, part := range parts {
			chunks = append(chunks, fuzzChunk{hdr(uint64(i), uint32(c), uint32(len(parts))), part})
		}
		c := Charge(uint32(len(parts)), cs)
		sumCharge += c
		maxCharge = max(maxCharge, c)
	}
	budget := sumCharge // never exceeded by our own items
	if sel := p.next(); sel >= 128 {
		// Tight: at least the largest item, so each one fits on its own.
		budget = maxCharge + int64(sel-128)*int64(cs+ItemOverhead)/16
	}
	cfg := Config{ChunkSize: cs, MaxTotal: maxTotal, Budget: budget}
	r := New(cfg)
	m := &model{cfg: cfg, items: map[uint64]*modelItem{}}
	committed := make([]bool, len(chunks)) // chunk committed at least once
	var pending []held                     // reserved, not yet committed or cancelled
	delivered := 0

	try := func(h wire.ChunkHeader, n int) ([]byte, bool) {
		t.Helper()
		want := m.predict(h, n)
		dst, dup, err := r.Reserve(h, n)
		var got outcome
		switch {
		case err == nil && !dup:
			got = accepted
		case err == nil && dup:
			got = duplicate
		case errors.Is(err, ErrInvalidChunk) && !errors.Is(err, ErrOverBudget):
			got = invalidChunk
		case errors.Is(err, ErrOverBudget) && !errors.Is(err, ErrInvalidChunk):
			got = overBudget
		default:
			t.Fatalf("Reserve(%+v, %d): dup=%v err=%v", h, n, dup, err)
		}
		if got != want {
			t.Fatalf("Reserve(%+v, %d): %v (err %v), model says %v", h, n, got, err, want)
		}
		if got != accepted {
			if dst != nil {
				t.Fatalf("Reserve(%+v, %d): %v with a buffer", h, n, got)
			}
			return nil, false
		}
		if len(dst) != n || cap(dst) != n {
			t.Fatalf("Reserve(%+v, %d): len %d cap %d", h, n, len(dst), cap(dst))
		}
		m.reserve(h, n)
		return dst, true
	}
	commit := func(h wire.ChunkHeader, dst []byte, k int) {
		copy(dst, chunks[k].payload)
		r.Commit(h)
		m.commit(h)
		committed[k] = true
	}
	check := func(step string) {
		t.Helper()
		for {
			msg, charge, ok := r.Pop()
			wantCharge, wantOK := m.pop()
			if ok != wantOK || charge != wantCharge {
				t.Fatalf("%s: Pop ok=%v charge=%d, model %v %d", step, ok, charge, wantOK, wantCharge)
			}
			if !ok {
				break
			}
			if delivered >= nmsg || !bytes.Equal(msg, msgs[delivered]) {
				t.Fatalf("%s: message %d wrong: % x", step, delivered, msg)
			}
			delivered++
		}
		c := r.Charged()
		if c < 0 || c > budget || c != m.charged {
			t.Fatalf("%s: charged %d, model %d, budget %d", step, c, m.charged, budget)
		}
		if r.Pending() != len(m.items) || r.Next() != m.next || r.Next() != uint64(delivered) ||
			r.Ready() != m.ready() || r.Missing() != m.missing() {
			t.Fatalf("%s: pending %d next %d ready %v missing %d; model %d %d %v %d", step,
				r.Pending(), r.Next(), r.Ready(), r.Missing(), len(m.items), m.next, m.ready(), m.missing())
		}
		checkInternal(t, r)
	}
	isPending := func(h wire.ChunkHeader) bool {
		for _, q := range pending {
			if q.h == h {
				return true
			}
		}
		return false
	}

	for ops := 0; ops < 300 && !p.done(); ops++ {
		op, k := p.next(), int(p.next())%len(chunks)
		ch := chunks[k]
		switch op % 8 {
		case 0, 1, 2: // deliver a copy of chunk k
			if dst, ok := try(ch.h, len(ch.payload)); ok {
				commit(ch.h, dst, k)
			}
		case 3: // a copy whose payload read fails
			if dst, ok := try(ch.h, len(ch.payload)); ok {
				for i := range dst {
					dst[i] = 0xee
				}
				r.Cancel(ch.h)
				m.cancel(ch.h)
			}
		case 4: // start filling chunk k, finish later
			if dst, ok := try(ch.h, len(ch.payload)); ok {
				pending = append(pending, held{ch.h, dst, k})
			}
		case 5: // finish the oldest pending reservation
			if len(pending) > 0 {
				q := pending[0]
				pending = pending[1:]
				if op&0x80 == 0 {
					commit(q.h, q.dst, q.k)
				} else {
					r.Cancel(q.h)
					m.cancel(q.h)
				}
			}
		case 6: // an invalid or duplicate chunk
			h, n := mutate(p, ch, cs, maxTotal, nmsg)
			if m.predict(h, n) == accepted {
				break // would be taken as data: not an injection
			}
			try(h, n)
		case 7: // Cancel of something not reserved is a no-op
			if !isPending(ch.h) {
				r.Cancel(ch.h)
				m.cancel(ch.h)
			}
		}
		check("op")
	}

	for _, q := range pending {
		commit(q.h, q.dst, q.k)
	}
	pending = nil
	check("pending committed")

	all := true
	for k, c := range committed {
		all = all && (c || chunks[k].h.Item < uint64(delivered))
	}
	if all && delivered != nmsg {
		t.Fatalf("every chunk arrived, %d of %d messages delivered", delivered, nmsg)
	}

	// Drain: send what is missing in item order, as a sender within the window would.
	for k, ch := range chunks {
		if ch.h.Item < uint64(delivered) {
			continue
		}
		if it := m.items[ch.h.Item]; it != nil && it.have[ch.h.Chunk] {
			continue
		}
		if m.predict(ch.h, len(ch.payload)) == overBudget {
			// Later items hold the budget that the next one needs: only possible with a tight
			// budget and a sender that ignored the window.
			if budget >= sumCharge {
				t.Fatalf("over budget %d with every message fitting (%d)", budget, sumCharge)
			}
			return
		}
		if dst, ok := try(ch.h, len(ch.payload)); ok {
			commit(ch.h, dst, k)
		}
		check("drain")
	}
	if delivered != nmsg || r.Charged() != 0 || r.Pending() != 0 {
		t.Fatalf("after drain: %d of %d delivered, charged %d, pending %d", delivered, nmsg, r.Charged(), r.Pending())
	}
}

// mutate derives a probably-bad header and length from a real chunk.
func mutate(p *program, ch fuzzChunk, cs int, maxTotal uint32, nmsg int) (wire.ChunkHeader, int) {
	h, n := ch.h, len(ch.payload)
	kind, arg := p.next(), p.next()
	switch kind % 9 {
	case 0:
		h.Total = 0
	case 1:
		h.Total = maxTotal + 1 + uint32(arg)
		if arg == 255 {
			h.Total = 1<<32 - 1
		}
	case 2:
		h.Chunk = h.Total + uint32(arg%3)
	case 3:
		n = cs + 1 + int(arg%4)
	case 4:
		n = int(arg) % cs
	case 5:
		h.Total = 1 + (h.Total+uint32(arg))%maxTotal
		h.Chunk = min(h.Chunk, h.Total-1)
	case 6:
		h.Chunk = h.Total - 1
		n = max(0, min(cs, n+1+int(arg%3)-2*int(arg&1)*(2+int(arg%3))))
	case 7:
		n = -1 - int(arg)
	case 8:
		h = hdr(uint64(arg)%uint64(nmsg+2), uint32(p.next()%8), uint32(p.next()%8))
		n = int(arg) % (cs + 2)
	}
	return h, n
}

// FuzzReassembler: arbitrary schedules of deliveries, duplicates, failed reads and invalid
// chunks never panic, never break the budget, and deliver exactly the original messages in
// order, each once.
func FuzzReassembler(f *testing.F) {
	// cs, maxTotal, nmsg, seed, lengths..., budget, then (op, chunk) pairs.
	f.Add([]byte{7, 3, 4, 9, 20, 0, 8, 15, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7})
	f.Add([]byte{3, 5, 5, 1, 17, 4, 0, 9, 3, 200,
		4, 0, 4, 0, 5, 0, 0, 1, 6, 1, 0, 7, 3, 2, 0, 2, 0x85, 0, 0, 0, 7, 3, 6, 2, 5, 1, 6, 5, 6, 1, 7, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0})            // one empty message, chunk size 1
	f.Add([]byte{15, 5, 5, 0, 95, 95, 95, 95, 95, 255}) // tight budget, nothing delivered
	f.Add([]byte{15, 5, 5, 0, 95, 95, 95, 95, 95, 130, 0, 20, 0, 10, 0, 0, 0, 5, 0, 15})
	rng := rand.New(rand.NewPCG(3, 4))
	for range 16 {
		b := make([]byte, 16+rng.IntN(400))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(runProgram)
}
