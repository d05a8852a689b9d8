package session

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// poller is the process's epoll set for dozing readers (doze.go): one goroutine waits on it, and
// each event wakes the path filed under the event's token. Registrations are one-shot: an event
// disarms its socket until the path dozes again. A socket closed while armed leaves the set by
// itself.
var poller struct {
	once sync.Once
	fd   int // -1 if the set could not be made: readers then never doze
	tokens
}

// pollArm arms the poller for p's socket, and reports whether it could.
func pollArm(p *path) bool {
	poller.once.Do(startPoller)
	if poller.fd < 0 {
		return false
	}
	poller.add(p)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(p.pollToken)}
	var err error
	cerr := p.tcp.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if !p.polled {
			// Set before the socket is armed: its event may run the reader on at once.
			op, p.polled = unix.EPOLL_CTL_ADD, true
		}
		if err = unix.EpollCtl(poller.fd, op, int(fd), &ev); err != nil && op == unix.EPOLL_CTL_ADD {
			p.polled = false
		}
	})
	if cerr != nil || err != nil {
		poller.drop(p)
		return false
	}
	return true
}

// socketPending reports whether p's socket has bytes queued for reading.
func socketPending(p *path) bool {
	n := 0
	p.tcp.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n > 0
}

// pollForget removes p from the poller's tokens; its socket, if armed, leaves the set when closed
// (an event meanwhile finds no path, or one that is not dozing).
func pollForget(p *path) { poller.drop(p) }

func startPoller() {
	poller.by = make(map[uint32]*path)
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		poller.fd = -1
		return
	}
	poller.fd = fd
	go pollLoop(fd)
}

// pollLoop wakes the paths whose sockets the kernel reports readable (or ended), for the life of
// the process.
func pollLoop(fd int) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(fd, events, -1)
		if err != nil {
			if err != unix.EINTR {
				time.Sleep(time.Millisecond) // not expected of a valid set; do not spin
			}
			continue
		}
		for _, ev := range events[:n] {
			if p := poller.take(uint32(ev.Fd)); p != nil {
				p.wakeReader()
			}
		}
	}
}
