package sched

// Replicator is implemented by policies that want chunks sent on more than one path. A session
// checks for it with a type assertion on its Scheduler, once per chunk or once per session.
//
// The contract, when Replicate returns true:
//
//   - Pick still chooses one path, the primary, exactly as for any policy; the chunk is routed
//     there as usual, with the usual waiting for room, failover and retransmission. Pick returning
//     -1 means no copy either.
//   - In addition, the session queues a copy of the chunk, with the same sequence number, on
//     every other path in the same view for which [HasRoom](view[j], size) is true. Copies are
//     best effort: the session never waits for room for a copy, skips a path whose queue is
//     full, and does not retransmit a lost copy (the primary's own retransmission covers it).
//   - The chunk counts as delivered when any copy is acknowledged; the receiver discards the
//     duplicates as it discards any repeated chunk.
//   - Copies consume capacity on every path, so aggregate throughput is at best that of the
//     fastest path; the gain is latency and resilience (a chunk survives the loss or stall of all
//     but one of its paths without waiting for a retransmission timeout).
//
// When Replicate returns false the policy is an ordinary single-path one.
type Replicator interface {
	Scheduler
	// Replicate reports whether the session should copy each chunk to the other live paths
	// with room, besides the one Pick chose.
	Replicate() bool
}

// Redundant marks a session as sending every chunk on every live path with room: it implements
// [Replicator], with Replicate always true, and its Pick, which chooses the primary path, is
// [Adaptive]'s: the path where the chunk would be delivered first. The copies on the other paths
// are the session's job, under the contract [Replicator] documents.
//
// Pick is O(len(paths)) and does not allocate. A Redundant must not be copied after first use.
type Redundant struct {
	rot rotation
}

// Name implements Scheduler.
func (*Redundant) Name() string { return RedundantName }

// Pick implements Scheduler: the primary path for a chunk of size bytes, chosen as [Adaptive]
// does, or -1 if no path is live.
func (r *Redundant) Pick(paths []Path, size int) int {
	return pickEarliest(paths, size, &r.rot)
}

// Replicate implements Replicator: it is always true.
func (*Redundant) Replicate() bool { return true }
