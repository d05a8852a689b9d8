package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// logFlags are the logging flags every subcommand shares.
type logFlags struct {
	format  string
	verbose verbosity
}

// verbosity counts -v flags: each one given raises the log level one step.
type verbosity int

func (v *verbosity) String() string   { return strconv.Itoa(int(*v)) }
func (v *verbosity) IsBoolFlag() bool { return true }

// Set takes "true" for each -v, or a number (-v=2).
func (v *verbosity) Set(s string) error {
	if b, err := strconv.ParseBool(s); err == nil {
		if b {
			*v++
		} else {
			*v = 0
		}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count, not %q", s)
	}
	*v = verbosity(n)
	return nil
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	lf := &logFlags{}
	fs.StringVar(&lf.format, "log-format", "text", "log format: text or json")
	fs.Var(&lf.verbose, "v", "verbose: -v logs session and path events (path up, path closed), -v -v also every frame's direction, type and size")
	return lf
}

// logger builds the logger the flags ask for, writing to w. A client command logs warnings and
// errors only unless -v; a server logs its events (INFO) and, with -v, every frame.
func (lf *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	return lf.loggerFrom(w, slog.LevelWarn)
}

// serverLogger is logger for a command whose events are its output (serve).
func (lf *logFlags) serverLogger(w io.Writer) (*slog.Logger, error) {
	return lf.loggerFrom(w, slog.LevelInfo)
}

func (lf *logFlags) loggerFrom(w io.Writer, base slog.Level) (*slog.Logger, error) {
	level := base - slog.Level(4*lf.verbose) // slog's levels are 4 apart: WARN, INFO, DEBUG
	opts := &slog.HandlerOptions{Level: max(level, slog.LevelDebug)}
	switch lf.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown --log-format %q (want text or json)", lf.format)
}
