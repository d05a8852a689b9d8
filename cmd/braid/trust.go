package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/braidnet/braid"
	"github.com/braidnet/braid/internal/secure"
)

// Path security flags: how a client decides to trust a server, and how a server presents
// itself and decides which clients to accept. See docs/SECURITY.md.

// configDir is Braid's directory in the user's configuration directory (~/.config/braid).
func configDir() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".braid"
	}
	return filepath.Join(dir, "braid")
}

// clientTrust holds a client's security flags.
type clientTrust struct {
	insecure    bool
	fingerprint string
	ca          string
	serverName  string
	knownHosts  string
	cert, key   string
	tokenFile   string
	requirePQ   bool
}

func addClientTrustFlags(fs *flag.FlagSet) *clientTrust {
	ct := &clientTrust{}
	fs.BoolVar(&ct.insecure, "insecure", false, "plain TCP, no TLS: anyone on a path can read it, and join the session (the server must be --insecure too)")
	fs.StringVar(&ct.fingerprint, "server-fingerprint", "", "trust only the server with this key fingerprint (SHA256:..., as braid serve prints it)")
	fs.StringVar(&ct.ca, "ca", "", "verify the server's certificate chain against this PEM CA bundle instead of a fingerprint")
	fs.StringVar(&ct.serverName, "server-name", "", "with --ca: the name the server's certificate must carry (default: the address's host)")
	fs.StringVar(&ct.knownHosts, "known-hosts", filepath.Join(configDir(), "known_hosts"), "trust-on-first-use store of server fingerprints, used without --server-fingerprint or --ca")
	fs.StringVar(&ct.cert, "cert", "", "client certificate (PEM) to authenticate with; needs --key")
	fs.StringVar(&ct.key, "key", "", "private key (PEM) of --cert")
	fs.StringVar(&ct.tokenFile, "token-file", "", "file holding the server's pre-shared client token")
	fs.BoolVar(&ct.requirePQ, "require-pq", false, "refuse paths whose key exchange is not post-quantum (X25519MLKEM768)")
	return ct
}

// apply sets cfg's security for a session whose first path goes to addr; notes (a fingerprint
// recorded on first use) go to stderr.
func (ct *clientTrust) apply(cfg *braid.Config, addr string, stderr io.Writer) error {
	if ct.insecure {
		if ct.fingerprint != "" || ct.ca != "" || ct.cert != "" || ct.tokenFile != "" || ct.requirePQ {
			return errors.New("--insecure turns TLS off; it cannot be combined with --server-fingerprint, --ca, --cert, --token-file or --require-pq")
		}
		fmt.Fprintln(stderr, "braid: warning: --insecure: paths are plain TCP, readable and forgeable by anyone on them")
		cfg.Insecure = true
		return nil
	}
	if ct.fingerprint != "" && ct.ca != "" {
		return errors.New("give --server-fingerprint or --ca, not both")
	}
	conf := &tls.Config{ServerName: ct.serverName}
	switch {
	case ct.fingerprint != "":
		cfg.ServerFingerprint = ct.fingerprint
	case ct.ca != "":
		pool, err := loadCAs("--ca", ct.ca)
		if err != nil {
			return err
		}
		conf.RootCAs = pool
	default:
		// Trust on first use, keyed by the first path's address: every path must then present
		// the same key.
		kh := &secure.KnownHosts{File: ct.knownHosts, Added: func(a, fp string) {
			fmt.Fprintf(stderr, "braid: trusting %s on first use: fingerprint %s, recorded in %s\n", a, fp, ct.knownHosts)
		}}
		conf.InsecureSkipVerify = true // the fingerprint check below replaces chain verification
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			return kh.Verify(addr, secure.Fingerprint(cs.PeerCertificates[0]))
		}
	}
	if (ct.cert == "") != (ct.key == "") {
		return errors.New("--cert and --key go together")
	}
	if ct.cert != "" {
		cert, err := secure.LoadKeyPair(ct.cert, ct.key)
		if err != nil {
			return err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if ct.tokenFile != "" {
		tok, err := readToken(ct.tokenFile)
		if err != nil {
			return err
		}
		cfg.Token = tok
	}
	cfg.TLS = conf
	cfg.RequirePostQuantum = ct.requirePQ
	// What the flags set is checked here, where a mistake is a usage error (exit 2), and
	// not first when a session is dialed.
	return cfg.Validate()
}

// frameTLS is the TLS configuration of a single-path frame client to addr, or nil with
// --insecure.
func (ct *clientTrust) frameTLS(addr string, stderr io.Writer) (*tls.Config, error) {
	var cfg braid.Config
	if err := ct.apply(&cfg, addr, stderr); err != nil || cfg.Insecure {
		return nil, err
	}
	conf, err := secure.ClientConfig(secure.Options{Base: cfg.TLS, ServerFingerprint: cfg.ServerFingerprint, RequirePQ: cfg.RequirePostQuantum}, addr)
	return conf, err
}

// loadCAs reads a PEM bundle of CA certificates named by flag.
func loadCAs(flag, name string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", flag, name)
	}
	return pool, nil
}

