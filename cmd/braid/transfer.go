package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/braidnet/braid"
)

// The CLI's transfer convention on a session: each transfer is a JSON header message, then its
// bytes as messages of up to transferPiece bytes, then a JSON trailer with the sender's SHA-256;
// the receiver answers each transfer with a JSON receipt carrying the byte count and SHA-256 it
// computed, which the sender checks. A saved file is written as NAME.part and renamed to NAME
// only once every byte has arrived and the two digests agree, so a transfer cut short (a killed
// sender or receiver, a lost session) never leaves a file under its final name.

const transferPiece = 1 << 20

type transferHeader struct {
	Kind string `json:"kind"` // "file" or "message"
	Name string `json:"name,omitempty"`
	Size int64  `json:"size"`
}

type transferTrailer struct {
	SHA256 string `json:"sha256"`
}

type transferReceipt struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Saved  string `json:"saved,omitempty"`
	Error  string `json:"error,omitempty"`
}

// sendTransfer sends one transfer from r (size bytes) and returns the receiver's verified receipt.
func sendTransfer(ctx context.Context, s *braid.Session, h transferHeader, r io.Reader) (transferReceipt, string, error) {
	hdr, _ := json.Marshal(h)
	if err := s.Send(ctx, hdr); err != nil {
		return transferReceipt{}, "", err
	}
	sum := sha256.New()
	buf := make([]byte, transferPiece)
	var sent int64
	for sent < h.Size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), h.Size-sent)])
		if err != nil {
			return transferReceipt{}, "", fmt.Errorf("reading input after %d of %d bytes: %w", sent, h.Size, err)
		}
		sum.Write(buf[:n])
		if err := s.Send(ctx, buf[:n]); err != nil {
			return transferReceipt{}, "", err
		}
		sent += int64(n)
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
	case rc.Bytes != h.Size || rc.SHA256 != digest:
		return rc, digest, fmt.Errorf("receiver got %d bytes with SHA-256 %s; sent %d with %s", rc.Bytes, rc.SHA256, h.Size, digest)
	}
	return rc, digest, nil
}

// receiveTransfers serves one session: it takes transfers until the peer closes, saving files
// under outDir when it is set, and answers each with a receipt.
func receiveTransfers(ctx context.Context, s *braid.Session, outDir string, log *slog.Logger) error {
	return receiveTransfersFrom(ctx, s, nil, outDir, log)
}

// receiveTransfersFrom is receiveTransfers for a session whose first message, first, the caller
// has already received (nil: none).
func receiveTransfersFrom(ctx context.Context, s *braid.Session, first []byte, outDir string, log *slog.Logger) error {
	for {
		msg, err := first, error(nil)
		if first == nil {
			msg, err = s.Receive(ctx)
		}
		first = nil
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var h transferHeader
		if err := json.Unmarshal(msg, &h); err != nil || h.Size < 0 || (h.Kind != "file" && h.Kind != "message") {
			return fmt.Errorf("not a transfer header (%d bytes)", len(msg))
		}
		rc, err := receiveOne(ctx, s, h, outDir)
		if err != nil {
			return err
		}
		attrs := []any{"kind", h.Kind, "bytes", rc.Bytes, "sha256", rc.SHA256}
		if h.Kind == "file" {
			attrs = append(attrs, "name", h.Name)
		}
		if rc.Saved != "" {
			attrs = append(attrs, "saved", rc.Saved)
		}
		if rc.Error != "" {
			attrs = append(attrs, "error", rc.Error)
		}
		log.Info("transfer received", attrs...)
		out, _ := json.Marshal(rc)
		if err := s.Send(ctx, out); err != nil {
			return err
		}
	}
}

// partSuffix marks a file still being received.
const partSuffix = ".part"

func receiveOne(ctx context.Context, s *braid.Session, h transferHeader, outDir string) (transferReceipt, error) {
	var rc transferReceipt
	var dst io.Writer = io.Discard
	var f *os.File
	var final string
	if h.Kind == "file" && outDir != "" {
		name, err := safeName(h.Name)
		if err == nil {
			final = filepath.Join(outDir, name)
			f, err = os.Create(final + partSuffix)
		}
		if err != nil {
			rc.Error = err.Error()
		} else {
			// Whatever goes wrong before the rename, the partial file goes.
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
	for rc.Bytes < h.Size {
		msg, err := s.Receive(ctx)
		if err != nil {
			return rc, fmt.Errorf("after %d of %d bytes: %w", rc.Bytes, h.Size, err)
		}
		if rc.Bytes+int64(len(msg)) > h.Size {
			return rc, fmt.Errorf("more than the %d bytes announced", h.Size)
		}
		sum.Write(msg)
		if _, err := dst.Write(msg); err != nil && rc.Error == "" {
			rc.Error, dst = err.Error(), io.Discard
		}
		rc.Bytes += int64(len(msg))
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
		if err == nil {
			err = os.Rename(f.Name(), final)
		}
		if err != nil {
			rc.Error = err.Error()
		} else {
			rc.Saved = final
		}
	}
	return rc, nil
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
