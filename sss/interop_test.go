package sss

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gfshareTools returns the paths of gfsplit and gfcombine (Debian package
// libgfshare-bin). Without them the interop tests are skipped, except in
// CI (CI=true), where that is a failure.
func gfshareTools(t *testing.T) (split, combine string) {
	t.Helper()
	split, err1 := exec.LookPath("gfsplit")
	combine, err2 := exec.LookPath("gfcombine")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("libgfshare-bin must be installed in CI (gfsplit/gfcombine not found)")
		}
		t.Skip("gfsplit/gfcombine not installed (apt-get install libgfshare-bin)")
	}
	return split, combine
}

var interopSizes = []int{0, 1, 1000, 100000}

var interopConfigs = []kn{{3, 5}, {2, 2}, {5, 9}}

// shareFileName is gfsplit's naming: STEM.NNN with NNN the x coordinate
// in three decimal digits.
func shareFileName(stem string, x byte) string {
	return fmt.Sprintf("%s.%03d", stem, x)
}

func TestInteropOursToGfcombine(t *testing.T) {
	_, gfcombine := gfshareTools(t)
	for _, mode := range asmModes() {
		t.Run(mode.name, func(t *testing.T) {
			defer mode.set()()
			testInteropOursToGfcombine(t, gfcombine)
		})
	}
}

func testInteropOursToGfcombine(t *testing.T, gfcombine string) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range interopConfigs {
		for _, size := range interopSizes {
			t.Run(fmt.Sprintf("%v/%d", c, size), func(t *testing.T) {
				dir := t.TempDir()
				secret := randBytes(r, size)
				shares, err := SplitX(secret, c.k, randXs(r, c.n))
				if err != nil {
					t.Fatal(err)
				}
				stem := filepath.Join(dir, "secret")
				for _, s := range shares {
					if err := os.WriteFile(shareFileName(stem, s.X), s.Y, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				// A random k-subset, and all n shares.
				for _, idx := range [][]int{r.Perm(c.n)[:c.k], r.Perm(c.n)} {
					args := []string{"-o", filepath.Join(dir, "out")}
					for _, i := range idx {
						args = append(args, shareFileName(stem, shares[i].X))
					}
					if out, err := exec.Command(gfcombine, args...).CombinedOutput(); err != nil {
						t.Fatalf("gfcombine: %v\n%s", err, out)
					}
					got, err := os.ReadFile(filepath.Join(dir, "out"))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("gfcombine with %d shares did not recover our secret", len(idx))
					}
				}
			})
		}
	}
}

func TestInteropGfsplitToOurs(t *testing.T) {
	gfsplit, _ := gfshareTools(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, c := range interopConfigs {
		for _, size := range interopSizes {
			t.Run(fmt.Sprintf("%v/%d", c, size), func(t *testing.T) {
				dir := t.TempDir()
				secret := randBytes(r, size)
				in := filepath.Join(dir, "in")
				if err := os.WriteFile(in, secret, 0o600); err != nil {
					t.Fatal(err)
				}
				stem := filepath.Join(dir, "share")
				cmd := exec.Command(gfsplit, "-n", strconv.Itoa(c.k), "-m", strconv.Itoa(c.n), in, stem)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("gfsplit: %v\n%s", err, out)
				}
				files, err := filepath.Glob(stem + ".*")
				if err != nil {
					t.Fatal(err)
				}
				if len(files) != c.n {
					t.Fatalf("gfsplit wrote %d files, want %d", len(files), c.n)
				}
				shares := make([]Share, len(files))
				for i, f := range files {
					suffix := f[strings.LastIndexByte(f, '.')+1:]
					x, err := strconv.Atoi(suffix)
					if err != nil || len(suffix) != 3 || x < 1 || x > 255 {
						t.Fatalf("unexpected share file name %q", f)
					}
					y, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					shares[i] = Share{X: byte(x), Y: y}
				}
				for range 3 {
					idx := r.Perm(c.n)[:c.k]
					got, err := Combine(pick(shares, idx))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, secret) {
						t.Fatalf("our Combine did not recover gfsplit's secret from %v", idx)
					}
				}
				got, err := Combine(shares)
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("our Combine of all gfsplit shares failed: %v", err)
				}
			})
		}
	}
}
