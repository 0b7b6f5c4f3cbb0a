package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/runner/notify"
)

func init() { implement("notify", runNotify) }

// notifyDrain bounds how long a runner that stops waits for its queued
// notifications (run -once's failures among them).
const notifyDrain = 10 * time.Second

// runNotify is `sluice notify test [NAME...]`: a test message to each
// notify block (or those named), with each one's outcome. It never prints
// a block's URL, which is a credential.
func runNotify(e *env, args []string) int {
	c := findCommand("notify")
	fs := newFlags(e, c)
	var vf varFlags
	vf.register(fs)
	pos, code := parseArgs(e, c, fs, args)
	if code != proceed {
		return code
	}
	if len(pos) == 0 || pos[0] != "test" {
		fmt.Fprintln(e.stderr, "Error: notify needs a subcommand: `sluice notify test [NAME...]` sends a test message to each notify block (or those named).")
		return exitError
	}
	names := pos[1:]
	// Only the notify blocks' values are needed: the sources' secrets
	// may be unset here.
	cfg, diags := e.loadStateConfig(&vf)
	if diags.HasErrors() {
		return exitError
	}
	if len(cfg.Notify) == 0 {
		fmt.Fprintln(e.stderr, "Error: the configuration has no notify block: nothing to test. Add one, such as notify \"ops\" { url = env(\"SLACK_WEBHOOK_URL\") }.")
		return exitError
	}
	for _, b := range cfg.Notify {
		if b.URL == "" && (len(names) == 0 || containsName(names, b.Name)) {
			fmt.Fprintf(e.stderr, "Error: notify %q: url has no value; set the variable it comes from.\n", b.Name)
			return exitError
		}
	}
	ctx, stop := commandContext()
	defer stop()
	n := notify.New(notify.Options{Targets: notify.Targets(cfg.Notify), Secrets: configSecrets(cfg)})
	defer n.Close(context.Background())
	results, err := n.Test(ctx, names)
	if err != nil {
		var known []string
		for _, b := range cfg.Notify {
			known = append(known, b.Name)
		}
		fmt.Fprintf(e.stderr, "Error: %s.%s\n", err, closest(names[len(names)-1], known))
		return exitError
	}
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(e.stdout, "notify.%-20s failed: %s\n", r.Name, r.Err)
			continue
		}
		fmt.Fprintf(e.stdout, "notify.%-20s ok (HTTP %d)\n", r.Name, r.Status)
	}
	if failed > 0 {
		fmt.Fprintf(e.stderr, "%d of %s failed.\n", failed, plural(len(results), "notify block"))
		return exitError
	}
	return exitOK
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// newNotifier is the runner's notifier of the configuration's notify
// blocks, nil when there are none.
func newNotifier(cfg *config.Config, runnerID string, logger hclog.Logger) *notify.Notifier {
	return notify.New(notify.Options{Targets: notify.Targets(cfg.Notify), Runner: runnerID, Logger: logger, Secrets: configSecrets(cfg)})
}

// closeNotifier waits at most notifyDrain for n's queued messages.
func closeNotifier(n *notify.Notifier) {
	ctx, cancel := context.WithTimeout(context.Background(), notifyDrain)
	defer cancel()
	n.Close(ctx)
}

// configSecrets are the secret values of a configuration, which no
// notification may hold: the secret and sensitive attributes of sources,
// the sensitive URLs and keys of the state and warehouse, and sensitive
// variables. Providers redact their errors already; this is the last
// line.
func configSecrets(cfg *config.Config) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, src := range cfg.Sources {
		for name, v := range config.SourceSettings(src) {
			if src.Sensitive[name] || config.IsSecretAttribute(name) {
				add(v)
			}
		}
	}
	if cfg.State.URLSensitive {
		add(cfg.State.URL)
	}
	if cfg.Warehouse.URLSensitive {
		add(cfg.Warehouse.URL)
	}
	if s3 := cfg.Warehouse.S3; s3 != nil {
		add(s3.SecretAccessKey)
	}
	for _, v := range cfg.Variables {
		if v.Sensitive && v.Value != cty.NilVal && v.Value.IsWhollyKnown() && !v.Value.IsNull() {
			if sv, _ := v.Value.Unmark(); sv.Type() == cty.String {
				add(sv.AsString())
			}
		}
	}
	return out
}
