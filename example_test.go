package braid_test

import (
	"context"
	"fmt"
	"time"

	"github.com/braidnet/braid"
)

// A server that echoes every message without a goroutine parked in Receive per session: each
// step takes the message AfterReady announced, answers it, and waits for the next.
func ExampleSession_AfterReady() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := braid.Listen("127.0.0.1:0", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	go func() {
		for {
			s, err := l.Accept(ctx)
			if err != nil {
				return
			}
			var step func()
			step = func() {
				msg, err := s.Receive(ctx) // does not wait
				if err != nil {
					s.Close() // io.EOF: the peer closed
					return
				}
				s.Send(ctx, msg)
				s.AfterReady(step)
			}
			s.AfterReady(step)
		}
	}()

	s, err := braid.Dial(ctx, l.Addr().String(), &braid.Config{Paths: 2, ServerFingerprint: l.Fingerprint()})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range []string{"one", "two", "three"} {
		s.Send(ctx, []byte(m))
		reply, err := s.Receive(ctx)
		fmt.Println(string(reply), err)
	}
	fmt.Println(s.Close())
	// Output:
	// one <nil>
	// two <nil>
	// three <nil>
	// <nil>
}
