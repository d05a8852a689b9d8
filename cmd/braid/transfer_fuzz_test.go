package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzTransferHeader: whatever a peer sends as a header, parseHeader accepts only a known kind
// and a size of -1 (a stream) or more.
func FuzzTransferHeader(f *testing.F) {
	f.Add([]byte(`{"kind":"file","name":"a.bin","size":10}`))
	f.Add([]byte(`{"kind":"bench","size":-1,"reverse":true,"seconds":2.5}`))
	f.Add([]byte(`{"kind":"message","size":-2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := parseHeader(msg)
		if err != nil {
			return
		}
		if h.Size < unknownSize || h.Kind != "file" && h.Kind != "message" && h.Kind != "bench" {
			t.Fatalf("accepted %+v", h)
		}
	})
}

// FuzzSaveName: a sender's file name, numbered or not, never leads outside the output
// directory.
func FuzzSaveName(f *testing.F) {
	for _, s := range []string{"a.bin", "../../etc/passwd", `..\..\x`, "/abs/path", ".", "..", "", "a/.", ".hidden", "x.tar.gz"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, name string, n int) {
		base, err := safeName(name)
		if err != nil {
			return
		}
		if n < 0 || n > maxNumbered {
			n = 1
		}
		out := "/srv/out"
		p := numbered(filepath.Join(out, base), n) + partSuffix
		if filepath.Dir(p) != out || strings.ContainsAny(filepath.Base(p), "/") {
			t.Fatalf("name %q, number %d: %q is outside %s", name, n, p, out)
		}
	})
}
