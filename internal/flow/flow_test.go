package flow

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestSenderReceiver(t *testing.T) {
	s, r := NewSender(800), NewReceiver(800)
	if err := s.Check(401); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	first, second, third := s.TryTake(400), s.TryTake(400), s.TryTake(1)
	if !first || !second || third {
		t.Fatalf("TryTake 400, 400, 1 in an 800-byte window = %v, %v, %v; want true, true, false", first, second, third)
	}
	if v, due := r.Take(99); due {
		t.Fatalf("credit %d before an eighth", v)
	}
	v, due := r.Take(1)
	if !due || v != 100 {
		t.Fatalf("credit %d, %v", v, due)
	}
	if ok, err := s.Credit(v); !ok || err != nil || s.Outstanding() != 700 {
		t.Fatal(ok, err, s.Outstanding())
	}
	if ok, _ := s.Credit(50); ok {
		t.Fatal("older credit applied")
	}
	if _, err := s.Credit(801); !errors.Is(err, ErrBadCredit) {
		t.Fatal(err)
	}
}

// FuzzCredit runs a sender and a receiver through random message sizes, a receiving application
// that takes messages at random moments, and CREDIT frames that are delayed, reordered or lost
// (later credit covers earlier, being cumulative). It checks that the receiver never holds more
// than its window, and that once the application has taken everything and the last credit due
// has arrived, the sender can always send its next message: no deadlock.
func FuzzCredit(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint64(1), uint16(800))
	f.Add([]byte{0xff, 0x10, 0x80, 0x01}, uint64(9), uint16(64))
	f.Fuzz(func(t *testing.T, prog []byte, seed uint64, win uint16) {
		window := int64(win%4096) + 16
		rng := rand.New(rand.NewPCG(seed, 5))
		s, r := NewSender(window), NewReceiver(window)
		var queue []int64    // charges of messages sent, not yet taken by the application
		var credits []uint64 // CREDIT frames in flight
		held := int64(0)     // what the receiver holds
		next := int64(1)     // charge of the sender's next message
		pick := func() int64 { return 1 + rng.Int64N(window/2) }
		next = pick()
		var lastDue uint64
		for _, op := range prog {
			switch op % 4 {
			case 0, 1: // the sender tries to send
				if s.Check(next) != nil {
					t.Fatalf("charge %d refused for window %d", next, window)
				}
				if s.TryTake(next) {
					queue = append(queue, next)
					held += next
					next = pick()
				}
			case 2: // the application takes a message
				if len(queue) > 0 {
					c := queue[0]
					queue = queue[1:]
					held -= c
					if v, due := r.Take(c); due {
						credits = append(credits, v)
						lastDue = v
					}
				}
			case 3: // a CREDIT frame arrives (any of those in flight), or is lost
				if len(credits) > 0 {
					i := rng.IntN(len(credits))
					v := credits[i]
					credits = append(credits[:i], credits[i+1:]...)
					if op&0x80 == 0 {
						if _, err := s.Credit(v); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if held > window || s.Outstanding() > window {
				t.Fatalf("receiver holds %d, sender has %d outstanding; window %d", held, s.Outstanding(), window)
			}
		}
		// The application catches up and the last credit due arrives: the next message fits.
		for _, c := range queue {
			if v, due := r.Take(c); due {
				lastDue = v
			}
		}
		if lastDue > 0 {
			if _, err := s.Credit(lastDue); err != nil {
				t.Fatal(err)
			}
		}
		if !s.TryTake(next) {
			t.Fatalf("deadlock: %d outstanding, next %d, window %d, receiver took %d, advertised %d",
				s.Outstanding(), next, window, r.consumed, r.Advertised())
		}
	})
}
