package main

import (
	"context"
	"fmt"
)

func init() { implement("destroy", runDestroy) }

// runDestroy plans the removal of everything recorded (as if every source
// block were deleted) and applies it, connecting with the configuration's
// credentials.
func runDestroy(e *env, args []string) int {
	c := findCommand("destroy")
	fs := newFlags(e, c)
	var f planFlags
	f.register(fs)
	autoApprove := fs.Bool("auto-approve", false, "destroy without asking for approval")
	jsonOut := fs.Bool("json", false, "print the result as JSON (needs -auto-approve)")
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: destroy takes no arguments; use -target=ADDR to narrow it.\n")
		return exitError
	}
	if *jsonOut && !*autoApprove {
		fmt.Fprintln(e.stderr, "Error: destroy -json cannot ask for approval; add -auto-approve.")
		return exitError
	}
	ctx := context.Background()
	s, diags, err := e.open(ctx, &f, "destroy", !*jsonOut)
	if s == nil {
		return e.openFailed(diags, err, *jsonOut)
	}
	defer s.close()
	empty := *s.cfg
	empty.Sources = nil
	if len(f.targets) > 0 {
		// Keep the sources that are not targeted, so only targets go.
		for _, src := range s.cfg.Sources {
			if !targeted(src.Address(), f.targets) {
				empty.Sources = append(empty.Sources, src)
			}
		}
	}
	f.refresh = false // nothing is created, so nothing needs checking first
	p := s.makePlan(ctx, &f, &empty)
	p.Diagnostics = append(diags, p.Diagnostics...)
	return e.execute(ctx, s, s.cfg, p, executeOptions{autoApprove: *autoApprove, jsonOut: *jsonOut, verb: "destroy"})
}
