package reasm

import (
	"bytes"
	"errors"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/braidnet/braid/internal/wire"
)

func hdr(item uint64, chunk, total uint32) wire.ChunkHeader {
	return wire.ChunkHeader{Item: item, Chunk: chunk, Total: total}
}

// put delivers one chunk: Reserve, fill, Commit.
func put(t testing.TB, r *Reassembler, h wire.ChunkHeader, payload []byte) (dup bool, err error) {
	t.Helper()
	dst, dup, err := r.Reserve(h, len(payload))
	if err != nil || dup {
		if dst != nil {
			t.Fatalf("Reserve(%+v) returned a buffer with dup=%v err=%v", h, dup, err)
		}
		return dup, err
	}
	if len(dst) != len(payload) || cap(dst) != len(payload) {
		t.Fatalf("Reserve(%+v, %d): len %d cap %d", h, len(payload), len(dst), cap(dst))
	}
	copy(dst, payload)
	r.Commit(h)
	return false, nil
}

func mustPut(t testing.TB, r *Reassembler, h wire.ChunkHeader, payload []byte) {
	t.Helper()
	if dup, err := put(t, r, h, payload); dup || err != nil {
		t.Fatalf("put(%+v, %d bytes): dup=%v err=%v", h, len(payload), dup, err)
	}
}

// split cuts msg into the payloads of its chunks.
func split(msg []byte, cs int) [][]byte {
	n := Chunks(len(msg), cs)
	out := make([][]byte, n)
	for i := range out {
		lo := i * cs
		out[i] = msg[lo:min(lo+cs, len(msg))]
	}
	return out
}

// checkInternal verifies the Reassembler's bookkeeping against itself.
func checkInternal(t testing.TB, r *Reassembler) {
	t.Helper()
	var sum int64
	for id, it := range r.items {
		if id < r.next {
			t.Fatalf("item %d held below next %d", id, r.next)
		}
		if popcount(it.have) != int(it.count) || popcount(it.busy) != int(it.pending) {
			t.Fatalf("item %d: count %d pending %d, bitmaps %d %d", id, it.count, it.pending, popcount(it.have), popcount(it.busy))
		}
		for w := range it.have {
			if it.have[w]&it.busy[w] != 0 {
				t.Fatalf("item %d: chunk both held and busy", id)
			}
		}
		if it.count+it.pending > it.total {
			t.Fatalf("item %d: %d+%d chunks of %d", id, it.count, it.pending, it.total)
		}
		if it.charge != Charge(it.total, r.cfg.ChunkSize) {
			t.Fatalf("item %d: charge %d", id, it.charge)
		}
		sum += it.charge
	}
	if sum != r.charged || r.charged < 0 || r.charged > r.cfg.Budget {
		t.Fatalf("charged %d, items sum to %d, budget %d", r.charged, sum, r.cfg.Budget)
	}
}

func TestChargeAndChunks(t *testing.T) {
	if Charge(1, 8) != 8+ItemOverhead || Charge(3, 1<<16) != 3<<16+ItemOverhead || ItemOverhead != 64 {
		t.Error("Charge")
	}
	if got := Charge(1<<32-1, 1<<20); got != int64(1<<32-1)<<20+64 {
		t.Errorf("Charge does not overflow: %d", got)
	}
	for _, c := range []struct {
		n, cs int
		want  uint32
	}{{0, 8, 1}, {1, 8, 1}, {8, 8, 1}, {9, 8, 2}, {16, 8, 2}, {17, 8, 3}, {1 << 20, 1 << 16, 16}} {
		if got := Chunks(c.n, c.cs); got != c.want {
			t.Errorf("Chunks(%d, %d) = %d, want %d", c.n, c.cs, got, c.want)
		}
	}
}