// readToken reads a token file: its first line, without surrounding space.
func readToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", name)
	}
	return tok, nil
}

// serverTrust holds a server's security flags.
type serverTrust struct {
	insecure          bool
	identity          string
	cert, key         string
	clientCA          string
	authorizedClients string
	tokenFile         string
	requirePQ         bool
}

func addServerTrustFlags(fs *flag.FlagSet) *serverTrust {
	st := &serverTrust{}
	fs.BoolVar(&st.insecure, "insecure", false, "plain TCP, no TLS: anyone on a path can read it, and join its session")
	fs.StringVar(&st.identity, "identity", filepath.Join(configDir(), "server"), "directory of the server's key and self-signed certificate, created on first run")
	fs.StringVar(&st.cert, "cert", "", "certificate (PEM chain) to present instead of the --identity one; needs --key")
	fs.StringVar(&st.key, "key", "", "private key (PEM) of --cert")
	fs.StringVar(&st.clientCA, "client-ca", "", "accept clients whose certificate chains to this PEM CA bundle")
	fs.StringVar(&st.authorizedClients, "authorized-clients", "", "accept clients whose certificate key has a fingerprint listed in this file (one per line)")
	fs.StringVar(&st.tokenFile, "token-file", "", "accept clients that present the token in this file")
	fs.BoolVar(&st.requirePQ, "require-pq", false, "refuse paths whose key exchange is not post-quantum (X25519MLKEM768)")
	return st
}

// apply sets cfg's server security and returns a line describing the identity for the log.
func (st *serverTrust) apply(cfg *braid.Config, stdout io.Writer) error {
	if st.insecure {
		if st.cert != "" || st.clientCA != "" || st.authorizedClients != "" || st.tokenFile != "" || st.requirePQ {
			return errors.New("--insecure turns TLS off; it cannot be combined with --cert, --client-ca, --authorized-clients, --token-file or --require-pq")
		}
		cfg.Insecure = true
		return nil
	}
	if (st.cert == "") != (st.key == "") {
		return errors.New("--cert and --key go together")
	}
	var cert tls.Certificate
	var err error
	if st.cert != "" {
		if cert, err = secure.LoadKeyPair(st.cert, st.key); err != nil {
			return err
		}
	} else {
		var created bool
		if cert, created, err = secure.LoadOrCreate(st.identity); err != nil {
			return fmt.Errorf("server identity: %w", err)
		}
		if created {
			fmt.Fprintf(stdout, "created a new server identity in %s\n", st.identity)
		}
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	if st.clientCA != "" {
		pool, err := loadCAs("--client-ca", st.clientCA)
		if err != nil {
			return err
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if st.authorizedClients != "" {
		if cfg.AuthorizedClients, err = readFingerprints(st.authorizedClients); err != nil {
			return err
		}
	}
	if st.tokenFile != "" {
		if cfg.Token, err = readToken(st.tokenFile); err != nil {
			return err
		}
	}
	if st.clientCA != "" && cfg.Token == "" && len(cfg.AuthorizedClients) == 0 {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cfg.TLS = conf
	cfg.RequirePostQuantum = st.requirePQ
	return nil
}

// readFingerprints reads one fingerprint per line, skipping blank lines and # comments.
func readFingerprints(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fp, err := secure.ParseFingerprint(strings.Fields(line)[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, fp)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no fingerprint", name)
	}
	return out, nil
}
