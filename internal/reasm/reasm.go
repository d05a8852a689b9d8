// Package reasm is session-level reassembly: chunks of items arrive in any order on any path and
// leave as whole messages, in item order, each exactly once.
//
// A Reassembler places each chunk's payload straight into its message's buffer: Reserve checks a
// chunk against the chunking rules and the memory budget and returns the bytes to fill, the caller
// reads the payload into them, then Commit (or Cancel, if the read failed). Duplicates — chunks
// already held, being filled, or of messages already delivered — are reported so the caller can
// discard them.
//
// Memory is charged before it is allocated: an item costs Charge(total, chunkSize) from its first
// chunk until the message is taken with Pop. A peer that would exceed the budget gets
// ErrOverBudget. The sender computes the same charge, so a sender that respects the receiver's
// advertised window never triggers it.
//
// Memory is allocated no faster than chunks arrive: an item's message buffer (total × chunk
// size) is allocated only once the chunks reserved for it, times LazyFactor, reach its total;
// until then each chunk gets a buffer of its own, copied into the message buffer when that is
// made. So a peer that sends one small chunk of a large item costs that chunk, not the item.
//
// A Reassembler is not safe for concurrent use; the session serialises calls.
package reasm

import (
	"errors"
	"fmt"

	"github.com/braidnet/braid/internal/wire"
)

// Errors. The returned errors wrap these with detail.
var (
	ErrInvalidChunk = errors.New("reasm: invalid chunk")
	ErrOverBudget   = errors.New("reasm: memory budget exceeded")
)

// LazyFactor bounds how far allocation may run ahead of arrival: an item's message buffer is
// allocated once at least 1/LazyFactor of its chunks have been reserved.
const LazyFactor = 8

// ItemOverhead is charged per item on top of its chunk bytes, so that even empty messages use up
// budget and cannot be sent without bound.
const ItemOverhead = 64

// Charge is what an item of total chunks costs against a budget, at unit bytes per chunk (the
// chunk size, plus what else a receiver may hold per chunk: see Config.ChunkCharge). Sender and
// receiver both use it.
func Charge(total uint32, unit int) int64 {
	return int64(total)*int64(unit) + ItemOverhead
}

// Chunks returns the number of chunks a message of n bytes is cut into: at least one, so that an
// empty message is one empty chunk.
func Chunks(n, chunkSize int) uint32 {
	if n == 0 {
		return 1
	}
	return uint32((n + chunkSize - 1) / chunkSize)
}

// Config sets a Reassembler's rules.
type Config struct {
	ChunkSize int    // size of every chunk but an item's last; the last is 1..ChunkSize (0 if the only one)
	MaxTotal  uint32 // most chunks an item may have
	Budget    int64  // most bytes charged at once

	// ChunkCharge is what each chunk of an item costs against the budget; 0 means ChunkSize. A
	// coded session charges more than the chunk itself: the pieces held while a chunk waits for
	// enough of them to be rebuilt.
	ChunkCharge int

	// Alloc returns a buffer of length n for a message being reassembled, or for one chunk of
	// it; its contents need not be zero, since every byte is overwritten before the message is
	// delivered. Nil means make.
	Alloc func(n int) []byte

	// Free takes back a chunk buffer from Alloc that is no longer needed. Nil means drop it.
	Free func([]byte)
}

// Reassembler collects chunks into messages. The zero value is not usable; see New.
type Reassembler struct {
	cfg     Config
	next    uint64 // id of the next item to deliver
	items   map[uint64]*item
	charged int64
	spare   []*item // delivered items kept for reuse (recycle)
}

type item struct {
	total   uint32
	charge  int64
	buf     []byte            // the message; nil until enough chunks have come (LazyFactor)
	parts   map[uint32][]byte // chunks held on their own while buf is nil, or being filled when it was made
	lastLen int               // payload length of the last chunk; -1 until it is reserved
	have    []uint64          // bitmap of committed chunks
	busy    []uint64          // bitmap of reserved chunks being filled
	count   uint32            // committed chunks
	pending uint32            // reserved chunks
	owners  []owned           // who holds each reservation (ReserveBy): at most one per reader
	subst   map[uint32][]byte // copies that arrived while the chunk was being filled (Offer)

	// Room for the bitmaps of an item of up to 64 chunks and for two owners, so that a
	// small message (most are one chunk) costs no allocation beyond its buffer.
	bits   [2]uint64
	ownBuf [2]owned
}