func TestInvalidChunks(t *testing.T) {
	cfg := Config{ChunkSize: 8, MaxTotal: 4, Budget: 1 << 20}
	full := bytes.Repeat([]byte{'x'}, 8)
	type step struct {
		h wire.ChunkHeader
		n int
	}
	cases := []struct {
		name string
		pre  []step // valid chunks delivered first
		h    wire.ChunkHeader
		n    int
	}{
		{"total zero", nil, hdr(0, 0, 0), 0},
		{"total zero with payload", nil, hdr(0, 0, 0), 8},
		{"total above MaxTotal", nil, hdr(0, 0, 5), 8},
		{"total far above MaxTotal", nil, hdr(0, 0, 1<<32-1), 8},
		{"chunk equal to total", nil, hdr(0, 2, 2), 8},
		{"chunk above total", nil, hdr(0, 7, 2), 8},
		{"chunk max", nil, hdr(0, 1<<32-1, 4), 8},
		{"payload above chunk size", nil, hdr(0, 0, 1), 9},
		{"last chunk above chunk size", nil, hdr(0, 1, 2), 9},
		{"non-last chunk above chunk size", nil, hdr(0, 0, 2), 9},
		{"non-last chunk short", nil, hdr(0, 0, 2), 7},
		{"non-last chunk empty", nil, hdr(0, 1, 3), 0},
		{"empty last chunk", nil, hdr(0, 1, 2), 0},
		{"empty last chunk of 4", nil, hdr(0, 3, 4), 0},
		{"negative payload", nil, hdr(0, 1, 2), -1},
		{"negative payload single", nil, hdr(0, 0, 1), -1},
		{"total changes up", []step{{hdr(0, 0, 2), 8}}, hdr(0, 1, 3), 8},
		{"total changes down", []step{{hdr(0, 0, 3), 8}}, hdr(0, 0, 2), 8},
		{"total changes on later item", []step{{hdr(0, 0, 1), 3}, {hdr(1, 0, 2), 8}}, hdr(1, 1, 3), 8},
		{"total changes to one", []step{{hdr(0, 1, 2), 3}}, hdr(0, 0, 1), 3},
		{"last length changes", []step{{hdr(0, 1, 2), 3}}, hdr(0, 1, 2), 4},
		{"last length changes to full", []step{{hdr(0, 1, 2), 3}}, hdr(0, 1, 2), 8},
		{"single length changes", []step{{hdr(0, 0, 1), 3}}, hdr(0, 0, 1), 5},
		{"single length changes to empty", []step{{hdr(0, 0, 1), 3}}, hdr(0, 0, 1), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := New(cfg)
			for _, s := range c.pre {
				mustPut(t, r, s.h, full[:s.n])
			}
			charged, pending := r.Charged(), r.Pending()
			dst, dup, err := r.Reserve(c.h, c.n)
			if !errors.Is(err, ErrInvalidChunk) || dup || dst != nil {
				t.Fatalf("Reserve(%+v, %d) = %d bytes, dup=%v, err=%v; want ErrInvalidChunk", c.h, c.n, len(dst), dup, err)
			}
			if errors.Is(err, ErrOverBudget) {
				t.Fatalf("error %v matches both sentinels", err)
			}
			if r.Charged() != charged || r.Pending() != pending {
				t.Fatalf("rejected chunk changed state: charged %d→%d, pending %d→%d", charged, r.Charged(), pending, r.Pending())
			}
			checkInternal(t, r)
		})
	}
	// Invalid rules apply even to items already delivered.
	r := New(cfg)
	mustPut(t, r, hdr(0, 0, 1), []byte("abc"))
	if _, _, ok := r.Pop(); !ok {
		t.Fatal("no message")
	}
	if _, _, err := r.Reserve(hdr(0, 0, 0), 0); !errors.Is(err, ErrInvalidChunk) {
		t.Errorf("total 0 of a delivered item: %v", err)
	}
}

