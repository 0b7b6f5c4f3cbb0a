package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/apply"
	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/planner"
)

func init() { implement("apply", runApply) }

// applyJSON is `apply -json`: what was applied, what failed, and why.
type applyJSON struct {
	FormatVersion string                  `json:"format_version"`
	Applied       []planner.Change        `json:"applied"`
	Failed        *planner.Change         `json:"failed"`
	Error         string                  `json:"error,omitempty"`
	Drift         []planner.Drift         `json:"drift"`
	Diagnostics   []config.JSONDiagnostic `json:"diagnostics"`
	Summary       planner.Summary         `json:"summary"`
}

func runApply(e *env, args []string) int {
	c := findCommand("apply")
	fs := newFlags(e, c)
	var f planFlags
	f.register(fs)
	autoApprove := fs.Bool("auto-approve", false, "apply without asking for approval")
	jsonOut := fs.Bool("json", false, "print the result as JSON (needs -auto-approve or a saved plan)")
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintf(e.stderr, "Error: apply takes at most one argument, a saved plan file.\n")
		return exitError
	}
	if *jsonOut && !*autoApprove && len(pos) == 0 {
		fmt.Fprintln(e.stderr, "Error: apply -json cannot ask for approval; add -auto-approve or apply a saved plan.")
		return exitError
	}
	ctx := context.Background()
	var saved *planner.Saved
	if len(pos) == 1 {
		fh, err := os.Open(e.path(pos[0]))
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: cannot read the saved plan: %s\n", err)
			return exitError
		}
		saved, err = planner.ReadSaved(fh)
		fh.Close()
		if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s: %s\n", pos[0], err)
			return exitError
		}
		f.refresh, f.targets = saved.Plan.Refreshed, saved.Plan.Targets
	}
	s, diags, err := e.open(ctx, &f, "apply", !*jsonOut)
	if s == nil {
		return e.openFailed(diags, err, *jsonOut)
	}
	defer s.close()
	p := s.makePlan(ctx, &f, s.cfg)
	p.Diagnostics = append(diags, p.Diagnostics...)
	if saved != nil {
		if why := saved.Stale(p); why != "" {
			fmt.Fprintf(e.stderr, "Error: saved plan is stale: %s. Run `sluice plan -out=%s` again, review it, and apply the new plan.\n", why, pos[0])
			return exitError
		}
		// Apply what was saved and reviewed; the fresh plan, made from the
		// same inputs, gives the current diagnostics and drift.
		p.Changes = saved.Plan.Changes
	}
	return e.execute(ctx, s, s.cfg, p, executeOptions{autoApprove: *autoApprove || saved != nil, jsonOut: *jsonOut, verb: "apply"})
}

type executeOptions struct {
	autoApprove bool
	jsonOut     bool
	verb        string // "apply" or "destroy"
}

// execute shows the plan, asks for approval, applies it and reports.
func (e *env) execute(ctx context.Context, s *session, cfg *config.Config, p *planner.Plan, o executeOptions) int {
	report := applyJSON{FormatVersion: "1", Applied: []planner.Change{}, Drift: p.Drift}
	finish := func(code int, err error) int {
		if o.jsonOut {
			if err != nil {
				report.Error = err.Error()
			}
			report.Diagnostics = config.NewJSONDiagnostics(p.Diagnostics, s.cfg.Files)
			report.Summary = (&planner.Plan{Changes: report.Applied, Drift: p.Drift}).Summary()
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(report)
		} else if err != nil {
			fmt.Fprintf(e.stderr, "Error: %s\n", err)
		}
		return code
	}
	if !o.jsonOut {
		e.printDiagnostics(p.Diagnostics, s.cfg.Files)
	}
	if p.HasErrors() {
		return finish(exitError, fmt.Errorf("the plan has errors; nothing was applied"))
	}
	if len(p.Changes) == 0 {
		if !o.jsonOut {
			_ = planner.WriteText(e.stdout, p, planner.TextOptions{Color: e.color})
			fmt.Fprintln(e.stdout, "\nNothing to apply.")
		}
		return finish(exitOK, nil)
	}
	if !o.jsonOut {
		_ = planner.WriteText(e.stdout, p, planner.TextOptions{Color: e.color})
		fmt.Fprintln(e.stdout)
	}
	if !o.autoApprove {
		question := "Do you want to perform these actions?"
		if o.verb == "destroy" {
			question = "Do you really want to remove everything sluice recorded? Managed slots and publications are dropped; warehouse data is kept."
		}
		ok, err := e.confirm(question)
		if err != nil {
			return finish(exitError, err)
		}
		if !ok {
			fmt.Fprintf(e.stdout, "\n%s cancelled: nothing was changed.\n", capitalize(o.verb))
			return exitError
		}
		fmt.Fprintln(e.stdout)
	}
	res, err := apply.Execute(ctx, p, apply.Options{
		Config:         cfg,
		State:          s.st,
		Backend:        s.backend,
		FingerprintKey: s.key,
		Resources:      openResources,
		Progress: func(ev apply.Event) {
			if o.jsonOut {
				return
			}
			switch {
			case !ev.Done:
				fmt.Fprintf(e.stdout, "%s: %s...\n", ev.Change.Address, progressVerb(ev.Change))
			case ev.Err == nil:
				fmt.Fprintf(e.stdout, "%s: done\n", ev.Change.Address)
			}
		},
	})
	if res != nil {
		report.Applied = append(report.Applied, res.Applied...)
		report.Failed = res.Failed
	}
	if err != nil {
		if !o.jsonOut {
			fmt.Fprintf(e.stderr, "\n%d of %d changes were applied and recorded; apply again once the problem is fixed.\n", len(report.Applied), len(p.Changes))
		}
		return finish(exitError, err)
	}
	if !o.jsonOut {
		sum := (&planner.Plan{Changes: report.Applied}).Summary()
		fmt.Fprintf(e.stdout, "\n%s complete! %d created, %d updated, %d removed, %d replaced, %d marked for resync.\n",
			capitalize(o.verb), sum.Create, sum.Update, sum.Delete, sum.Replace, sum.Resync)
	}
	return finish(exitOK, nil)
}

func progressVerb(c planner.Change) string {
	what := c.Kind
	switch c.Action {
	case planner.Create:
		return "creating " + what
	case planner.Update:
		return "updating " + what
	case planner.Delete:
		return "removing " + what
	case planner.Replace:
		return "replacing " + what
	case planner.Resync:
		return "marking " + what + " for resync"
	}
	return string(c.Action) + " " + what
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
