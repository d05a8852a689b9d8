package frame

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/braidnet/braid/internal/secure"
	"github.com/braidnet/braid/internal/wire"
)

// Client speaks the frame protocol over one connection: probes, text messages and bulk data,
// each answered by the server. Methods may be called from several goroutines; they take turns.
// After any error other than a context cancellation before the request was sent, the connection
// is closed and every later call returns the same error.
type Client struct {
	cfg  *Config
	conn net.Conn
	r    *wire.Reader
	w    *wire.Writer
	log  *slog.Logger

	mu  sync.Mutex // one exchange at a time; guards the fields below
	seq uint64     // TEXT and DATA frames sent
	err error      // sticky: the connection is unusable
	got bool       // a frame has come from the server
}

// Dial connects to a Braid server at addr ("host:port").
func Dial(ctx context.Context, addr string, cfg *Config) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("braid: dial %s: %w", addr, err)
	}
	if cfg != nil && cfg.TLS != nil {
		conf := cfg.TLS.Clone()
		conf.MinVersion = tls.VersionTLS13
		if len(conf.NextProtos) == 0 {
			conf.NextProtos = []string{secure.ALPN}
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("braid: TLS with %s: %w", addr, err)
		}
		conn = tc
	}
	c, err := NewClient(conn, cfg)
	if err != nil {
		conn.Close()
	}
	return c, err
}

// NewClient runs the client side of the frame protocol on an established connection, which the
// Client then owns.
func NewClient(conn net.Conn, cfg *Config) (*Client, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:  c,
		conn: conn,
		r:    wire.NewReader(conn, c.MaxFrameSize),
		w:    wire.NewWriter(conn),
		log:  c.Logger.With("remote", conn.RemoteAddr().String()),
	}, nil
}

// Close closes the connection. Calls in progress return errors.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClientClosed
	}
	c.mu.Unlock()
	return err
}

// Ping sends a PING carrying payload (at most 64 bytes) and waits for the PONG; it returns the
// round-trip time.
func (c *Client) Ping(ctx context.Context, payload []byte) (time.Duration, error) {
	if len(payload) > wire.MaxPingPayload {
		return 0, fmt.Errorf("braid: ping payload %d bytes, maximum %d", len(payload), wire.MaxPingPayload)
	}
	var rtt time.Duration
	err := c.exchange(ctx, func() error {
		start := time.Now()
		if err := c.send(wire.TypePing, payload); err != nil {
			return err
		}
		f, err := c.receive()
		if err != nil {
			return err
		}
		rtt = time.Since(start)
		if f.Type != wire.TypePong || !bytes.Equal(f.Payload, payload) {
			return fmt.Errorf("%w: PING answered with %s of %d bytes", ErrProtocol, f.Type, len(f.Payload))
		}
		return nil
	})
	return rtt, err
}

// SendText sends a TEXT frame and returns the server's acknowledgement. text must be UTF-8.
func (c *Client) SendText(ctx context.Context, text string) (Ack, error) {
	return c.sendAcked(ctx, wire.TypeText, []byte(text))
}

// SendData sends one DATA frame and returns the server's acknowledgement.
func (c *Client) SendData(ctx context.Context, p []byte) (Ack, error) {
	return c.sendAcked(ctx, wire.TypeData, p)
}

func (c *Client) sendAcked(ctx context.Context, t wire.Type, p []byte) (Ack, error) {
	var ack Ack
	err := c.exchange(ctx, func() error {
		if err := c.send(t, p); err != nil {
			return err
		}
		c.seq++
		var err error
		ack, err = c.receiveAck(t, c.seq, len(p))
		return err
	})
	return ack, err
}

// UploadResult summarises an Upload.
type UploadResult struct {
	Frames   int           // DATA frames sent and acknowledged
	Bytes    int64         // payload bytes acknowledged
	Duration time.Duration // from the first frame sent to the last acknowledgement received
}

// uploadWindow bounds how many DATA frames an Upload sends ahead of their acknowledgements.
const uploadWindow = 1024