// TestLastLengthChangeWhileReserved: a second copy of a last chunk with another length is invalid
// even before the first copy is committed, and even after the first copy was cancelled.
func TestLastLengthChangeWhileReserved(t *testing.T) {
	r := New(Config{ChunkSize: 8, MaxTotal: 4, Budget: 1 << 20})
	h := hdr(0, 1, 2)
	if _, _, err := r.Reserve(h, 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Reserve(h, 5); !errors.Is(err, ErrInvalidChunk) {
		t.Fatalf("reserved: %v", err)
	}
	r.Cancel(h)
	if _, _, err := r.Reserve(h, 5); !errors.Is(err, ErrInvalidChunk) {
		t.Fatalf("cancelled: %v", err)
	}
	// The same length is still fine.
	mustPut(t, r, h, []byte("xyz"))
	checkInternal(t, r)
}

func TestBudget(t *testing.T) {
	const cs = 8
	budget := Charge(2, cs) + Charge(1, cs)
	r := New(Config{ChunkSize: cs, MaxTotal: 16, Budget: budget})

	mustPut(t, r, hdr(0, 0, 2), bytes.Repeat([]byte{'a'}, cs))
	mustPut(t, r, hdr(1, 0, 1), []byte("b"))
	if r.Charged() != budget {
		t.Fatalf("charged %d, want %d", r.Charged(), budget)
	}

	// A new item does not fit: rejected, and nothing is charged or held for it.
	for _, h := range []wire.ChunkHeader{hdr(2, 0, 1), hdr(2, 0, 16), hdr(2, 15, 16), hdr(1<<40, 0, 1)} {
		n := 1
		if h.Chunk < h.Total-1 {
			n = cs
		}
		dst, dup, err := r.Reserve(h, n)
		if !errors.Is(err, ErrOverBudget) || errors.Is(err, ErrInvalidChunk) || dup || dst != nil {
			t.Fatalf("Reserve(%+v) = %d bytes, dup=%v, err=%v; want ErrOverBudget", h, len(dst), dup, err)
		}
		if r.Charged() != budget || r.Pending() != 2 {
			t.Fatalf("after ErrOverBudget: charged %d pending %d", r.Charged(), r.Pending())
		}
		if _, held := r.items[h.Item]; held {
			t.Fatalf("item %d allocated despite ErrOverBudget", h.Item)
		}
	}
	checkInternal(t, r)

	// More chunks of an item already held are not charged again.
	mustPut(t, r, hdr(0, 1, 2), []byte("c"))
	if r.Charged() != budget {
		t.Fatalf("second chunk charged: %d", r.Charged())
	}

	// Pop releases exactly the item's charge; then item 2 fits.
	msg, charge, ok := r.Pop()
	if !ok || charge != Charge(2, cs) || string(msg) != "aaaaaaaac" {
		t.Fatalf("Pop = %q, %d, %v", msg, charge, ok)
	}
	if r.Charged() != Charge(1, cs) {
		t.Fatalf("after Pop charged %d", r.Charged())
	}
	mustPut(t, r, hdr(2, 0, 1), []byte("d"))
	for _, want := range []string{"b", "d"} {
		msg, charge, ok := r.Pop()
		if !ok || charge != Charge(1, cs) || string(msg) != want {
			t.Fatalf("Pop = %q, %d, %v; want %q", msg, charge, ok, want)
		}
	}
	if r.Charged() != 0 || r.Pending() != 0 || r.Next() != 3 {
		t.Fatalf("at end: charged %d pending %d next %d", r.Charged(), r.Pending(), r.Next())
	}

	// An item bigger than the whole budget can never be accepted.
	small := New(Config{ChunkSize: cs, MaxTotal: 16, Budget: Charge(1, cs) - 1})
	if _, _, err := small.Reserve(hdr(0, 0, 1), 0); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("item above budget: %v", err)
	}
	if small.Charged() != 0 || small.Pending() != 0 {
		t.Fatal("state changed")
	}
}

// TestOverBudgetAllocatesNothing: a rejected item costs no buffer, only the error.
func TestOverBudgetAllocatesNothing(t *testing.T) {
	r := New(Config{ChunkSize: 1 << 20, MaxTotal: 64, Budget: 1 << 20})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, _, err := r.Reserve(hdr(0, 0, 64), 1<<20); !errors.Is(err, ErrOverBudget) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// Each attempt would allocate 64 MiB if the buffer came before the budget check.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("rejected reservations allocated %d bytes", n)
	}
}

