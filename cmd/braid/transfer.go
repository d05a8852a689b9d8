package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/braidnet/braid"
)

// The CLI's transfer convention on a session: each transfer is a JSON header message, then its
// bytes as messages of transferPiece bytes (the last may be shorter), then a JSON trailer with
// the sender's SHA-256; the receiver answers each transfer with a JSON receipt carrying the byte
// count and SHA-256 it computed, which the sender checks. A header whose size is -1 announces a
// stream of unknown length (standard input, a pipe): its end is the first message shorter than
// transferPiece, possibly empty. A saved file is written as NAME.part and published as NAME
// only once every byte has arrived and the two digests agree, so a transfer cut short (a killed
// sender or receiver, a lost session) never leaves a file under its final name; an existing
// NAME is never replaced unless the server says --overwrite (the file gets a numbered name).
//
// Kind "bench" is braid bench's: the bytes are counted, neither hashed nor saved, and there is
// no trailer; with Reverse the server sends instead, for Seconds or Size bytes, and its
// receipt follows the stream.

const transferPiece = 1 << 20

// unknownSize is the header size of a stream whose length is not known in advance.
const unknownSize = -1

type transferHeader struct {
	Kind    string  `json:"kind"` // "file", "message" or "bench"
	Name    string  `json:"name,omitempty"`
	Size    int64   `json:"size"`              // bytes, or unknownSize
	Reverse bool    `json:"reverse,omitempty"` // bench: the server sends
	Seconds float64 `json:"seconds,omitempty"` // bench: how long the server sends for (0: Size bytes)
}

type transferTrailer struct {
	SHA256 string `json:"sha256"`
}

type transferReceipt struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
	Saved  string `json:"saved,omitempty"`
	Error  string `json:"error,omitempty"`
}

// streamEndGrace is how long a sender whose input stream has ended waits for an interrupt that
// may have ended it before it declares the stream complete (see sendTransfer).
const streamEndGrace = 100 * time.Millisecond

