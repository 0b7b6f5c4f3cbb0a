package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/atomicfile"
)

func init() { implement("fmt", runFmt) }

func runFmt(e *env, args []string) int {
	c := findCommand("fmt")
	fs := newFlags(e, c)
	check := fs.Bool("check", false, "change nothing; exit 3 if any file is not formatted")
	diff := fs.Bool("diff", false, "print the changes as a unified diff")
	list := fs.Bool("list", true, "print the names of files whose formatting differs")
	paths, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(paths) == 0 {
		paths = []string{e.dir}
	}
	if len(paths) == 1 && paths[0] == "-" {
		return fmtStdin(e)
	}
	var files []string
	for _, p := range paths {
		if !filepath.IsAbs(p) && p != e.dir {
			p = filepath.Join(e.dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s: no such file or directory\n", p)
			return exitError
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(p, "*.hcl"))
		sort.Strings(matches)
		files = append(files, matches...)
	}
	status, unformatted := exitOK, 0
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s: %s\n", path, err)
			status = exitError
			continue
		}
		out, diags := config.Format(src, path)
		if diags.HasErrors() {
			e.printDiagnostics(diags, map[string]*hcl.File{path: {Bytes: src}})
			status = exitError
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		unformatted++
		if *list {
			fmt.Fprintln(e.stdout, path)
		}
		if *diff {
			writeDiff(e.stdout, path, src, out)
		}
		if !*check {
			if err := writeFileAtomic(path, out); err != nil {
				fmt.Fprintf(e.stderr, "Error: cannot write %s: %s\n", path, err)
				status = exitError
			}
		}
	}
	if status == exitOK && *check && unformatted > 0 {
		return exitFormat
	}
	return status
}

func fmtStdin(e *env) int {
	src, err := io.ReadAll(e.stdin)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: reading standard input: %s\n", err)
		return exitError
	}
	out, diags := config.Format(src, "<stdin>")
	if diags.HasErrors() {
		e.printDiagnostics(diags, map[string]*hcl.File{"<stdin>": {Bytes: src}})
		return exitError
	}
	_, _ = e.stdout.Write(out)
	return exitOK
}

func writeDiff(w io.Writer, path string, before, after []byte) {
	text, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(string(before)),
		B:        difflib.SplitLines(string(after)),
		FromFile: "old/" + filepath.ToSlash(path),
		ToFile:   "new/" + filepath.ToSlash(path),
		Context:  3,
	})
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	fmt.Fprint(w, text)
}

// writeFileAtomic replaces a file crash-safely, keeping its mode, so that
// an interrupted fmt never leaves a half-written configuration.
func writeFileAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, fi.Mode().Perm())
}
