package session

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/braidnet/braid/internal/sched"
	"github.com/braidnet/braid/internal/wire"
)

// A path's measurements (its RTT estimate and RTO, stall and recovery, bytes in flight and what
// they deliver), what the scheduler and Stats see of it, its logging, and the TCP socket under
// it.

// rtt returns the path's round-trip estimate.
func (p *path) rtt() rttEstimate {
	p.estMu.Lock()
	defer p.estMu.Unlock()
	return p.est
}

// sampleRTT adds a round-trip sample r to the path's estimate; resetBackoff also ends the RTO's
// doubling (a sample from an acknowledgement; a PONG's does not, as RFC 6298 5.7 keeps it for
// data). A PONG's sample on a path with nothing in flight or queued is an idle one
// (rttEstimate.sampleIdle).
func (p *path) sampleRTT(r time.Duration, resetBackoff bool) {
	now := p.eng.clock()
	idle := !resetBackoff && p.inflight.Load() <= 0 && p.queued.Load() <= 0
	p.estMu.Lock()
	defer p.estMu.Unlock()
	if idle {
		var restart bool
		if p.est, restart = p.est.sampleIdle(r, now); restart {
			p.rttRestarted.Store(true)
		}
	} else {
		p.est = p.est.sample(r, now)
	}
	if resetBackoff && r > 0 {
		p.backoff = 0
	}
}

// rto is the path's retransmission timeout, at least floor.
func (p *path) rto(floor time.Duration) time.Duration {
	p.estMu.Lock()
	defer p.estMu.Unlock()
	return p.est.rto(floor, p.backoff)
}

// backOff doubles the path's RTO (an expiry).
func (p *path) backOff() {
	p.estMu.Lock()
	defer p.estMu.Unlock()
	p.backoff++
}

// backoffs returns the RTO doublings since the last sample.
func (p *path) backoffs() int {
	p.estMu.Lock()
	defer p.estMu.Unlock()
	return p.backoff
}

// stall marks the path stalled at now (its retransmission timer expired), unless it is: it gets
// no new data until it shows life (recovered), and a sender waiting for room in its queue gives up.
func (p *path) stall(now time.Duration) {
	if !p.stalled.Swap(true) {
		p.stalledAt.Store(int64(now))
		kick(p.stallKick)
	}
}

// recovered ends a stall once a round trip begun after it (sent at sent) has completed.
func (p *path) recovered(sent time.Duration) {
	if !p.stalled.Load() || int64(sent) <= p.stalledAt.Load() {
		return
	}
	p.estMu.Lock()
	p.backoff = 0
	p.estMu.Unlock()
	p.stalled.Store(false)
	p.debug("path recovered from a stall")
}

func (p *path) schedView() sched.Path {
	srtt := p.rtt().srtt
	if srtt == 0 {
		// No sample yet, but the probe sent when the path came up has been out this long: the
		// round trip is at least that.
		srtt = max(p.eng.clock()-p.upAt, time.Microsecond)
	}
	return sched.Path{
		Index:        p.index,
		Live:         p.usable(),
		QueuedBytes:  p.queued.Load(),
		InFlight:     p.inflight.Load(),
		SRTT:         srtt,
		DeliveryRate: math.Float64frombits(p.rate.Load()),
		Full:         len(p.data) == cap(p.data),
		Answer:       p.lastDataIn.Load(),
		Lossy:        p.lossy.Load(),
	}
}

// inflightCap is the path's cap on bytes written and unacknowledged (see the estimator).
func (p *path) inflightCap() int64 {
	return inflightCap(math.Float64frombits(p.rate.Load()), p.rtt().min, p.chunkSize, p.lossy.Load())
}

// wrote counts a written chunk (or piece) of n bytes as in flight on p, and no longer on the path
// that wrote it before, if any.
func (p *path) wrote(oc *outChunk, n int64) {
	p.inflight.Add(n)
	if prev := oc.inflightOn.Swap(p); prev != nil {
		prev.inflight.Add(-n)
		if prev != p && prev.capped.Load() {
			prev.kickWriter(prev.capKick) // its writer is waiting for room under the cap
		}
	}
	// An acknowledgement that came between the writer's check and now found nothing to
	// release (or the previous path): undo the count unless it did see this one.
	if oc.isAcked() && oc.inflightOn.CompareAndSwap(p, nil) {
		p.inflight.Add(-n)
	}
}

// landed takes a chunk (or piece) of n bytes out of the in-flight count of the path that last
// wrote it, counting it as acknowledged there if delivered (not if the peer closed first).
func landed(oc *outChunk, n int64, delivered bool) {
	if q := oc.inflightOn.Swap(nil); q != nil {
		q.inflight.Add(-n)
		if delivered {
			q.acked.Add(n)
		}
		if q.capped.Load() {
			q.kickWriter(q.capKick)
		}
	}
}

func (p *path) stats() PathStats {
	return PathStats{
		Index:          p.index,
		Slot:           p.slot,
		BadPieces:      p.badPieces.Load(),
		Local:          p.conn.LocalAddr().String(),
		Remote:         p.conn.RemoteAddr().String(),
		Live:           !p.dead.Load(),
		ChunksSent:     p.chunksSent.Load(),
		BytesSent:      p.bytesSent.Load(),
		ChunksReceived: p.chunksRecv.Load(),
		BytesReceived:  p.bytesRecv.Load(),
		SRTT:           p.rtt().srtt,
		KeyExchange:    p.kex,
		BytesAcked:     uint64(p.acked.Load()),
		DeliveryRate:   math.Float64frombits(p.rate.Load()),
		Stalled:        p.stalled.Load(),
		ChunksResent:   p.chunksResent.Load(),
		BytesResent:    p.bytesResent.Load(),
		Lags:           p.lags.Load(),
		Overtaken:      p.overtakenChunks.Load(),
		Lossy:          p.lossy.Load(),
		LossCopies:     p.lossCopies.Load(),
	}
}

func (p *path) trace(dir string, t wire.Type, n int) {
	if p.slog.Enabled(context.Background(), slog.LevelDebug) {
		p.logger().Debug("frame", "dir", dir, "type", t.String(), "bytes", n)
	}
}

// logger is the session's logger with the path's index and slot: made when a path logs (rarely),
// not kept by every path (a logger with attributes holds their formatted copy, about a KiB).
func (p *path) logger() *slog.Logger { return p.slog.With("path", p.index, "slot", p.slot) }

// debug logs at debug level, if that is enabled, with the path's attributes.
func (p *path) debug(msg string, args ...any) {
	if p.slog.Enabled(context.Background(), slog.LevelDebug) {
		p.logger().Debug(msg, args...)
	}
}
