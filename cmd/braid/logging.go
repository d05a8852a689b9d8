package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// logFlags are the logging flags every subcommand shares.
type logFlags struct {
	format  string
	verbose bool
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	lf := &logFlags{}
	fs.StringVar(&lf.format, "log-format", "text", "log format: text or json")
	fs.BoolVar(&lf.verbose, "v", false, "verbose: log every frame's direction, type and size")
	return lf
}

// logger builds the logger the flags ask for, writing to w.
func (lf *logFlags) logger(w io.Writer) (*slog.Logger, error) { return lf.loggerAt(w, slog.LevelInfo) }

// loggerAt is logger with level in place of Info (-v still means Debug).
func (lf *logFlags) loggerAt(w io.Writer, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	if lf.verbose {
		opts.Level = slog.LevelDebug
	}
	switch lf.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown --log-format %q (want text or json)", lf.format)
}