// Upload sends everything src yields as DATA frames of at most frameSize bytes and returns once
// the server has acknowledged all of them. Frames are pipelined: sending runs ahead of the
// acknowledgements by up to a fixed window, so throughput is not bound by the round-trip time.
// Every acknowledgement is checked against the frame it answers.
func (c *Client) Upload(ctx context.Context, src io.Reader, frameSize int) (UploadResult, error) {
	if frameSize <= 0 || frameSize > c.cfg.MaxFrameSize {
		return UploadResult{}, fmt.Errorf("braid: frame size %d outside 1..%d", frameSize, c.cfg.MaxFrameSize)
	}
	var res UploadResult
	err := c.exchange(ctx, func() error {
		sizes := make(chan int, uploadWindow) // sizes of the frames sent, in order
		quit := make(chan struct{})
		var sendErr error
		go func() {
			defer close(sizes)
			sendErr = c.uploadFrames(src, frameSize, sizes, quit)
		}()
		start := time.Now()
		var recvErr error
		for n := range sizes {
			if recvErr != nil {
				continue // drain so the sender can finish
			}
			c.seq++
			if _, err := c.receiveAck(wire.TypeData, c.seq, n); err != nil {
				recvErr = err
				close(quit)
				continue
			}
			res.Frames++
			res.Bytes += int64(n)
		}
		res.Duration = time.Since(start)
		return errors.Join(recvErr, sendErr)
	})
	return res, err
}

// uploadFrames is Upload's sending half. It reports each frame's size on sizes, flushing what is
// queued before it could block, so the receiving half always has an acknowledgement coming.
func (c *Client) uploadFrames(src io.Reader, frameSize int, sizes chan<- int, quit <-chan struct{}) error {
	buf := make([]byte, frameSize)
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if err := c.queue(wire.TypeData, buf[:n]); err != nil {
				return err
			}
			select {
			case sizes <- n:
			default:
				if err := c.w.Flush(); err != nil {
					return err
				}
				select {
				case sizes <- n:
				case <-quit:
					return nil
				}
			}
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return c.w.Flush()
		case rerr != nil:
			c.w.Flush()
			return fmt.Errorf("braid: reading upload source: %w", rerr)
		}
	}
}

// exchange runs one request/response exchange with the connection's deadline tied to ctx. An
// error leaves the connection in an unknown state, so it is closed and the error kept.
func (c *Client) exchange(ctx context.Context, fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The configured timeout bounds a silent server; ctx's own deadline or cancellation
	// interrupts the exchange through the callback below, so that its error is ctx's.
	c.conn.SetDeadline(time.Now().Add(c.cfg.IdleTimeout))
	if ctx.Done() != nil { // a context that can never end costs nothing
		stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	err := fn()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("braid: %w: %w", ctx.Err(), err)
	}
	if err != nil {
		c.err = err
		c.conn.Close()
	}
	return err
}

func (c *Client) send(t wire.Type, p []byte) error {
	if err := c.queue(t, p); err != nil {
		return err
	}
	return c.w.Flush()
}

func (c *Client) queue(t wire.Type, p []byte) error {
	c.trace("send", t, len(p))
	return c.w.Queue(t, nil, p)
}

// receive reads the server's next frame, turning an ERROR frame into a RemoteError.
func (c *Client) receive() (wire.Frame, error) {
	f, err := c.r.ReadFrame()
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("braid: server closed the connection: %w", io.ErrUnexpectedEOF)
		}
		if !c.got && c.cfg.TLS == nil && secure.ClosedByPeer(err) {
			err = fmt.Errorf("%w (at the first frame: %s)", err, secure.PlainClientHint)
		}
		return f, err
	}
	c.got = true
	c.trace("recv", f.Type, len(f.Payload))
	if f.Type == wire.TypeError {
		e, perr := wire.ParseError(f.Payload)
		if perr != nil {
			return f, perr
		}
		return f, remoteError(e)
	}
	return f, nil
}

// receiveAck reads an ACK and checks that it answers frame seq of type t with n bytes.
func (c *Client) receiveAck(t wire.Type, seq uint64, n int) (Ack, error) {
	f, err := c.receive()
	if err != nil {
		return Ack{}, err
	}
	if f.Type != wire.TypeAck {
		return Ack{}, fmt.Errorf("%w: expected ACK, got %s", ErrProtocol, f.Type)
	}
	wa, err := wire.ParseAck(f.Payload)
	if err != nil {
		return Ack{}, err
	}
	ack := ackFromWire(wa)
	if ack.Acked != Type(t) || ack.Seq != seq || ack.Bytes != uint64(n) {
		return ack, fmt.Errorf("%w: ACK %s #%d of %d bytes answers %s #%d of %d bytes", ErrProtocol, ack.Acked, ack.Seq, ack.Bytes, t, seq, n)
	}
	return ack, nil
}

func (c *Client) trace(dir string, t wire.Type, n int) {
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("frame", "dir", dir, "type", t.String(), "bytes", n)
	}
}
