package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sluice-dev/sluice/internal/atomicfile"
	"github.com/sluice-dev/sluice/planner"
)

func init() { implement("plan", runPlan) }

func runPlan(e *env, args []string) int {
	c := findCommand("plan")
	fs := newFlags(e, c)
	var f planFlags
	f.register(fs)
	out := fs.String("out", "", "save the plan to `FILE` for `sluice apply FILE`")
	jsonOut := fs.Bool("json", false, "print the plan as JSON (SPEC §3)")
	format := fs.String("format", "text", "output `FORMAT`: text or markdown (for pull-request comments)")
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when there is nothing to do, 1 on error, 2 when there are changes or drift")
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: plan takes no arguments (got %q); use -target=ADDR to narrow it.\n", pos[0])
		return exitError
	}
	if *format != "text" && *format != "markdown" {
		fmt.Fprintf(e.stderr, "Error: -format must be text or markdown, not %q.\n", *format)
		return exitError
	}
	ctx := context.Background()
	s, diags, err := e.open(ctx, &f, "plan", !*jsonOut)
	if s == nil {
		return e.openFailed(diags, err, *jsonOut)
	}
	defer s.close()
	p := s.makePlan(ctx, &f, s.cfg)
	p.Diagnostics = append(diags, p.Diagnostics...)
	if *jsonOut {
		_ = planner.WriteJSON(e.stdout, p, s.cfg.Files)
	} else {
		e.printDiagnostics(p.Diagnostics, s.cfg.Files)
		if !p.HasErrors() {
			if *format == "markdown" {
				_ = planner.WriteMarkdown(e.stdout, p)
			} else {
				_ = planner.WriteText(e.stdout, p, planner.TextOptions{Color: e.color})
			}
		}
	}
	if p.HasErrors() {
		if !*jsonOut {
			fmt.Fprintln(e.stderr, "Planning failed: fix the errors above and plan again.")
		}
		return exitError
	}
	if *out != "" {
		if err := writeSavedPlan(e, *out, p); err != nil {
			fmt.Fprintf(e.stderr, "Error: cannot save the plan: %s\n", err)
			return exitError
		}
		if !*jsonOut {
			fmt.Fprintf(e.stdout, "\nSaved the plan to %s. Apply exactly it with:\n  sluice apply %s\n", *out, *out)
		}
	}
	if *detailed && !p.Empty() {
		return exitChanges
	}
	return exitOK
}

func writeSavedPlan(e *env, path string, p *planner.Plan) error {
	var buf bytes.Buffer
	if err := planner.WriteSaved(&buf, p, version, time.Now()); err != nil {
		return err
	}
	target := e.path(path)
	// A plan file is replaced whole, so that a crash never leaves half a
	// plan for apply to refuse; a device or pipe (-out=/dev/stdout) is
	// written to as it is.
	if fi, err := os.Stat(target); err == nil && !fi.Mode().IsRegular() {
		return os.WriteFile(target, buf.Bytes(), 0o600)
	}
	return atomicfile.WriteFile(target, buf.Bytes(), 0o600)
}
