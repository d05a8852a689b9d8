package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeCommands returns every braid invocation in README.md's code blocks, each as its
// arguments: in a block with "$ " prompts the prompted lines, in a "sh" block without any every line,
// that starts with "braid" or "go run ./cmd/braid" (after "sudo"), joined across backslash
// continuations, up to a pipe, redirection or comment. Go blocks are skipped.
func readmeCommands(readme string) [][]string {
	var cmds [][]string
	blocks := regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```").FindAllStringSubmatch(readme, -1)
	for _, b := range blocks {
		if b[1] == "go" {
			continue
		}
		lines := strings.Split(b[2], "\n")
		prompted := strings.Contains(b[2], "$ ")
		if !prompted && b[1] != "sh" {
			continue // output, not commands
		}
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			if prompted && !strings.HasPrefix(line, "$ ") {
				continue
			}
			line = strings.TrimPrefix(strings.TrimPrefix(line, "$ "), "sudo ")
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
			}
			// Each command of a pipeline (printf ... | braid cat ...) on its own.
			for _, part := range strings.Split(line, "|") {
				part = strings.TrimSpace(part)
				var rest string
				switch {
				case strings.HasPrefix(part, "braid "):
					rest = strings.TrimPrefix(part, "braid ")
				case strings.HasPrefix(part, "go run ./cmd/braid "):
					rest = strings.TrimPrefix(part, "go run ./cmd/braid ")
				default:
					continue
				}
				if j := strings.IndexAny(rest, "#<>"); j >= 0 {
					rest = rest[:j]
				}
				cmds = append(cmds, shellFields(rest))
			}
		}
	}
	return cmds
}

// shellFields splits s into words as a shell would for these examples: spaces separate words,
// except inside double or single quotes, which are removed.
func shellFields(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// commandFlags lists a command's flags, from its help.
func commandFlags(t *testing.T, name string) []string {
	t.Helper()
	code, out, _ := runCmd(t, context.Background(), "help", name)
	if code != 0 {
		t.Fatalf("braid help %s: exit %d", name, code)
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-zA-Z0-9-]+)`).FindAllStringSubmatch(out, -1) {
		flags = append(flags, m[1])
	}
	return flags
}

// TestReadmeCommands: every braid command in the README's examples parses (each is run with
// -h appended, which stops it after its flags were accepted), and every --flag the README
// mentions in a command's section is one of that command's flags.
func TestReadmeCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	cmds := readmeCommands(readme)
	if len(cmds) < 15 {
		t.Fatalf("found only %d braid commands in README.md: %q", len(cmds), cmds)
	}
	seen := map[string]bool{}
	for _, args := range cmds {
		if len(args) == 0 || findCommand(args[0]) == nil {
			t.Errorf("README: braid %q: no such command", args)
			continue
		}
		seen[args[0]] = true
		if args[0] == "help" || args[0] == "version" {
			if code, _, e := runCmd(t, context.Background(), args...); code != 0 {
				t.Errorf("README: braid %q: exit %d: %s", args, code, e)
			}
			continue
		}
		if code := run(context.Background(), append(slices.Clone(args), "-h"), io.Discard, io.Discard); code != 0 {
			_, _, e := runCmd(t, context.Background(), append(slices.Clone(args), "-h")...)
			t.Errorf("README: braid %q does not parse (exit %d): %s", args, code, e)
		}
	}
	for _, c := range commands() {
		if c.name != "help" && !seen[c.name] {
			t.Errorf("README shows no example of braid %s", c.name)
		}
	}
	// Flags mentioned in the prose of a command's section ("### send", to the next heading)
	// are that command's.
	sections := regexp.MustCompile(`(?m)^##+ `).Split(readme, -1)
	for _, sec := range sections[1:] {
		name, body, _ := strings.Cut(sec, "\n")
		name = strings.TrimSpace(name)
		if findCommand(name) == nil || name == "help" {
			continue
		}
		flags := commandFlags(t, name)
		for _, m := range regexp.MustCompile("`(--?[a-zA-Z][a-zA-Z0-9-]*)[ `=]").FindAllStringSubmatch(body, -1) {
			if f := strings.TrimLeft(m[1], "-"); !slices.Contains(flags, f) {
				t.Errorf("README, section %s, mentions %s, which braid %s does not have", name, m[1], name)
			}
		}
	}
}

func TestShellFields(t *testing.T) {
	got := shellFields(`send --message "hello there" --name 'a b' x`)
	if want := []string{"send", "--message", "hello there", "--name", "a b", "x"}; !slices.Equal(got, want) {
		t.Errorf("%q", got)
	}
}
