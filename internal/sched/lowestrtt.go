package sched

// LowestRTT sends each chunk on the live path with the lowest SRTT that has room for it, as Linux
// MPTCP's default scheduler sends on the lowest-RTT subflow with congestion window to spare.
//
// A path has room while its backlog, QueuedBytes + InFlight, is below its cap (see [HasRoom]):
//
//	cap = max(2*size, min(2*DeliveryRate*SRTT, 32 MiB))
//
// Twice the bandwidth-delay product keeps the path's pipe full with headroom for its rate to
// grow (a path capped at exactly what it delivers could never be measured faster); the floor
// of two chunks lets a path without measurements, or with a tiny product, still carry data and
// get measured; the ceiling bounds what one path can hoard on an absurd estimate.
//
// A path without an RTT sample counts as having the lowest RTT, so new paths are tried (and
// measured) first; its cap is then the two-chunk floor. Paths with equal SRTT are taken in turn
// by Index. If no live path has room, Pick returns the live path with the fewest QueuedBytes
// (ties: lower SRTT, then in turn), and the session waits on it as it would on any full path.
//
// Unlike [Adaptive], LowestRTT ignores delivery rates except through the cap: it fills the
// lowest-RTT path first and spills onto slower ones, which keeps latency low for light traffic
// but can deliver chunks out of order when a spill goes to a slow path.
//
// Pick is O(len(paths)) and does not allocate. A LowestRTT must not be copied after first use.
type LowestRTT struct {
	rot rotation
}

// Name implements Scheduler.
func (*LowestRTT) Name() string { return LowestRTTName }

// Pick implements Scheduler: the lowest-SRTT live path with room, else the live path with the
// fewest queued bytes, else -1.
func (l *LowestRTT) Pick(paths []Path, size int) int {
	best, fallback := -1, -1
	for i := range paths {
		p := &paths[i]
		if !p.Live {
			continue
		}
		rtt := max(p.SRTT, 0)
		if HasRoom(*p, size) {
			if best < 0 {
				best = i
				continue
			}
			bestRTT := max(paths[best].SRTT, 0)
			if rtt < bestRTT || (rtt == bestRTT && l.rot.before(p.Index, paths[best].Index)) {
				best = i
			}
			continue
		}
		if best >= 0 {
			continue // only matters while no path with room has been seen
		}
		if fallback < 0 {
			fallback = i
			continue
		}
		f := &paths[fallback]
		q, fq := max(p.QueuedBytes, 0), max(f.QueuedBytes, 0)
		frtt := max(f.SRTT, 0)
		if q < fq || (q == fq && (rtt < frtt || (rtt == frtt && l.rot.before(p.Index, f.Index)))) {
			fallback = i
		}
	}
	if best < 0 {
		best = fallback
	}
	if best >= 0 {
		l.rot.picked(paths[best].Index)
	}
	return best
}

const (
	// roomGain is how many bandwidth-delay products a path may hold before it has no room.
	roomGain = 2
	// roomChunks is the floor of a path's cap, in chunks.
	roomChunks = 2
	// maxRoom is the ceiling of a path's cap in bytes, unless the floor is higher.
	maxRoom = 32 << 20
)

// HasRoom reports whether p is live and its backlog, QueuedBytes + InFlight, is below its cap for
// chunks of size bytes: max(2*size, min(2*DeliveryRate*SRTT, 32 MiB)). A path without a rate or
// RTT sample has the floor, two chunks. This is the "room" of [LowestRTT], and the test a session
// applies to decide which paths get copies of a chunk under a [Replicator].
func HasRoom(p Path, size int) bool {
	if !p.Live {
		return false
	}
	bdp := rateOf(&p) * max(p.SRTT, 0).Seconds()
	limit := max(roomChunks*float64(max(size, 0)), min(roomGain*bdp, maxRoom))
	return bytesOf(p.QueuedBytes)+bytesOf(p.InFlight) < limit
}
