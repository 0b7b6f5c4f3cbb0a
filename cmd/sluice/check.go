package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-dev/sluice/providers"
)

func init() { implement("check", runCheck) }

// checkJSON is `check -json` (SPEC §7).
type checkJSON struct {
	Source string            `json:"source"`
	Valid  bool              `json:"valid"`
	Checks []providers.Check `json:"checks"`
}

func runCheck(e *env, args []string) int {
	c := findCommand("check")
	fs := newFlags(e, c)
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	_, src, code := e.sourceArg(&vf, c, pos)
	if code != proceed {
		return code
	}
	if src.Type != "postgres" {
		fmt.Fprintf(e.stderr, "Error: check verifies the CDC prerequisites of PostgreSQL sources; %s is a %s source, which has none.\n", src.Address(), src.Type)
		return exitError
	}
	ctx, cancel := commandContext()
	defer cancel()
	p, err := openSource(ctx, src, "check")
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	defer p.Close()
	ch, ok := p.(providers.Checker)
	if !ok {
		fmt.Fprintf(e.stderr, "Error: the %s provider cannot check CDC prerequisites.\n", providerTitle(src.Type))
		return exitError
	}
	checks, err := ch.Check(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	valid := providers.ChecksValid(checks)
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(checkJSON{Source: src.Address(), Valid: valid, Checks: checks})
	} else {
		writeChecks(e.stdout, src.Address(), checks)
	}
	if !valid {
		return exitChanges
	}
	return exitOK
}

// writeChecks prints one line per check, ✓ passed, ✗ failed, ! a warning,
// with the fix indented under what is not right.
func writeChecks(w io.Writer, addr string, checks []providers.Check) {
	fmt.Fprintf(w, "CDC prerequisites of %s:\n\n", addr)
	failed, warned := 0, 0
	for _, c := range checks {
		mark := "✓"
		switch {
		case !c.OK && c.Warning:
			mark = "!"
			warned++
		case !c.OK:
			mark = "✗"
			failed++
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Check, c.Message)
		if !c.OK && c.Fix != "" {
			lead := "    fix: "
			for _, line := range strings.Split(c.Fix, "\n") {
				fmt.Fprintf(w, "%s%s\n", lead, line)
				lead = "         "
			}
		}
	}
	fmt.Fprintln(w)
	switch {
	case failed > 0:
		fmt.Fprintf(w, "%d of %d checks failed", failed, len(checks))
	default:
		fmt.Fprintf(w, "All checks passed")
	}
	if warned > 0 {
		fmt.Fprintf(w, ", %d warning(s)", warned)
	}
	fmt.Fprintln(w, ".")
}
