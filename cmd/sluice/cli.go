package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/config"
)

// Exit codes shared by every command (SPEC §1).
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // plan -detailed-exitcode; check: some checks fail
	exitFormat  = 3 // fmt -check: some file is not formatted
)

// env is what a command runs in; tests build one in-process.
type env struct {
	dir    string // the configuration directory (-chdir)
	color  bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one sluice subcommand.
type command struct {
	name     string
	synopsis string
	usage    string // flags and arguments, after "sluice NAME"
	run      func(e *env, args []string) int
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("sluice", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	chdir := global.String("chdir", "", "")
	noColor := global.Bool("no-color", false, "")
	showVersion := global.Bool("version", false, "")
	showHelp := global.Bool("help", false, "")
	global.BoolVar(showHelp, "h", false, "")
	if err := global.Parse(args); err != nil {
		fmt.Fprintf(stderr, "Error: %s\n\n", err)
		writeHelp(stderr)
		return exitError
	}
	e := &env{
		dir:    ".",
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		color:  !*noColor && os.Getenv("NO_COLOR") == "" && isTerminal(stderr),
	}
	if *chdir != "" {
		fi, err := os.Stat(*chdir)
		if err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "Error: -chdir=%s: not a directory\n", *chdir)
			return exitError
		}
		e.dir = *chdir
	}
	rest := global.Args()
	switch {
	case *showVersion:
		return runVersion(e, nil)
	case *showHelp || len(rest) == 0:
		writeHelp(stdout)
		if len(rest) == 0 && !*showHelp {
			return exitError
		}
		return exitOK
	}
	c := findCommand(rest[0])
	if c == nil {
		names := make([]string, len(commands))
		for i, c := range commands {
			names[i] = c.name
		}
		fmt.Fprintf(stderr, "Error: unknown command %q.%s Run `sluice help` for the list.\n", rest[0], closest(rest[0], names))
		return exitError
	}
	return c.run(e, rest[1:])
}

func closest(given string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := levenshtein.Distance(given, n, nil); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newFlags makes a command's flag set; -h prints its usage.
func newFlags(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// proceed is parseArgs's answer when the command should go on.
const proceed = -1

// parseArgs parses flags that may come before, between or after the
// positional arguments ("inspect postgres.prod -json"), which the standard
// flag package alone does not allow. It returns the exit code to stop with
// (after -h, or a bad flag), or proceed.
func parseArgs(e *env, c *command, fs *flag.FlagSet, args []string) ([]string, int) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeCommandHelp(e.stdout, c, fs)
				return nil, exitOK
			}
			fmt.Fprintf(e.stderr, "Error: %s\n\n", err)
			writeCommandHelp(e.stderr, c, fs)
			return nil, exitError
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, proceed
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// stringsFlag collects a repeatable flag (-var, -var-file, -target).
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// varFlags are the -var and -var-file flags of commands that load values.
type varFlags struct {
	vars, files stringsFlag
}

func (v *varFlags) register(fs *flag.FlagSet) {
	fs.Var(&v.vars, "var", "set a variable: `NAME=VALUE` (repeatable)")
	fs.Var(&v.files, "var-file", "read variables from a `FILE` of NAME = VALUE lines (repeatable)")
}

// loadConfig loads the configuration with the command's variables and
// prints the diagnostics for people. The returned diagnostics are for
// callers that render JSON instead (print=false).
func (e *env) loadConfig(v *varFlags, print bool) (*config.Config, hcl.Diagnostics) {
	return e.loadConfigWith(v, print, config.Options{})
}

// loadStateConfig loads the configuration for commands that need only its
// state block: variables without a value are no error there.
func (e *env) loadStateConfig(v *varFlags) (*config.Config, hcl.Diagnostics) {
	return e.loadConfigWith(v, true, config.Options{AllowMissingVariables: true})
}

func (e *env) loadConfigWith(v *varFlags, print bool, opts config.Options) (*config.Config, hcl.Diagnostics) {
	if v != nil {
		opts.Vars = v.vars
		for _, f := range v.files {
			if !filepath.IsAbs(f) {
				f = filepath.Join(e.dir, f)
			}
			opts.VarFiles = append(opts.VarFiles, f)
		}
	}
	cfg, diags := config.Load(e.dir, opts)
	if print {
		e.printDiagnostics(diags, cfg.Files)
	}
	return cfg, diags
}

func (e *env) printDiagnostics(diags hcl.Diagnostics, files map[string]*hcl.File) {
	if len(diags) == 0 {
		return
	}
	dw := &config.DiagnosticWriter{W: e.stderr, Files: files, Color: e.color}
	_ = dw.WriteDiagnostics(sortDiagnostics(diags))
}

// sortDiagnostics orders diagnostics by file and position, errors before
// warnings at the same place, so that output is stable and reads top-down.
func sortDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	out := append(hcl.Diagnostics(nil), diags...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Subject, out[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Byte != b.Start.Byte:
			return a.Start.Byte < b.Start.Byte
		}
		return out[i].Severity < out[j].Severity
	})
	return out
}

func writeHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: sluice [-chdir=DIR] [-no-color] COMMAND [flags] [args]

sluice manages data-warehouse sources as code: sources, tables, sync types,
prefixes and webhooks described in *.hcl files, planned and applied like
infrastructure, synced by a daemon.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.synopsis)
	}
	fmt.Fprint(w, `
Global flags:
  -chdir=DIR    read the configuration in DIR instead of the current directory
  -no-color     do not color the output
  -version      print the version

Run "sluice COMMAND -h" for a command's flags.
`)
}

func writeCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: sluice %s %s\n\n  %s\n", c.name, c.usage, c.synopsis)
	if fs == nil {
		return
	}
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		flagText := "-" + f.Name
		if name != "" {
			flagText += "=" + name
		}
		lines = append(lines, fmt.Sprintf("  %-22s %s", flagText, usage))
	})
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(lines, "\n"))
	}
}

// path resolves a path given on the command line against -chdir, as
// Terraform does: -chdir switches directory before anything else.
func (e *env) path(p string) string {
	if filepath.IsAbs(p) || p == "-" {
		return p
	}
	return filepath.Join(e.dir, p)
}
