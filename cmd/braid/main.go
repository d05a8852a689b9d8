// Command braid runs Braid's server, clients, benchmark and demo.
//
// Usage:
//
//	braid <command> [flags] [args]
//
// Run "braid help" for the list of commands and "braid <command> -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand; each lives in its own file.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run a Braid server", runServe},
		{"send", "send a message or a file to a server", runSend},
		{"ping", "measure round-trip time to a server", runPing},
		{"bench", "measure latency and throughput beside raw TCP", runBench},
		{"demo", "run a server and a client on loopback and show the traffic", runDemo},
		{"identity", "show or create a key and certificate (a server's, or a client's)", runIdentity},
		{"eval", "run evaluation scenarios over emulated paths and report", runEval},
		{"tunnel", "carry TCP connections over a session: -L port forwarding, -D SOCKS5", runTunnel},
		{"cat", "join standard input and output to one stream over a session (like nc)", runCat},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and maps its outcome to an exit code: 0 success, 1 failure,
// 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil || errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintf(stderr, "braid %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "braid: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "braid: multipath transport over TCP\n\nUsage: braid <command> [flags] [args]\n\nCommands:")
	width := 0
	for _, c := range commands() {
		width = max(width, len(c.name))
	}
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'braid <command> -h' for a command's flags.")
}

// errUsage reports a command line that the flag set accepted but the command cannot use; the
// message has already been printed.
var errUsage = errors.New("usage")

// newFlagSet returns a flag set for a subcommand whose errors and help go to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("braid "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: braid %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning a parse failure into errUsage (the flag package has already
// printed why).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// usageError prints msg and the usage, and returns errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return errUsage
}