func TestDuplicates(t *testing.T) {
	r := New(Config{ChunkSize: 4, MaxTotal: 8, Budget: 1 << 20})
	wantDup := func(h wire.ChunkHeader, n int) {
		t.Helper()
		charged := r.Charged()
		dst, dup, err := r.Reserve(h, n)
		if !dup || err != nil || dst != nil {
			t.Fatalf("Reserve(%+v, %d) = %d bytes, dup=%v, err=%v; want dup", h, n, len(dst), dup, err)
		}
		if r.Charged() != charged {
			t.Fatal("duplicate charged")
		}
		checkInternal(t, r)
	}

	// The same chunk twice.
	mustPut(t, r, hdr(0, 0, 2), []byte("abcd"))
	wantDup(hdr(0, 0, 2), 4)

	// A chunk whose first copy is reserved but not yet committed.
	h := hdr(0, 1, 2)
	dst, dup, err := r.Reserve(h, 2)
	if dup || err != nil {
		t.Fatal(dup, err)
	}
	wantDup(h, 2)
	if r.Ready() {
		t.Fatal("ready with a chunk still being filled")
	}
	copy(dst, "ef")
	r.Commit(h)
	wantDup(h, 2)

	// Chunks of a delivered item, whatever their (valid) shape.
	msg, _, ok := r.Pop()
	if !ok || string(msg) != "abcdef" {
		t.Fatalf("Pop = %q, %v", msg, ok)
	}
	wantDup(hdr(0, 0, 2), 4)
	wantDup(hdr(0, 1, 2), 2)
	wantDup(hdr(0, 0, 1), 3)
	wantDup(hdr(0, 2, 3), 1)

	// Cancel forgets a reservation; a later copy is accepted.
	h = hdr(1, 0, 1)
	dst, _, err = r.Reserve(h, 3)
	if err != nil {
		t.Fatal(err)
	}
	copy(dst, "bad")
	r.Cancel(h)
	if r.Ready() {
		t.Fatal("ready after Cancel")
	}
	checkInternal(t, r)
	if r.Pending() != 1 || r.Charged() != Charge(1, 4) {
		t.Fatalf("cancelled item: pending %d charged %d", r.Pending(), r.Charged())
	}
	mustPut(t, r, h, []byte("xyz"))
	wantDup(h, 3)
	if msg, _, ok := r.Pop(); !ok || string(msg) != "xyz" {
		t.Fatalf("Pop = %q, %v", msg, ok)
	}

	// Cancel of something never reserved does nothing.
	r.Cancel(hdr(5, 0, 1))
	r.Cancel(hdr(1, 0, 1))
	mustPut(t, r, hdr(2, 0, 2), []byte("1234"))
	r.Cancel(hdr(2, 0, 2)) // committed, not reserved: no effect
	r.Cancel(hdr(2, 1, 2)) // never reserved
	wantDup(hdr(2, 0, 2), 4)
	mustPut(t, r, hdr(2, 1, 2), []byte("5"))
	if msg, _, ok := r.Pop(); !ok || string(msg) != "12345" {
		t.Fatalf("Pop = %q, %v", msg, ok)
	}
	if r.Charged() != 0 || r.Pending() != 0 {
		t.Fatalf("charged %d pending %d", r.Charged(), r.Pending())
	}
}

func TestCommitWithoutReservePanics(t *testing.T) {
	r := New(Config{ChunkSize: 4, MaxTotal: 8, Budget: 1 << 20})
	mustPanic := func(f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		f()
	}
	mustPanic(func() { r.Commit(hdr(0, 0, 2)) })
	mustPut(t, r, hdr(0, 0, 2), []byte("abcd"))
	mustPanic(func() { r.Commit(hdr(0, 0, 2)) })
	mustPanic(func() { r.Commit(hdr(0, 1, 2)) })
}

func TestEmptyMessage(t *testing.T) {
	r := New(Config{ChunkSize: 8, MaxTotal: 4, Budget: 1 << 20})
	dst, dup, err := r.Reserve(hdr(0, 0, 1), 0)
	if err != nil || dup || len(dst) != 0 {
		t.Fatalf("Reserve = %d bytes, %v, %v", len(dst), dup, err)
	}
	if r.Charged() != Charge(1, 8) {
		t.Fatalf("empty message charged %d", r.Charged())
	}
	r.Commit(hdr(0, 0, 1))
	msg, charge, ok := r.Pop()
	if !ok || len(msg) != 0 || charge != Charge(1, 8) {
		t.Fatalf("Pop = %q, %d, %v", msg, charge, ok)
	}
	if r.Charged() != 0 || r.Next() != 1 {
		t.Fatalf("charged %d next %d", r.Charged(), r.Next())
	}
}

