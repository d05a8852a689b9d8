// Package bufpool recycles byte buffers by power-of-two size class, so that code moving many
// large messages does not allocate (and zero) a fresh buffer for each.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 12 // 4 KiB: smaller requests get a plain allocation
	maxShift = 30 // 1 GiB: larger requests too
)

var pools [maxShift + 1]sync.Pool

// boxes holds empty boxes: a buffer is pooled in a *[]byte (a slice in an interface would be
// an allocation), and the box Get empties goes here for Put to fill again, so that recycling
// a buffer allocates nothing.
var boxes sync.Pool

// Get returns a buffer of length n. Its contents are arbitrary, not zeroed.
func Get(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, n)
	}
	if box, ok := pools[c].Get().(*[]byte); ok {
		b := (*box)[:n]
		*box = nil
		boxes.Put(box)
		return b
	}
	return make([]byte, n, 1<<c)
}

// Put hands b back for reuse. Buffers that Get did not make are ignored. The caller must not use
// b, or any slice of it, afterwards.
func Put(b []byte) {
	c := bits.Len(uint(cap(b))) - 1
	if c < minShift || c > maxShift || cap(b) != 1<<c {
		return
	}
	// Not b's address: that would move the parameter to the heap on every call, including
	// the many (nil, small) that pool nothing.
	box, _ := boxes.Get().(*[]byte)
	if box == nil {
		box = new([]byte)
	}
	*box = b[:0]
	pools[c].Put(box)
}

// class returns the size class holding n bytes, or -1 if n is outside the pooled range.
func class(n int) int {
	if n < 1<<minShift || n > 1<<maxShift {
		return -1
	}
	return bits.Len(uint(n - 1))
}
