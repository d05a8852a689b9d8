package eval

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// packetDelay holds every IP packet routed through a TUN device for a one-way delay and writes
// it back, in arrival order: netem's delay, done in user space because this kernel has no netem.
// It also drops packets as the path's Loss says (netem's loss), as they arrive, in both
// directions alike.
// The netns backend's router namespace sends each path's traffic, both directions, through one
// (see netns.go); packets written back are routed on by destination. Unlike a relay it does not
// end TCP connections, so MPTCP subflows pass through it too.
type packetDelay struct {
	f      *os.File
	delay  atomic.Int64 // nanoseconds; a change applies to packets already held
	queue  chan heldPacket
	wg     sync.WaitGroup
	closed atomic.Bool
	done   chan struct{}
	drops  atomic.Int64 // by a full queue
	lost   atomic.Int64 // by the loss model

	lossMu sync.Mutex
	loss   *lossModel // used by read, changed by setLoss
}

type heldPacket struct {
	at  time.Time
	buf *[]byte // from packetBufs
	n   int     // the packet's length in *buf
}

const (
	// tunMTU is the largest packet read from the device: the paths' MTU (no offloads are
	// enabled on it, so the kernel hands it whole packets of at most its MTU).
	tunMTU = segFrame - 14
	// heldPackets bounds what a delay holds (both directions): 64 Ki packets, about 1 s at
	// 1 Gbit/s; beyond it packets are dropped, as from an overflowing queue.
	heldPackets = 64 << 10
)

// openPacketDelay attaches to the existing TUN device name (created by `ip tuntap add ... mode
// tun`) in this process's network namespace.
func openPacketDelay(name string, delay time.Duration, loss Loss, seed uint64) (*packetDelay, error) {
	f, err := openTUN(name)
	if err != nil {
		return nil, err
	}
	d := &packetDelay{f: f, queue: make(chan heldPacket, heldPackets), done: make(chan struct{})}
	d.delay.Store(int64(delay))
	d.loss = newLossModel(seed, loss)
	d.wg.Add(2)
	go d.read()
	go d.write()
	return d, nil
}

func (d *packetDelay) setDelay(v time.Duration) { d.delay.Store(int64(v)) }

func (d *packetDelay) setLoss(l Loss) {
	d.lossMu.Lock()
	d.loss.set(l)
	d.lossMu.Unlock()
}

// dropNext reports whether the loss model drops the packet just read.
func (d *packetDelay) dropNext() bool {
	d.lossMu.Lock()
	defer d.lossMu.Unlock()
	return d.loss.drop()
}

// packetBufs holds *[]byte of tunMTU bytes (a pointer, so that Put does not allocate).
var packetBufs = sync.Pool{New: func() any { b := make([]byte, tunMTU); return &b }}

func (d *packetDelay) read() {
	defer d.wg.Done()
	defer close(d.queue)
	for {
		buf := packetBufs.Get().(*[]byte)
		n, err := d.f.Read(*buf)
		if err != nil { // closed, or the device is gone: nothing more will come
			packetBufs.Put(buf)
			return
		}
		if d.dropNext() {
			d.lost.Add(1)
			packetBufs.Put(buf)
			continue
		}
		select {
		case d.queue <- heldPacket{at: time.Now(), buf: buf, n: n}:
		default: // full: dropped, as an overflowing queue would
			d.drops.Add(1)
			packetBufs.Put(buf)
		}
	}
}

func (d *packetDelay) write() {
	defer d.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for p := range d.queue {
		if wait := time.Until(p.at.Add(time.Duration(d.delay.Load()))); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-d.done:
			}
		}
		if !d.closed.Load() {
			d.f.Write((*p.buf)[:p.n]) // a packet the kernel refuses is lost, as on a link
		}
		packetBufs.Put(p.buf)
	}
}

// Close stops the delay; packets still held are dropped.
func (d *packetDelay) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	close(d.done)
	err := d.f.Close()
	d.wg.Wait()
	return err
}