func TestInOrderDelivery(t *testing.T) {
	r := New(Config{ChunkSize: 4, MaxTotal: 8, Budget: 1 << 20})
	if r.Ready() || r.Missing() != -1 || r.Next() != 0 {
		t.Fatal("fresh reassembler not empty")
	}
	mustPut(t, r, hdr(1, 0, 1), []byte("one"))
	if _, _, ok := r.Pop(); ok || r.Ready() {
		t.Fatal("item 1 delivered before item 0")
	}
	if r.Missing() != -1 || r.Pending() != 1 {
		t.Fatalf("Missing %d Pending %d", r.Missing(), r.Pending())
	}
	mustPut(t, r, hdr(0, 1, 2), []byte("ro"))
	if _, _, ok := r.Pop(); ok || r.Missing() != 1 {
		t.Fatalf("item 0 delivered incomplete (missing %d)", r.Missing())
	}
	mustPut(t, r, hdr(0, 0, 2), []byte("zero"))
	if !r.Ready() || r.Missing() != 0 {
		t.Fatal("item 0 complete but not ready")
	}
	for _, want := range []string{"zeroro", "one"} {
		msg, _, ok := r.Pop()
		if !ok || string(msg) != want {
			t.Fatalf("Pop = %q, %v; want %q", msg, ok, want)
		}
	}
	if _, _, ok := r.Pop(); ok || r.Next() != 2 || r.Pending() != 0 || r.Charged() != 0 {
		t.Fatal("extra message or state left")
	}
}

func TestAllocationSizes(t *testing.T) {
	const cs = 16
	r := New(Config{ChunkSize: cs, MaxTotal: 8, Budget: 1 << 20})
	for item, n := range []int{0, 1, 5, cs} {
		dst, _, err := r.Reserve(hdr(uint64(item), 0, 1), n)
		if err != nil || len(dst) != n || cap(dst) != n {
			t.Fatalf("single chunk of %d: len %d cap %d, %v", n, len(dst), cap(dst), err)
		}
		if b := r.items[uint64(item)].buf; cap(b) != n {
			t.Fatalf("single chunk of %d: buffer cap %d", n, cap(b))
		}
		r.Commit(hdr(uint64(item), 0, 1))
		msg, _, ok := r.Pop()
		if !ok || len(msg) != n || cap(msg) != n {
			t.Fatalf("single chunk of %d: message len %d cap %d", n, len(msg), cap(msg))
		}
	}
	// Multi-chunk: each chunk's slice is capped at its own length so a fill cannot spill into
	// the next chunk, and the message is capped at its length.
	dst, _, _ := r.Reserve(hdr(4, 0, 3), cs)
	if len(dst) != cs || cap(dst) != cs {
		t.Fatalf("first chunk len %d cap %d", len(dst), cap(dst))
	}
	r.Commit(hdr(4, 0, 3))
	dst, _, _ = r.Reserve(hdr(4, 2, 3), 3)
	if len(dst) != 3 || cap(dst) != 3 {
		t.Fatalf("last chunk len %d cap %d", len(dst), cap(dst))
	}
	r.Commit(hdr(4, 2, 3))
	mustPut(t, r, hdr(4, 1, 3), make([]byte, cs))
	msg, _, ok := r.Pop()
	if !ok || len(msg) != 2*cs+3 || cap(msg) != 2*cs+3 {
		t.Fatalf("message len %d cap %d", len(msg), cap(msg))
	}
}

// TestSmallMessagesAllocateOnlyTheirBuffers: a message of up to 64 chunks, reserved by an owner
// (a path), costs no allocation in the Reassembler beyond its buffer, once a first one has made
// the item map's room: the message stream of a request/response session takes no other heap.
func TestSmallMessagesAllocateOnlyTheirBuffers(t *testing.T) {
	buf := make([]byte, 64)
	r := New(Config{ChunkSize: 16, MaxTotal: 64, Budget: 1 << 20, Alloc: func(n int) []byte { return buf[:n] }})
	next := uint64(0)
	deliver := func(total uint32) {
		for c := range total {
			h := hdr(next, c, total)
			if _, _, err := r.ReserveBy(h, 16, int(c%3)); err != nil {
				t.Fatal(err)
			}
			if o, busy := r.BusyOwner(h); !busy || o != int(c%3) {
				t.Fatalf("chunk %d: owner %d busy %v", c, o, busy)
			}
			r.Commit(h)
			if _, busy := r.BusyOwner(h); busy {
				t.Fatalf("chunk %d still busy", c)
			}
		}
		if _, _, ok := r.Pop(); !ok {
			t.Fatal("not delivered")
		}
		next++
	}
	deliver(1)
	deliver(4)
	for _, total := range []uint32{1, 4} {
		if allocs := testing.AllocsPerRun(100, func() { deliver(total) }); allocs != 0 {
			t.Errorf("%d-chunk message: %v allocations", total, allocs)
		}
	}
}