// sendTransfer sends one transfer read from r (h.Size bytes, or until EOF for unknownSize) and
// returns the receiver's verified receipt. read counts the bytes taken from r so far.
func sendTransfer(ctx context.Context, s *braid.Session, h transferHeader, r io.Reader, read *atomic.Int64) (transferReceipt, string, error) {
	hdr, _ := json.Marshal(h)
	if err := s.Send(ctx, hdr); err != nil {
		return transferReceipt{}, "", err
	}
	sum := sha256.New()
	buf := make([]byte, transferPiece)
	var sent int64
	for h.Size == unknownSize || sent < h.Size {
		want := int64(len(buf))
		if h.Size != unknownSize {
			want = min(want, h.Size-sent)
		}
		n, err := io.ReadFull(r, buf[:want])
		last := false
		switch {
		case h.Size == unknownSize && (err == io.EOF || err == io.ErrUnexpectedEOF):
			last = true // a short (possibly empty) message ends the stream
		case err != nil:
			return transferReceipt{}, "", fmt.Errorf("reading input after %d bytes: %w", sent, err)
		}
		sum.Write(buf[:n])
		if err := s.Send(ctx, buf[:n]); err != nil {
			return transferReceipt{}, "", err
		}
		sent += int64(n)
		read.Store(sent)
		if last {
			break
		}
	}
	if h.Size == unknownSize {
		// The trailer commits the file at the receiver. A stream's end may be Ctrl-C's doing:
		// the terminal signals the whole foreground process group, so the writer of a pipe
		// (head, tar, ...) dies of the same interrupt that is on its way to us, and its end is
		// then not the data's. The signal gets a moment to arrive first.
		select {
		case <-ctx.Done():
			return transferReceipt{}, "", ctx.Err()
		case <-time.After(streamEndGrace):
		}
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	trailer, _ := json.Marshal(transferTrailer{SHA256: digest})
	if err := s.Send(ctx, trailer); err != nil {
		return transferReceipt{}, digest, err
	}
	msg, err := s.Receive(ctx)
	if err != nil {
		return transferReceipt{}, digest, fmt.Errorf("waiting for the receipt: %w", err)
	}
	var rc transferReceipt
	if err := json.Unmarshal(msg, &rc); err != nil {
		return rc, digest, fmt.Errorf("bad receipt: %w", err)
	}
	switch {
	case rc.Error != "":
		return rc, digest, fmt.Errorf("receiver: %s", rc.Error)
	case rc.Bytes != sent || rc.SHA256 != digest:
		return rc, digest, fmt.Errorf("receiver got %d bytes with SHA-256 %s; sent %d with %s", rc.Bytes, rc.SHA256, sent, digest)
	}
	return rc, digest, nil
}

// receiver is what a server does with transfers: where files go, and whether an existing file
// may be replaced.
type receiver struct {
	outDir    string // "" to count and hash only
	overwrite bool
	log       *slog.Logger
	tally     *serveTally // nil: not counted
}

// receiveTransfers serves one session: it takes transfers until the peer closes, saving files
// as rx says, and answers each with a receipt.
func (rx *receiver) receiveTransfers(ctx context.Context, s *braid.Session) error {
	for {
		msg, err := s.Receive(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := rx.receiveTransfer(ctx, s, msg); err != nil {
			return err
		}
	}
}

// receiveTransfer takes one transfer whose header msg is, saving a file as rx says, and answers
// it with a receipt. An error ends the session's service.
func (rx *receiver) receiveTransfer(ctx context.Context, s *braid.Session, msg []byte) error {
	h, err := parseHeader(msg)
	if err != nil {
		return err
	}
	var rc transferReceipt
	if h.Kind == "bench" {
		rc, err = serveBench(ctx, s, h)
	} else {
		rc, err = rx.receiveOne(ctx, s, h)
	}
	rx.tally.add(h, rc, err)
	if err != nil {
		return err
	}
	attrs := []any{"session", s.ID(), "kind", h.Kind, "bytes", rc.Bytes}
	if rc.SHA256 != "" {
		attrs = append(attrs, "sha256", rc.SHA256)
	}
	if h.Kind == "file" {
		attrs = append(attrs, "name", h.Name)
	}
	if rc.Saved != "" {
		attrs = append(attrs, "saved", rc.Saved)
	}
	if rc.Error != "" {
		attrs = append(attrs, "error", rc.Error)
	}
	rx.log.Info("transfer received", attrs...)
	out, _ := json.Marshal(rc)
	return s.Send(ctx, out)
}

// parseHeader reads a transfer header from the peer and checks what the receiver relies on.
func parseHeader(msg []byte) (transferHeader, error) {
	var h transferHeader
	if err := json.Unmarshal(msg, &h); err != nil || h.Size < unknownSize || (h.Kind != "file" && h.Kind != "message" && h.Kind != "bench") {
		return h, fmt.Errorf("not a transfer header (%d bytes)", len(msg))
	}
	return h, nil
}

// partSuffix marks a file still being received.
const partSuffix = ".part"

func (rx *receiver) receiveOne(ctx context.Context, s *braid.Session, h transferHeader) (transferReceipt, error) {
	var rc transferReceipt
	var dst io.Writer = io.Discard
	var f *os.File
	var final string
	if h.Kind == "file" && rx.outDir != "" {
		name, err := safeName(h.Name)
		if err == nil {
			final = filepath.Join(rx.outDir, name)
			f, err = createPart(final)
		}
		if err != nil {
			rc.Error = err.Error()
		} else {
			// Whatever goes wrong before the file is published, the partial file goes.
			defer func() {
				f.Close()
				if rc.Saved == "" {
					os.Remove(f.Name())
				}
			}()
			dst = f
		}
	}
	sum := sha256.New()
	for h.Size == unknownSize || rc.Bytes < h.Size {
		msg, err := s.Receive(ctx)
		if err != nil {
			return rc, fmt.Errorf("after %d bytes: %w", rc.Bytes, err)
		}
		if h.Size != unknownSize && rc.Bytes+int64(len(msg)) > h.Size {
			return rc, fmt.Errorf("more than the %d bytes announced", h.Size)
		}
		if len(msg) > transferPiece {
			return rc, fmt.Errorf("a message of %d bytes, above the transfer piece of %d", len(msg), transferPiece)
		}
		sum.Write(msg)
		if _, err := dst.Write(msg); err != nil && rc.Error == "" {
			rc.Error, dst = err.Error(), io.Discard
		}
		rc.Bytes += int64(len(msg))
		last := len(msg) < transferPiece
		s.Release(msg)
		if h.Size == unknownSize && last {
			break
		}
	}
	rc.SHA256 = hex.EncodeToString(sum.Sum(nil))
	msg, err := s.Receive(ctx)
	if err != nil {
		return rc, fmt.Errorf("waiting for the trailer: %w", err)
	}
	var tr transferTrailer
	if err := json.Unmarshal(msg, &tr); err != nil {
		return rc, fmt.Errorf("not a transfer trailer (%d bytes)", len(msg))
	}
	if tr.SHA256 != rc.SHA256 && rc.Error == "" {
		rc.Error = fmt.Sprintf("sender's SHA-256 %s, received %s", tr.SHA256, rc.SHA256)
	}
	if f != nil && rc.Error == "" {
		err := f.Sync()
		if err == nil {
			err = f.Close()
		}
		var saved string
		if err == nil {
			saved, err = publish(f.Name(), final, rx.overwrite)
		}
		if err != nil {
			rc.Error = err.Error()
		} else {
			rc.Saved = saved
		}
	}
	return rc, nil
}

// maxNumbered bounds the numbered names tried for a file (NAME.1 ... ) before giving up.
const maxNumbered = 1000

// numbered is name with n inserted before its extensions: big.bin, big.1.bin; archive.tar.gz,
// archive.1.tar.gz; .profile, .profile.1. n = 0 is name itself.
func numbered(path string, n int) string {
	if n == 0 {
		return path
	}
	dir, base := filepath.Split(path)
	stem, ext := base, ""
	if i := strings.IndexByte(base[1:], '.'); i >= 0 {
		stem, ext = base[:i+1], base[i+1:]
	}
	return filepath.Join(dir, fmt.Sprintf("%s.%d%s", stem, n, ext))
}

// createPart creates the partial file for final, exclusively: NAME.part, or, while another
// transfer of the same name holds that, NAME.1.part and so on.
func createPart(final string) (*os.File, error) {
	for n := range maxNumbered {
		f, err := os.OpenFile(numbered(final, n)+partSuffix, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("%s: %d partial files of that name exist", final, maxNumbered)
}

// publish gives the complete partial file its final name and returns it. Without overwrite an
// existing file is never replaced: the first free numbered name is taken (a hard link made and
// the partial name removed, so that two transfers finishing at once cannot take one name).
func publish(part, final string, overwrite bool) (string, error) {
	if overwrite {
		return final, os.Rename(part, final)
	}
	for n := range maxNumbered {
		name := numbered(final, n)
		err := os.Link(part, name)
		if err == nil {
			return name, os.Remove(part)
		}
		if !errors.Is(err, fs.ErrExist) {
			// No hard links here: rename, which cannot refuse an existing name, after looking.
			if _, serr := os.Lstat(name); errors.Is(serr, fs.ErrNotExist) {
				return name, os.Rename(part, name)
			}
			continue
		}
	}
	return "", fmt.Errorf("%s: %d files of that name exist", final, maxNumbered)
}

// safeName keeps only the last element of a sender's file name, so a transfer cannot write
// outside the output directory.
func safeName(name string) (string, error) {
	base := filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if base == "." || base == "/" || base == ".." || base == "" {
		return "", errors.New("unusable file name")
	}
	return base, nil
}