// owned records the holder of one reservation.
type owned struct {
	chunk uint32
	owner int
}

// spareItems bounds the delivered items a Reassembler keeps for reuse.
const spareItems = 16

// newItem returns an empty item of total chunks, reusing a delivered one if it has one.
func (r *Reassembler) newItem(total uint32, charge int64) *item {
	var it *item
	if n := len(r.spare); n > 0 {
		it = r.spare[n-1]
		r.spare = r.spare[:n-1]
	} else {
		it = new(item)
	}
	it.total, it.charge, it.lastLen = total, charge, -1
	if words := (total + 63) / 64; words == 1 {
		it.have, it.busy = it.bits[0:1:1], it.bits[1:2:2]
	} else {
		it.have, it.busy = make([]uint64, words), make([]uint64, words)
	}
	it.owners = it.ownBuf[:0]
	return it
}

// recycle keeps a delivered item for reuse, cleared. Its buffer has been handed out.
func (r *Reassembler) recycle(it *item) {
	if len(r.spare) < spareItems {
		*it = item{}
		r.spare = append(r.spare, it)
	}
}

// setOwner records owner as the holder of chunk c's reservation.
func (it *item) setOwner(c uint32, owner int) {
	it.owners = append(it.owners, owned{c, owner})
}

// dropOwner forgets the holder of chunk c's reservation, if one was recorded.
func (it *item) dropOwner(c uint32) {
	for i, o := range it.owners {
		if o.chunk == c {
			last := len(it.owners) - 1
			it.owners[i] = it.owners[last]
			it.owners = it.owners[:last]
			return
		}
	}
}

// ownerOf returns the holder of chunk c's reservation.
func (it *item) ownerOf(c uint32) (int, bool) {
	for _, o := range it.owners {
		if o.chunk == c {
			return o.owner, true
		}
	}
	return -1, false
}

// New returns an empty Reassembler expecting item 0 first.
func New(cfg Config) *Reassembler {
	if cfg.Alloc == nil {
		cfg.Alloc = func(n int) []byte { return make([]byte, n) }
	}
	if cfg.Free == nil {
		cfg.Free = func([]byte) {}
	}
	if cfg.ChunkCharge == 0 {
		cfg.ChunkCharge = cfg.ChunkSize
	}
	return &Reassembler{cfg: cfg, items: make(map[uint64]*item)}
}

// Charged returns the bytes currently charged against the budget.
func (r *Reassembler) Charged() int64 { return r.charged }

// Next returns the id of the next item to be delivered.
func (r *Reassembler) Next() uint64 { return r.next }

// Pending returns the number of items partly or wholly received but not yet taken.
func (r *Reassembler) Pending() int { return len(r.items) }

// Check reports whether chunk h with an n-byte payload obeys the chunking rules (wrapping
// ErrInvalidChunk if not), without reserving anything.
func (r *Reassembler) Check(h wire.ChunkHeader, n int) error {
	cs := r.cfg.ChunkSize
	switch {
	case h.Total == 0:
		return invalid(h, n, "total is zero")
	case h.Total > r.cfg.MaxTotal:
		return invalid(h, n, fmt.Sprintf("total above the limit of %d", r.cfg.MaxTotal))
	case h.Chunk >= h.Total:
		return invalid(h, n, "chunk id not below total")
	case n < 0:
		return invalid(h, n, "negative payload length")
	case n > cs:
		return invalid(h, n, fmt.Sprintf("payload larger than the chunk size %d", cs))
	case h.Chunk < h.Total-1 && n != cs:
		return invalid(h, n, fmt.Sprintf("only an item's last chunk may be shorter than %d", cs))
	case h.Chunk == h.Total-1 && h.Total > 1 && n == 0:
		return invalid(h, n, "empty last chunk of a multi-chunk item")
	}
	return nil
}

// Delivered reports whether the item h names has already been delivered (taken with Pop), so that
// any chunk of it is a duplicate.
func (r *Reassembler) Delivered(h wire.ChunkHeader) bool { return h.Item < r.next }

// Reserve checks chunk h with an n-byte payload and returns the slice its payload must be read
// into. dup reports a chunk that is not needed (already held, being filled, or of a delivered
// item); the caller then discards its payload. An error reports a chunk that breaks the rules
// (wrapping ErrInvalidChunk) or would exceed the budget (wrapping ErrOverBudget).
func (r *Reassembler) Reserve(h wire.ChunkHeader, n int) (dst []byte, dup bool, err error) {
	return r.ReserveBy(h, n, -1)
}

