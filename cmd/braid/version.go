package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion prints braid's version and how it was built, from the build information the Go
// toolchain embeds: the module version ("(devel)" for a build from a work tree), the VCS
// revision when it was recorded, the Go version and platform; -v adds the dependencies.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "[-v]", stderr)
	deps := fs.Bool("v", false, "also list the modules braid was built with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(stdout, "braid (no build information) %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	fmt.Fprintf(stdout, "braid %s %s %s/%s\n", moduleVersion(info), info.GoVersion, runtime.GOOS, runtime.GOARCH)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		dirty := ""
		if settings["vcs.modified"] == "true" {
			dirty = " (modified)"
		}
		fmt.Fprintf(stdout, "revision %s%s %s\n", rev, dirty, settings["vcs.time"])
	}
	if *deps {
		fmt.Fprintf(stdout, "module %s\n", info.Main.Path)
		for _, d := range info.Deps {
			fmt.Fprintf(stdout, "  %s %s\n", d.Path, d.Version)
		}
	}
	return nil
}

// moduleVersion is the main module's version: a release tag for "go install ...@vX", or
// "(devel)" for a build from a work tree.
func moduleVersion(info *debug.BuildInfo) string {
	if v := info.Main.Version; v != "" {
		return v
	}
	return "(devel)"
}
