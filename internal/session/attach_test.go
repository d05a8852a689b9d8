package session

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidnet/braid/internal/testutil"
	"github.com/braidnet/braid/internal/wire"
)

// liveInSlot returns the indexes of s's live paths in slot.
func liveInSlot(s *Session, slot int) []int {
	var live []int
	for _, ps := range s.Stats().Paths {
		if ps.Live && ps.Slot == slot {
			live = append(live, ps.Index)
		}
	}
	return live
}

// pathLive reports whether s's path index is live.
func pathLive(s *Session, index int) bool {
	for _, ps := range s.Stats().Paths {
		if ps.Index == index {
			return ps.Live
		}
	}
	return false
}

// TestRefusedAttachKeepsPath: an attach to an occupied slot that the server refuses must leave
// the path in that slot alone; only an attach that succeeds replaces it.
func TestRefusedAttachKeepsPath(t *testing.T) {
	t.Run("session closing", func(t *testing.T) {
		l, _ := startListener(t, &Config{Linger: time.Minute})
		addr := l.Addr().String()
		raw, acc := openRaw(t, addr, 4096)
		srv := acceptOne(t, l)
		if err := srv.Send(context.Background(), []byte("unacknowledged")); err != nil {
			t.Fatal(err)
		}
		raw.readUntil(wire.TypeChunk, "the message")
		// Close waits for the chunk to be acknowledged; meanwhile an attach in slot 0 is refused.
		closed := make(chan error, 1)
		go func() { closed <- srv.Close() }()
		testutil.WaitFor(t, srv.isClosing, "the session to start closing")
		q := attachRaw(t, addr, acc, 0)
		q.expectError(wire.CodeSessionClosed)
		if !pathLive(srv, 0) {
			t.Fatal("the refused attach ended the live path in its slot")
		}
		// The path still carries the session to its end: acknowledged, Close sends CLOSE on it.
		raw.send(wire.TypeChunkAck, wire.AppendChunkAck(nil, wire.ChunkAck{Cum: 1}))
		raw.readUntil(wire.TypeClose, "closing")
		raw.conn.Close()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("attach limit", func(t *testing.T) {
		// With MaxPaths 1, at most 16 paths attach over the session's life.
		// The raw paths never write: each is replaceable once silent for two keepalives.
		l, _ := startListener(t, &Config{MaxPaths: 1, KeepAlive: 20 * time.Millisecond})
		addr := l.Addr().String()
		cur, acc := openRaw(t, addr, 4096)
		srv := acceptOne(t, l)
		idx := 0
		for range maxAttachesPerPath - 1 {
			time.Sleep(3 * 20 * time.Millisecond)
			q := attachRaw(t, addr, acc, 0)
			idx = q.expectAttachOK()
			cur.expectClosed() // replaced
			cur = q
		}
		time.Sleep(3 * 20 * time.Millisecond)
		q := attachRaw(t, addr, acc, 0)
		q.expectError(wire.CodeTooManyPaths)
		if !pathLive(srv, idx) {
			t.Fatal("the refused attach ended the live path in its slot")
		}
		if err := srv.Send(context.Background(), []byte("still here")); err != nil {
			t.Fatal(err)
		}
		cur.readUntil(wire.TypeChunk, "the path in slot 0")
	})
	t.Run("fails after ATTACH_OK", func(t *testing.T) {
		// An attach answered ATTACH_OK whose path the session then refuses (it started closing
		// in between) must not have ended the path in its slot either.
		var armed atomic.Bool
		entered, release := make(chan struct{}), make(chan struct{})
		hooks := &testHooks{attaching: func(int) {
			if armed.CompareAndSwap(true, false) {
				close(entered)
				<-release
			}
		}}
		l, _ := startHookedListener(t, &Config{KeepAlive: testKeepAlive}, hooks)
		addr := l.Addr().String()
		raw, acc := openRaw(t, addr, 4096)
		srv := acceptOne(t, l)
		p1 := attachRaw(t, addr, acc, 1)
		p1.expectAttachOK()
		p1.readUntil(wire.TypePing, "the new path's probe") // added: its writer runs
		time.Sleep(3 * testKeepAlive)                       // p1, silent, may be replaced
		armed.Store(true)
		q := attachRaw(t, addr, acc, 1)
		q.expectAttachOK()
		<-entered
		closed := make(chan error, 1)
		go func() { closed <- srv.Close() }()
		testutil.WaitFor(t, srv.isClosing, "the session to start closing")
		close(release)
		q.expectError(wire.CodeSessionClosed)
		// p1 is finished as a path of a closing session, not cut off.
		p1.readUntil(wire.TypeClose, "closing")
		raw.readUntil(wire.TypeClose, "closing")
		p1.conn.Close()
		raw.conn.Close()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentAttachOneSlot: two attaches in one slot at once leave exactly one live path in
// it: the second, arriving while the first has not been added yet, is refused, and a later one
// replaces the first as usual.
func TestConcurrentAttachOneSlot(t *testing.T) {
	var calls atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	hooks := &testHooks{attaching: func(int) {
		if calls.Add(1) == 1 { // hold the first attach between ATTACH_OK and joining the session
			close(entered)
			<-release
		}
	}}
	l, _ := startHookedListener(t, &Config{MaxPaths: 4, KeepAlive: testKeepAlive}, hooks)
	addr := l.Addr().String()
	_, acc := openRaw(t, addr, 4096)
	srv := acceptOne(t, l)

	a := attachRaw(t, addr, acc, 1)
	ia := a.expectAttachOK()
	<-entered
	b := attachRaw(t, addr, acc, 1)
	fb := b.recv()
	close(release)
	a.readUntil(wire.TypePing, "the first path's probe") // a has joined the session
	// The first attach's slot is reserved until it has joined: the second is refused.
	if fb.Type != wire.TypeError {
		t.Fatalf("second attach answered with %s, want ERROR", fb.Type)
	} else if e, _ := wire.ParseError(fb.Payload); e.Code != wire.CodeTooManyPaths {
		t.Fatalf("second attach refused with %s (%s), want %s", e.Code, e.Message, wire.CodeTooManyPaths)
	}
	if live := liveInSlot(srv, 1); len(live) != 1 || live[0] != ia {
		t.Fatalf("live paths in slot 1: %v, want [%d]", live, ia)
	}
	// Once the first has joined, and fallen silent, a new attach in the slot replaces it.
	time.Sleep(3 * testKeepAlive)
	c := attachRaw(t, addr, acc, 1)
	ic := c.expectAttachOK()
	a.expectClosed()
	c.readUntil(wire.TypePing, "the replacing path's probe")
	if live := liveInSlot(srv, 1); len(live) != 1 || live[0] != ic {
		t.Fatalf("live paths in slot 1: %v, want [%d]", live, ic)
	}
}

// TestAttachSlotsBounded: attaches that fail before ATTACH_OK give their slot back, and paths
// attached and dropped over and over are eventually refused instead of piling up.
func TestAttachSlotsBounded(t *testing.T) {
	l, _ := startListener(t, &Config{MaxPaths: 3})
	_, acc := openRaw(t, l.Addr().String(), 64<<10)
	acceptOne(t, l)
	// Each attach below is in slot 1, and is over, refused or ended, once the server holds no
	// connection but the session's first path's: the next one does not find the slot busy.
	handled := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.conns) == 1
	}
	for range 10 { // reset before reading ATTACH_OK
		c := dialRaw(t, l.Addr().String())
		c.send(wire.TypeSessionAttach, acc.attach(c, 1))
		c.tcp.(*net.TCPConn).SetLinger(0)
		c.tcp.Close()
		testutil.WaitFor(t, handled, "the attach to be handled")
	}
	p := dialRaw(t, l.Addr().String())
	p.send(wire.TypeSessionAttach, acc.attach(p, 1))
	if f := p.recv(); f.Type != wire.TypeAttachOK {
		t.Fatalf("legitimate attach after failed ones: %s", f.Type)
	}
	p.readUntil(wire.TypePing, "the path's probe") // it has joined
	p.conn.Close()                                 // so that the next attach in its slot does not find a live path there
	testutil.WaitFor(t, handled, "the path to end")
	// Attach and drop until refused: at most MaxPaths × 16 over the session's life.
	for i := 0; ; i++ {
		if i > 3*maxAttachesPerPath+10 {
			t.Fatal("attaches never refused")
		}
		q := dialRaw(t, l.Addr().String())
		q.send(wire.TypeSessionAttach, acc.attach(q, 1))
		f := q.recv()
		if f.Type == wire.TypeError {
			if e, _ := wire.ParseError(f.Payload); e.Code != wire.CodeTooManyPaths || !strings.Contains(e.Message, "over the session's life") {
				t.Fatalf("refused with %s (%s)", e.Code, e.Message)
			}
			break
		}
		q.conn.Close()
		testutil.WaitFor(t, handled, "the attach to be handled")
	}
}
