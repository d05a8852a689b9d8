package session

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// canDoze: readers doze here.
const canDoze = true

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

// pollArm arms the poller for p's socket (p filed already), and reports whether it could.
func pollArm(p *path) bool {
	poller.once.Do(startPoller)
	if poller.fd < 0 {
		return false
	}
	tok := p.pollToken
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
	var err error
	cerr := p.tcp.Control(func(fd uintptr) {
		// Registered at the path's first doze; armed again by a modification after.
		if err = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_MOD, int(fd), &ev); err == unix.ENOENT {
			err = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	return cerr == nil && err == nil
}

func startPoller() {
	poller.fd = -1
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
	rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return true
			}
			for _, ev := range events[:n] {
				if p := poller.take(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32); p != nil {
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
	// The set failed (not expected of a descriptor nobody closes): no reader dozes from now on,
	// and those dozing are woken to read as they did before dozing.
	pollBroken()
}