// ReserveBy is Reserve recording owner (say, the path reading the payload) as the holder of the
// reservation, for BusyOwner.
func (r *Reassembler) ReserveBy(h wire.ChunkHeader, n, owner int) (dst []byte, dup bool, err error) {
	if err := r.Check(h, n); err != nil {
		return nil, false, err
	}
	if h.Item < r.next {
		return nil, true, nil
	}
	cs := r.cfg.ChunkSize
	it := r.items[h.Item]
	if it == nil {
		charge := Charge(h.Total, r.cfg.ChunkCharge)
		if r.charged+charge > r.cfg.Budget {
			return nil, false, fmt.Errorf("%w: item %d needs %d bytes, %d of %d in use", ErrOverBudget, h.Item, charge, r.charged, r.cfg.Budget)
		}
		r.charged += charge
		it = r.newItem(h.Total, charge)
		if h.Total == 1 {
			it.buf = r.cfg.Alloc(n)
		}
		r.items[h.Item] = it
	} else if it.total != h.Total {
		return nil, false, invalid(h, n, fmt.Sprintf("total changed from %d", it.total))
	}
	last := h.Chunk == h.Total-1
	if last && it.lastLen >= 0 && it.lastLen != n {
		return nil, false, invalid(h, n, fmt.Sprintf("last chunk length changed from %d", it.lastLen))
	}
	w, bit := h.Chunk/64, uint64(1)<<(h.Chunk%64)
	if it.have[w]&bit != 0 || it.busy[w]&bit != 0 {
		return nil, true, nil
	}
	it.busy[w] |= bit
	it.pending++
	if owner >= 0 {
		it.setOwner(h.Chunk, owner)
	}
	if last {
		it.lastLen = n
	}
	if it.buf == nil && uint64(it.count+it.pending)*LazyFactor >= uint64(it.total) {
		r.makeBuffer(it)
	}
	if it.buf == nil {
		part := r.cfg.Alloc(n)[:n:n]
		if it.parts == nil {
			it.parts = make(map[uint32][]byte)
		}
		it.parts[h.Chunk] = part
		return part, false, nil
	}
	off := int(h.Chunk) * cs
	return it.buf[off : off+n : off+n], false, nil
}

// makeBuffer allocates an item's message buffer and moves into it the chunks held on their own
// that are complete; those still being filled move when they are committed.
func (r *Reassembler) makeBuffer(it *item) {
	cs := r.cfg.ChunkSize
	it.buf = r.cfg.Alloc(int(it.total) * cs)
	for c, part := range it.parts {
		if it.have[c/64]&(uint64(1)<<(c%64)) != 0 {
			copy(it.buf[int(c)*cs:], part)
			r.cfg.Free(part)
			delete(it.parts, c)
		}
	}
}

// Commit records that the chunk reserved for h has been filled. It returns the substitute
// offered meanwhile, if any, which is no longer needed: the caller may recycle it.
func (r *Reassembler) Commit(h wire.ChunkHeader) (spare []byte) {
	it := r.items[h.Item]
	if it == nil {
		panic("reasm: Commit without Reserve")
	}
	w, bit := h.Chunk/64, uint64(1)<<(h.Chunk%64)
	if it.busy[w]&bit == 0 {
		panic("reasm: Commit without Reserve")
	}
	it.busy[w] &^= bit
	it.have[w] |= bit
	it.pending--
	it.count++
	it.dropOwner(h.Chunk)
	if part, ok := it.parts[h.Chunk]; ok && it.buf != nil { // filled on its own, the buffer made meanwhile
		copy(it.buf[int(h.Chunk)*r.cfg.ChunkSize:], part)
		r.cfg.Free(part)
		delete(it.parts, h.Chunk)
	}
	spare = it.subst[h.Chunk]
	delete(it.subst, h.Chunk)
	return spare
}

