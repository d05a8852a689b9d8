package session

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller is the process's epoll set for dozing readers (doze.go). The set's own descriptor is
// non-blocking and registered with Go's network poller, so the goroutine that drains it waits
// there as a socket reader does, and no thread stays blocked in epoll_wait: the runtime wakes it
// when the set has events, and it wakes the paths filed under their tokens. Registrations are
// one-shot: an event disarms its socket until the path dozes again. A socket closed while armed
// leaves the set by itself.
var poller struct {
	once sync.Once
	fd   int      // the epoll set; -1 if it could not be made: readers then never doze
	file *os.File // fd, kept open (a collected os.File closes its descriptor)
	tokens
}

// pollArm arms the poller for p's socket, and reports whether it could.
func pollArm(p *path) bool {
	poller.once.Do(startPoller)
	if poller.fd < 0 || !poller.add(p) {
		return false
	}
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

// pollForget removes p from the poller's tokens; its socket, if armed, leaves the set when closed
// (an event meanwhile finds no path, or one that is not dozing).
func pollForget(p *path) { poller.drop(p) }

func startPoller() {
	poller.fd = -1
	poller.by = make(map[uint32]*path)
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	if unix.SetNonblock(fd, true) != nil {
		unix.Close(fd)
		return
	}
	// A non-blocking descriptor given to os.NewFile joins the runtime's network poller.
	f := os.NewFile(uintptr(fd), "braid-poller")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	poller.fd, poller.file = fd, f
	go pollLoop(rc)
}

// pollLoop wakes the paths whose sockets the kernel reports readable (or ended), for the life of
// the process. rc's Read calls its function again whenever the runtime sees the set readable.
func pollLoop(rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 256)
	for {
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.EpollWait(int(fd), events, 0)
				if err == unix.EINTR {
					continue
				}
				for _, ev := range events[:max(n, 0)] {
					if p := poller.take(uint32(ev.Fd)); p != nil {
						p.wakeReader()
					}
				}
				if n < len(events) {
					// Drained: an event from now on makes the set readable again, which the
					// runtime reports.
					return false
				}
			}
		})
		if err != nil {
			// Not expected of a descriptor nobody closes; if it happens, no reader dozes from
			// now on, and those dozing are woken to read as they did before dozing.
			pollBroken(err)
			return
		}
	}
}

// pollBroken turns the poller off and wakes every dozing reader.
func pollBroken(err error) {
	poller.mu.Lock()
	poller.broken = err
	woken := make([]*path, 0, len(poller.by))
	for _, p := range poller.by {
		woken = append(woken, p)
	}
	clear(poller.by)
	poller.mu.Unlock()
	for _, p := range woken {
		p.wakeReader()
	}
}
