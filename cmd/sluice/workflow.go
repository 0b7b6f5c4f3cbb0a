package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"
	_ "github.com/sluice-dev/sluice/providers/postgres" // registers the postgres source type
	_ "github.com/sluice-dev/sluice/providers/stripe"   // registers the stripe source type
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
	whpostgres "github.com/sluice-dev/sluice/warehouse/postgres"
)

// planFlags are the flags plan, apply and destroy share.
type planFlags struct {
	vars        varFlags
	targets     stringsFlag
	refresh     bool
	lock        bool
	lockTimeout time.Duration
}

func (f *planFlags) register(fs *flag.FlagSet) {
	f.vars.register(fs)
	fs.Var(&f.targets, "target", "limit to this `ADDR` (a source, or SOURCE/TABLE; repeatable)")
	fs.BoolVar(&f.refresh, "refresh", true, "introspect the live sources (false: compare files and state only)")
	fs.BoolVar(&f.lock, "lock", true, "hold the state lock while working (false for read-only drift checks)")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait this long for the state lock (e.g. 30s)")
}

// session is a loaded configuration with its state backend, locked when
// asked: the common start of plan, apply, show and destroy.
type session struct {
	cfg     *config.Config
	backend state.Backend
	st      *state.State
	key     []byte
	unlock  func() error
}

func (s *session) close() {
	if s.unlock != nil {
		_ = s.unlock()
	}
	if s.backend != nil {
		_ = s.backend.Close()
	}
}

// open loads the configuration, opens the state backend and, when lock is
// set, takes the lock for operation. It returns a nil session when it
// cannot go on: with error diagnostics of the configuration (printed when
// printDiags is set), or with err from the state backend.
func (e *env) open(ctx context.Context, f *planFlags, operation string, printDiags bool) (*session, hcl.Diagnostics, error) {
	cfg, diags := e.loadConfig(&f.vars, printDiags)
	if diags.HasErrors() {
		return nil, diags, nil
	}
	s := &session{cfg: cfg}
	fail := func(what string, err error) (*session, hcl.Diagnostics, error) {
		s.close()
		return nil, diags, fmt.Errorf("%s: %w", what, err)
	}
	var err error
	if s.backend, err = state.Open(ctx, cfg.State, cfg.Dir); err != nil {
		return fail("cannot open the state", err)
	}
	if f.lock {
		if s.unlock, err = s.backend.Lock(ctx, state.NewLockInfo(operation), f.lockTimeout); err != nil {
			return fail("cannot lock the state", err)
		}
	}
	if s.st, err = s.backend.Read(ctx); err != nil {
		return fail("cannot read the state", err)
	}
	if s.key, err = s.backend.FingerprintKey(ctx); err != nil {
		return fail("cannot read the fingerprint key", err)
	}
	return s, diags, nil
}

// openFailed reports why open returned no session, as JSON when asked.
func (e *env) openFailed(diags hcl.Diagnostics, err error, jsonOut bool) int {
	if jsonOut {
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "State unavailable", Detail: err.Error()})
		}
		_ = planner.WriteJSON(e.stdout, &planner.Plan{Diagnostics: diags}, nil)
	} else if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
	}
	return exitError
}

// observe introspects every configured source that the targets touch,
// one pass each. A source that cannot be reached is an error diagnostic on
// its block; the others are still planned.
func observe(ctx context.Context, cfg *config.Config, targets []string) (map[string]*providers.Observed, hcl.Diagnostics) {
	out := map[string]*providers.Observed{}
	var diags hcl.Diagnostics
	for _, src := range cfg.Sources {
		if !targeted(src.Address(), targets) {
			continue
		}
		obs, err := inspectSource(ctx, src)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot inspect " + src.Address(),
				Detail:   err.Error(),
				Subject:  src.DeclRange.Ptr(),
			})
			continue
		}
		out[src.Address()] = obs
	}
	return out, diags
}

func inspectSource(ctx context.Context, src *config.Source) (*providers.Observed, error) {
	p, err := providers.Open(ctx, src)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	obs, err := p.Inspect(ctx)
	if err != nil {
		return nil, err
	}
	if err := describeQueries(ctx, p, src, obs); err != nil {
		return nil, err
	}
	if c, ok := p.(providers.Checker); ok && planner.HasCDC(src) && obs.Checks == nil {
		if obs.Checks, err = c.Check(ctx); err != nil {
			return nil, err
		}
	}
	return obs, nil
}