// Cancel forgets the reservation for h, whose payload could not be read. If a copy of the chunk
// was offered meanwhile, it takes the reservation's place: committed reports that the chunk is
// now in, and spare is the copy's buffer, for the caller to recycle. Otherwise a later copy of
// the chunk is accepted.
func (r *Reassembler) Cancel(h wire.ChunkHeader) (committed bool, spare []byte) {
	it := r.items[h.Item]
	if it == nil {
		return false, nil
	}
	w, bit := h.Chunk/64, uint64(1)<<(h.Chunk%64)
	if it.busy[w]&bit == 0 {
		return false, nil
	}
	it.busy[w] &^= bit
	it.pending--
	it.dropOwner(h.Chunk)
	if part, ok := it.parts[h.Chunk]; ok { // the failed read's own buffer
		r.cfg.Free(part)
		delete(it.parts, h.Chunk)
	}
	sub, ok := it.subst[h.Chunk]
	if !ok {
		return false, nil
	}
	delete(it.subst, h.Chunk)
	it.have[w] |= bit
	it.count++
	if it.buf == nil { // the copy becomes the chunk's own buffer
		if it.parts == nil {
			it.parts = make(map[uint32][]byte)
		}
		it.parts[h.Chunk] = sub
		return true, nil
	}
	copy(it.buf[int(h.Chunk)*r.cfg.ChunkSize:], sub)
	return true, sub
}

// BusyOwner reports whether the chunk h names is reserved and being filled, and by whom (the
// owner given to ReserveBy, or -1).
func (r *Reassembler) BusyOwner(h wire.ChunkHeader) (owner int, busy bool) {
	it := r.items[h.Item]
	if it == nil || h.Chunk >= it.total {
		return -1, false
	}
	if it.busy[h.Chunk/64]&(uint64(1)<<(h.Chunk%64)) == 0 {
		return -1, false
	}
	if o, ok := it.ownerOf(h.Chunk); ok {
		return o, true
	}
	return -1, true
}

// Offered reports whether a copy of the chunk h names was offered (Offer) and waits for its
// reservation to end.
func (r *Reassembler) Offered(h wire.ChunkHeader) bool {
	it := r.items[h.Item]
	if it == nil {
		return false
	}
	_, ok := it.subst[h.Chunk]
	return ok
}

// Offer hands over a complete copy of a chunk that is reserved and being filled from elsewhere
// (a retransmission that overtook a stalled original). If the reservation is later cancelled,
// the copy takes its place. It returns false, keeping nothing, if the chunk is not busy or data
// has the wrong length. The memory of offered copies (at most one per reserved chunk) is not
// charged to the budget.
func (r *Reassembler) Offer(h wire.ChunkHeader, data []byte) bool {
	it := r.items[h.Item]
	if it == nil || h.Chunk >= it.total || it.busy[h.Chunk/64]&(uint64(1)<<(h.Chunk%64)) == 0 {
		return false
	}
	want := r.cfg.ChunkSize
	if h.Chunk == it.total-1 {
		want = it.lastLen
		if it.total == 1 {
			want = len(it.buf)
		}
	}
	if len(data) != want {
		return false
	}
	if _, dup := it.subst[h.Chunk]; dup {
		return false
	}
	if it.subst == nil {
		it.subst = make(map[uint32][]byte)
	}
	it.subst[h.Chunk] = data
	return true
}

// Ready reports whether Pop would return a message.
func (r *Reassembler) Ready() bool {
	it := r.items[r.next]
	return it != nil && it.count == it.total
}

// Pop returns the next message in item order if all its chunks are in, and releases its charge.
// The returned slice is the caller's.
func (r *Reassembler) Pop() (msg []byte, charge int64, ok bool) {
	it := r.items[r.next]
	if it == nil || it.count != it.total {
		return nil, 0, false
	}
	if it.buf == nil { // not reached: the reservation of the chunks made it; kept safe anyway
		r.makeBuffer(it)
	}
	delete(r.items, r.next)
	r.next++
	r.charged -= it.charge
	n := len(it.buf)
	if it.total > 1 {
		n = int(it.total-1)*r.cfg.ChunkSize + it.lastLen
	}
	msg, charge = it.buf[:n:n], it.charge
	r.recycle(it)
	return msg, charge, true
}

// Missing returns how many chunks of the next item have not been committed, or -1 when no chunk
// of it has arrived. Sessions use it in diagnostics.
func (r *Reassembler) Missing() int {
	it := r.items[r.next]
	if it == nil {
		return -1
	}
	return int(it.total - it.count)
}

func invalid(h wire.ChunkHeader, n int, why string) error {
	return fmt.Errorf("%w: item %d chunk %d/%d with %d bytes: %s", ErrInvalidChunk, h.Item, h.Chunk, h.Total, n, why)
}
