package frame

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
)

// Benchmarks of the single-path protocol over loopback TCP, each beside a raw TCP baseline
// that moves the same bytes in the same write sizes with no framing; compare the MB/s columns.

var throughputSizes = []int{4 << 10, 64 << 10, 1 << 20}

// zeroReader is an endless source whose cost is one memclr per read, the same on both sides.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// benchClient runs a Server on loopback and returns a Client connected to it; both end with b.
func benchClient(b *testing.B) *Client {
	srv, err := NewServer(nil)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	c, err := Dial(context.Background(), ln.Addr().String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkUpload(b *testing.B) {
	for _, size := range throughputSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			c := benchClient(b)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			res, err := c.Upload(context.Background(), io.LimitReader(zeroReader{}, int64(size)*int64(b.N)), size)
			if err != nil || res.Frames != b.N {
				b.Fatalf("%+v %v", res, err)
			}
		})
	}
}

func BenchmarkRawTCPUpload(b *testing.B) {
	for _, size := range throughputSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 64<<10)
				var total uint64
				for {
					n, err := c.Read(buf)
					total += uint64(n)
					if err != nil {
						c.Write(binary.BigEndian.AppendUint64(nil, total))
						return
					}
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			src := io.LimitReader(zeroReader{}, int64(size)*int64(b.N))
			for {
				n, err := io.ReadFull(src, buf)
				if n > 0 {
					c.Write(buf[:n])
				}
				if err != nil {
					break
				}
			}
			c.(*net.TCPConn).CloseWrite()
			var count [8]byte
			io.ReadFull(c, count[:])
		})
	}
}

func BenchmarkPing(b *testing.B) {
	c := benchClient(b)
	probe := make([]byte, 8)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Ping(context.Background(), probe); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawTCPPingPong(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 13)
	b.ReportAllocs()
	for b.Loop() {
		c.Write(buf)
		io.ReadFull(c, buf)
	}
}
