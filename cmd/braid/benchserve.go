package main

import (
	"context"
	"fmt"
	"time"

	"github.com/braidnet/braid"
)

// Limits on what a bench client may ask a server to send.
const (
	maxBenchSeconds = 3600
	maxBenchBytes   = 1 << 40
)

// serveBench is a server's side of one bench transfer (transfer.go): it counts what the client
// sends until the stream's short last message, or, with Reverse, sends 1 MiB messages for
// h.Seconds (or h.Size bytes) and then a short one. The receipt carries the byte count.
func serveBench(ctx context.Context, s *braid.Session, h transferHeader) (transferReceipt, error) {
	var rc transferReceipt
	if !h.Reverse {
		for {
			msg, err := s.Receive(ctx)
			if err != nil {
				return rc, fmt.Errorf("bench after %d bytes: %w", rc.Bytes, err)
			}
			rc.Bytes += int64(len(msg))
			last := len(msg) < transferPiece
			s.Release(msg)
			if last || h.Size != unknownSize && rc.Bytes >= h.Size {
				return rc, nil
			}
		}
	}
	if h.Seconds < 0 || h.Seconds > maxBenchSeconds || h.Size > maxBenchBytes || h.Seconds == 0 && h.Size <= 0 {
		rc.Error = fmt.Sprintf("bench: want 0 < seconds <= %d or 0 < bytes <= %d", maxBenchSeconds, int64(maxBenchBytes))
		return rc, s.Send(ctx, nil) // an empty stream, then the receipt with its error
	}
	n, err := sendStream(ctx, s, h.Size, time.Duration(h.Seconds*float64(time.Second)))
	rc.Bytes = n
	return rc, err
}

// sendStream sends 1 MiB messages of a fixed pattern until size bytes (unknownSize: no limit)
// or the duration (0: none) is reached, then a short message, and returns the bytes sent. The
// session does not copy them: each buffer is filled once and reused when handed back.
func sendStream(ctx context.Context, s *braid.Session, size int64, d time.Duration) (int64, error) {
	free := make(chan []byte, 256)
	take := func() []byte {
		select {
		case b := <-free:
			return b
		default:
			b := make([]byte, transferPiece)
			for i := range b {
				b[i] = byte(i * 7)
			}
			return b
		}
	}
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	var sent int64
	for {
		n := int64(transferPiece)
		if size != unknownSize {
			n = min(n, size-sent)
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			n = 0
		}
		buf := take()[:n]
		if n < transferPiece {
			// The short message ends the stream.
			return sent + n, s.Send(ctx, buf)
		}
		if err := s.SendNoCopy(ctx, buf, func() {
			select {
			case free <- buf[:cap(buf)]:
			default:
			}
		}); err != nil {
			return sent, err
		}
		sent += n
	}
}