func targeted(addr string, targets []string) bool {
	if len(targets) == 0 {
		return true
	}
	for _, t := range targets {
		src, _, _ := strings.Cut(t, "/")
		if src == addr {
			return true
		}
	}
	return false
}

// openResources opens the resource manager of a source for apply and the
// runner, with the factory its provider registered.
func openResources(ctx context.Context, src *config.Source) (providers.ResourceManager, error) {
	return providers.OpenResources(ctx, src)
}

// makePlan computes a plan for the session.
func (s *session) makePlan(ctx context.Context, f *planFlags, cfg *config.Config) *planner.Plan {
	var obs map[string]*providers.Observed
	var diags hcl.Diagnostics
	if f.refresh {
		obs, diags = observe(ctx, s.cfg, f.targets)
		diags = append(diags, checkWarehouse(ctx, s.cfg)...)
	}
	p := planner.Make(planner.Input{Config: cfg, State: s.st, Observed: obs, FingerprintKey: s.key, Targets: f.targets})
	p.Diagnostics = append(diags, p.Diagnostics...)
	return p
}

// checkWarehouse reports a warehouse sluice may not write to (a
// PostgreSQL warehouse without the grants, an Iceberg warehouse whose
// bucket or catalog cannot be reached or written), with the fix, before
// apply and run find out.
func checkWarehouse(ctx context.Context, cfg *config.Config) hcl.Diagnostics {
	var err error
	switch cfg.Warehouse.Backend {
	case "postgres":
		w := whpostgres.New(&cfg.Warehouse, cfg.Dir)
		defer w.Close()
		err = w.Check(ctx)
	case "iceberg":
		err = checkIceberg(ctx, cfg)
	default:
		return nil
	}
	if err != nil {
		r := cfg.Warehouse.DeclRange
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot write to the warehouse", Detail: err.Error(), Subject: &r}}
	}
	return nil
}

// checkIceberg opens the iceberg warehouse (its catalog and namespace)
// and runs its Check (the bucket can be written).
func checkIceberg(ctx context.Context, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, warehouseOpenTimeout)
	defer cancel()
	_, scrub, err := icebergOptions(cfg)
	if err != nil {
		return err
	}
	w, err := openIceberg(ctx, cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	var wh warehouse.Warehouse = w
	if c, ok := wh.(warehouse.Checker); ok {
		return scrub.wrap(c.Check(ctx))
	}
	return nil
}

// stdinIsTerminal reports whether a person can answer a prompt.
func (e *env) stdinIsTerminal() bool {
	// /dev/null is a character device too: ask the terminal driver.
	f, ok := e.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks for "yes"; anything else declines.
func (e *env) confirm(question string) (bool, error) {
	if !e.stdinIsTerminal() {
		return false, errors.New("refusing to ask for approval: standard input is not a terminal; pass -auto-approve, or apply a saved plan (sluice plan -out=FILE, then sluice apply FILE)")
	}
	fmt.Fprintf(e.stdout, "%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", question)
	var answer string
	_, _ = fmt.Fscanln(e.stdin, &answer)
	return strings.TrimSpace(answer) == "yes", nil
}

// describeQueries has the source describe the queries of src's custom SQL
// tables (prepared, not run) into obs.Queries; an error of a query is
// recorded for the planner to report on its attribute.
func describeQueries(ctx context.Context, p providers.Source, src *config.Source, obs *providers.Observed) error {
	for _, t := range src.Tables {
		if t.Query == "" {
			continue
		}
		qd, ok := p.(providers.QueryDescriber)
		if !ok {
			return fmt.Errorf("%s sources cannot run custom SQL", src.Type)
		}
		if obs.Queries == nil {
			obs.Queries = map[string]*providers.QueryDescription{}
		}
		schema, err := qd.DescribeQuery(ctx, providers.ReadRequest{Table: t.Name, Query: t.Query, PrimaryKey: t.PrimaryKey, Cursor: t.IncrementalField, Columns: t.Columns})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			obs.Queries[t.Name] = &providers.QueryDescription{Error: err.Error()}
			continue
		}
		d := &providers.QueryDescription{}
		for _, c := range schema.Columns {
			d.Columns = append(d.Columns, providers.Column{Name: c.Name, Type: c.SourceType, Nullable: c.Nullable})
		}
		obs.Queries[t.Name] = d
	}
	return nil
}
