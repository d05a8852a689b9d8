package session

import (
	"context"
	"log/slog"
	"os"
	"testing"
)

func TestZZFrames(t *testing.T) {
	l, _ := startListener(t, nil)
	cfg := &Config{Paths: 1, Logger: slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx := context.Background()
	c, err := Dial(ctx, l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := acceptOne(t, l)
	go func() {
		for {
			m, err := s.Receive(ctx)
			if err != nil || s.Send(ctx, m) != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	for i := 0; i < 6; i++ {
		os.Stdout.WriteString("---- rtt\n")
		c.Send(ctx, msg)
		c.Receive(ctx)
	}
	c.Abort()
}
