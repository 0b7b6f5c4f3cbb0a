package main

import (
	"encoding/json"
	"fmt"

	"github.com/sluice-dev/sluice/config"
)

// validateJSON is `validate -json`, Terraform's shape.
type validateJSON struct {
	FormatVersion string                  `json:"format_version"`
	Valid         bool                    `json:"valid"`
	ErrorCount    int                     `json:"error_count"`
	WarningCount  int                     `json:"warning_count"`
	Diagnostics   []config.JSONDiagnostic `json:"diagnostics"`
}

func init() { implement("validate", runValidate) }

func runValidate(e *env, args []string) int {
	c := findCommand("validate")
	fs := newFlags(e, c)
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "Error: validate takes no arguments; use -chdir=%s to validate another directory.\n", pos[0])
		return exitError
	}
	// Like Terraform's validate, and so that a pull request from a fork can
	// run it: secrets that are not there are unknown, not errors.
	cfg, diags := e.loadConfigWith(&vf, !*jsonOut, config.Options{Validate: true})
	errs, warns := config.Counts(diags)
	if *jsonOut {
		out := validateJSON{
			FormatVersion: "1.0",
			Valid:         errs == 0,
			ErrorCount:    errs,
			WarningCount:  warns,
			Diagnostics:   config.NewJSONDiagnostics(sortDiagnostics(diags), cfg.Files),
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else if errs == 0 {
		tables := 0
		for _, s := range cfg.Sources {
			tables += len(s.Tables)
		}
		fmt.Fprintf(e.stdout, "Success! The configuration is valid: %d source(s), %d table(s)", len(cfg.Sources), tables)
		if warns > 0 {
			fmt.Fprintf(e.stdout, ", with %d warning(s)", warns)
		}
		fmt.Fprintln(e.stdout, ".")
	} else {
		fmt.Fprintf(e.stderr, "The configuration is invalid: %d error(s), %d warning(s).\n", errs, warns)
	}
	if errs > 0 {
		return exitError
	}
	return exitOK
}
