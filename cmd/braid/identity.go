package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/braidnet/braid/internal/secure"
)

// runIdentity shows (creating it on first use) a key and self-signed certificate: a server's,
// as braid serve uses it, or a client's, for servers that authorize clients by key.
func runIdentity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("identity", "[--dir DIR]", stderr)
	dir := fs.String("dir", filepath.Join(configDir(), "server"), "identity directory (key.pem, cert.pem); created with a new key if it does not exist")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	cert, created, err := secure.LoadOrCreate(*dir)
	if err != nil {
		return err
	}
	fp, err := secure.CertFingerprint(cert)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created a new identity in %s\n", *dir)
	}
	fmt.Fprintf(stdout, "fingerprint %s\ncertificate %s\nkey         %s\n", fp, filepath.Join(*dir, secure.CertFile), filepath.Join(*dir, secure.KeyFile))
	return nil
}
