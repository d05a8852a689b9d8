// Command braid runs Braid's server, clients, benchmark and demo.
//
// Usage:
//
//	braid <command> [flags] [args]
//
// Run "braid help" for the list of commands and "braid help <command>" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
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
		{"bench", "measure latency and throughput beside raw TCP, or against a server", runBench},
		{"demo", "run a server and a client on loopback and show the traffic", runDemo},
		{"identity", "show or create a key and certificate (a server's, or a client's)", runIdentity},
		{"eval", "run evaluation scenarios over emulated paths and report", runEval},
		{"tunnel", "carry TCP connections over a session: -L port forwarding, -D SOCKS5", runTunnel},
		{"cat", "join standard input and output to one stream over a session (like nc)", runCat},
		{"version", "print the version of braid and how it was built", runVersion},
		{"help", "show the commands, or a command's usage and flags", nil},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the process at once
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report a command ended by Ctrl-C
)

// run dispatches to a subcommand and maps its outcome to an exit code: 0 success, 1 failure,
// 2 usage error, 130 interrupted (the command has printed what it had done by then).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help":
		usage(stdout)
		return exitOK
	case "--version", "-version":
		args = []string{"version"}
	case "help":
		if len(args) == 1 || len(args) == 2 && args[1] == "help" {
			usage(stdout)
			return exitOK
		}
		if len(args) > 2 || findCommand(args[1]) == nil {
			fmt.Fprintf(stderr, "braid help: unknown command %q\n\n", strings.Join(args[1:], " "))
			usage(stderr)
			return exitUsage
		}
		// A command's help goes to standard output when asked for by name.
		return run(ctx, []string{args[1], "-h"}, stdout, stdout)
	}
	c := findCommand(args[0])
	if c == nil || c.run == nil {
		fmt.Fprintf(stderr, "braid: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, errSilent):
		return exitFailure
	}
	fmt.Fprintf(stderr, "braid %s: %s\n", c.name, errorText(err))
	return exitFailure
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
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
	fmt.Fprintln(w, "\nRun 'braid help <command>' for a command's usage and flags. Flags may come before or after\nthe arguments. Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.")
}

// errUsage reports a command line that the flag set accepted but the command cannot use; the
// message has already been printed.
var errUsage = errors.New("usage")

// errInterrupted reports a command ended by SIGINT or SIGTERM after printing what it had done.
var errInterrupted = errors.New("interrupted")

// errSilent reports a failure the command has already explained on its output (ping's loss).
var errSilent = errors.New("failed")

// dialPrefix matches the repetition a dial error carries: the engine's "dial ADDR: " around the
// net package's "dial tcp ADDR: ".
var dialPrefix = regexp.MustCompile(`dial (\S+): dial tcp \S+: `)

// errorText is err's message as the CLI prints it, after its own "braid CMD: " prefix: without
// the "braid: " each wrapped layer of the library's errors starts with, and without the net
// package's repetition of the address dialed.
func errorText(err error) string {
	msg := strings.ReplaceAll(err.Error(), "braid: ", "")
	return dialPrefix.ReplaceAllString(msg, "dial $1: ")
}

// newFlagSet returns a flag set for a subcommand whose errors and help go to stderr. Its Usage
// prints the full help: synopsis, the command's description and every flag.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("braid "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: braid %s %s\n\n", name, synopsis)
		if doc := commandDocs[name]; doc != "" {
			fmt.Fprintf(stderr, "%s\n\n", strings.TrimSpace(doc))
		} else if c := findCommand(name); c != nil {
			fmt.Fprintf(stderr, "%s.\n\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
		}
		fmt.Fprintln(stderr, "Flags:")
		printFlags(fs)
	}
	synopses.Store(fs, synopsis)
	return fs
}

// printFlags prints fs's flags as PrintDefaults does, leaving out those for braid's own use, whose
// usage begins "internal:" (the netns agent's --agent).
func printFlags(fs *flag.FlagSet) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	shown.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Usage, "internal:") {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue // not the value parsed so far
		}
	})
	shown.PrintDefaults()
}

// synopses remembers each flag set's synopsis, for the short usage printed after a mistake.
var synopses sync.Map

// shortUsage prints the one-line synopsis and where the full help is.
func shortUsage(fs *flag.FlagSet) {
	syn, _ := synopses.Load(fs)
	name := strings.TrimPrefix(fs.Name(), "braid ")
	fmt.Fprintf(fs.Output(), "Usage: braid %s %v\nRun 'braid help %s' for the flags.\n", name, syn, name)
}

// parseFlags parses args, flags and arguments in any order ("braid send ADDR --paths 2"; after
// "--" everything is an argument); fs.Args() then holds the arguments. -h prints the full help;
// a parse failure prints the flag package's reason and the short usage, and becomes errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	full := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = full }()
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				full()
				return err
			}
			shortUsage(fs)
			return errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

// usageError prints msg and the short usage, and returns errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), errorText(fmt.Errorf(format, args...)))
	shortUsage(fs)
	return errUsage
}