// TestRoundTripRandom: random messages, split into chunks that are shuffled, duplicated and
// sometimes reserved then cancelled, arrive byte-exact, in order, exactly once.
func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		cs := []int{1, 3, 8, 64, 1000}[rng.IntN(5)]
		maxChunks := 1 + rng.IntN(5)
		cfg := Config{ChunkSize: cs, MaxTotal: uint32(maxChunks), Budget: 1 << 40}
		nmsg := 1 + rng.IntN(20)
		msgs := make([][]byte, nmsg)
		type chunk struct {
			h       wire.ChunkHeader
			payload []byte
		}
		var chunks []chunk
		for i := range msgs {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = rng.IntN(2) // 0 or 1 bytes
			case 1:
				n = cs * (1 + rng.IntN(maxChunks)) // exact multiple
			default:
				n = rng.IntN(maxChunks*cs + 1)
			}
			msgs[i] = make([]byte, n)
			for j := range msgs[i] {
				msgs[i][j] = byte(rng.Uint32())
			}
			parts := split(msgs[i], cs)
			for c, p := range parts {
				ch := chunk{hdr(uint64(i), uint32(c), uint32(len(parts))), p}
				chunks = append(chunks, ch)
				for rng.IntN(4) == 0 {
					chunks = append(chunks, ch)
				}
			}
		}
		rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })

		r := New(cfg)
		var got [][]byte
		held := map[wire.ChunkHeader]bool{}
		for _, ch := range chunks {
			if rng.IntN(8) == 0 { // a copy whose payload read fails
				dst, dup, err := r.Reserve(ch.h, len(ch.payload))
				if err != nil {
					t.Fatalf("iter %d: Reserve(%+v): %v", iter, ch.h, err)
				}
				if !dup {
					for k := range dst {
						dst[k] = 0xee
					}
					r.Cancel(ch.h)
				}
			}
			dup, err := put(t, r, ch.h, ch.payload)
			if err != nil {
				t.Fatalf("iter %d: put(%+v): %v", iter, ch.h, err)
			}
			wasHeld := held[ch.h] || ch.h.Item < uint64(len(got))
			if dup != wasHeld {
				t.Fatalf("iter %d: %+v dup=%v, already held=%v", iter, ch.h, dup, wasHeld)
			}
			held[ch.h] = true
			for {
				msg, _, ok := r.Pop()
				if !ok {
					break
				}
				got = append(got, msg)
			}
			checkInternal(t, r)
		}
		if len(got) != nmsg {
			t.Fatalf("iter %d: delivered %d of %d messages", iter, len(got), nmsg)
		}
		for i := range got {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Fatalf("iter %d: message %d differs (%d bytes, want %d)", iter, i, len(got[i]), len(msgs[i]))
			}
		}
		if r.Charged() != 0 || r.Pending() != 0 || r.Next() != uint64(nmsg) {
			t.Fatalf("iter %d: left charged %d pending %d next %d", iter, r.Charged(), r.Pending(), r.Next())
		}
	}
}

func BenchmarkReassemble(b *testing.B) {
	const cs, size = 64 << 10, 1 << 20
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i * 7)
	}
	parts := split(src, cs)
	r := New(Config{ChunkSize: cs, MaxTotal: 1 << 10, Budget: 4 * size})
	b.SetBytes(size)
	b.ReportAllocs()
	var item uint64
	for b.Loop() {
		for c, p := range parts {
			h := hdr(item, uint32(c), uint32(len(parts)))
			dst, _, err := r.Reserve(h, len(p))
			if err != nil {
				b.Fatal(err)
			}
			copy(dst, p)
			r.Commit(h)
		}
		if msg, _, ok := r.Pop(); !ok || len(msg) != size {
			b.Fatal("no message")
		}
		item++
	}
}

// BenchmarkCopyBaseline copies the same chunks into a preallocated buffer: the floor for
// BenchmarkReassemble, which in addition allocates each message and keeps the books.
func BenchmarkCopyBaseline(b *testing.B) {
	const cs, size = 64 << 10, 1 << 20
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i * 7)
	}
	parts := split(src, cs)
	dst := make([]byte, size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		for c, p := range parts {
			copy(dst[c*cs:], p)
		}
	}
}

// popcount counts the set bits of a bitmap, to check bitmaps against counters.
func popcount(words []uint64) int {
	n := 0
	for _, w := range words {
		n += bits.OnesCount64(w)
	}
	return n
}
