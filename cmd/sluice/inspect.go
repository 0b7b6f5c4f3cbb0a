package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/planner"
	"github.com/sluice-dev/sluice/providers"

	// The PostgreSQL provider registers itself with providers.
	_ "github.com/sluice-dev/sluice/providers/postgres"
)

func init() { implement("inspect", runInspect) }

func runInspect(e *env, args []string) int {
	c := findCommand("inspect")
	fs := newFlags(e, c)
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	allSchemas := fs.Bool("all-schemas", false, "list the tables of every schema, not only the source's")
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
	ctx, cancel := commandContext()
	defer cancel()
	p, err := openSource(ctx, src, "inspect")
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	defer p.Close()
	var obs *providers.Observed
	if *allSchemas {
		all, ok := p.(providers.AllSchemasInspector)
		if !ok {
			fmt.Fprintf(e.stderr, "Error: %s sources have no schemas; inspect %s without -all-schemas.\n", src.Type, src.Address())
			return exitError
		}
		obs, err = all.InspectAllSchemas(ctx)
	} else {
		obs, err = p.Inspect(ctx)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "Error: %s\n", err)
		return exitError
	}
	if !*allSchemas && src.Postgres != nil && src.Postgres.Schema != "" {
		// Inspect also reads the schemas table blocks name, for plan; the
		// listing is the source's schema, as documented.
		obs.Tables = slices.DeleteFunc(obs.Tables, func(t providers.Table) bool { return t.Schema != src.Postgres.Schema })
	}
	markPatterns(src, obs)
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(obs)
		return exitOK
	}
	writeInspection(e.stdout, obs)
	return exitOK
}

// sourceArg loads the configuration and finds the source named by the one
// positional argument. It returns proceed, or the exit code after printing
// why not.
func (e *env) sourceArg(vf *varFlags, c *command, pos []string) (*config.Config, *config.Source, int) {
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "Error: %s takes one source address, such as postgres.prod.\n\n", c.name)
		writeCommandHelp(e.stderr, c, nil)
		return nil, nil, exitError
	}
	cfg, diags := e.loadConfig(vf, true)
	if errs, _ := config.Counts(diags); errs > 0 {
		return nil, nil, exitError
	}
	if src := cfg.Source(pos[0]); src != nil {
		return cfg, src, proceed
	}
	var addrs []string
	hint := ""
	for _, s := range cfg.Sources {
		addrs = append(addrs, s.Address())
		if s.Name == pos[0] {
			hint = fmt.Sprintf(" Did you mean %q?", s.Address())
		}
	}
	if hint == "" {
		hint = closest(pos[0], addrs)
	}
	if len(addrs) == 0 {
		fmt.Fprintf(e.stderr, "Error: there is no source %q: the configuration declares no source.\n", pos[0])
	} else {
		fmt.Fprintf(e.stderr, "Error: there is no source %q.%s Configured sources: %s.\n", pos[0], hint, strings.Join(addrs, ", "))
	}
	return nil, nil, exitError
}

// openSource opens a configured source for a command (what), saying
// plainly when this build has no provider for its type.
func openSource(ctx context.Context, src *config.Source, what string) (providers.Source, error) {
	if !slices.Contains(providers.Types(), src.Type) {
		return nil, fmt.Errorf("%s for %s sources arrives with the %s provider; nothing was done", what, src.Type, providerTitle(src.Type))
	}
	return providers.Open(ctx, src)
}

func providerTitle(typ string) string {
	switch typ {
	case "stripe":
		return "Stripe"
	case "postgres":
		return "PostgreSQL"
	}
	return typ
}

// writeInspection prints the tables, largest first, then their warnings.
func writeInspection(w io.Writer, obs *providers.Observed) {
	tables := append([]providers.Table(nil), obs.Tables...)
	size := func(t *providers.Table) int64 {
		if t.EstimatedRows == nil {
			return -1
		}
		return *t.EstimatedRows
	}
	sort.SliceStable(tables, func(i, j int) bool { return size(&tables[i]) > size(&tables[j]) })

	fmt.Fprintf(w, "%s", obs.Source)
	if obs.ServerVersion > 0 {
		fmt.Fprintf(w, ": PostgreSQL %d.%d", obs.ServerVersion/10000, obs.ServerVersion%10000)
	}
	fmt.Fprintf(w, ", %d table(s)\n\n", len(tables))
	if len(tables) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEMA\tTABLE\tKIND\tROWS\tKEY\tCURSOR CANDIDATES\tSYNC TYPES\tRECOMMENDED")
	indexed := false
	for _, t := range tables {
		rows := "unknown"
		switch {
		case t.Kind == providers.KindView:
			rows = "-"
		case t.EstimatedRows != nil:
			rows = strconv.FormatInt(*t.EstimatedRows, 10)
		}
		var cursors []string
		for _, f := range t.IncrementalFields {
			name := cell(f.Name)
			if f.Indexed {
				name += "*"
				indexed = true
			}
			cursors = append(cursors, name)
		}
		key := make([]string, len(t.PrimaryKey))
		for i, k := range t.PrimaryKey {
			key[i] = cell(k)
		}
		rec := t.RecommendedSync
		// The JSON names the best cursor whatever the recommendation; the
		// table shows it only with the sync that uses it.
		if t.RecommendedIncrementalField != "" && config.SyncType(t.RecommendedSync).NeedsCursor() {
			rec += " (" + cell(t.RecommendedIncrementalField) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(t.Schema), cell(t.Name), t.Kind, rows,
			orDash(strings.Join(key, ", ")), orDash(strings.Join(cursors, ", ")), strings.Join(t.SyncTypes, ", "), rec)
	}
	tw.Flush()
	if indexed {
		fmt.Fprintln(w, "\n* an index leads on the column")
	}
	first := true
	for _, t := range tables {
		if len(t.Warnings) == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nWarnings:")
			first = false
		}
		fmt.Fprintf(w, "  %s:\n", cell(config.QualifiedName(t.Schema, t.Name)))
		for _, warn := range t.Warnings {
			fmt.Fprintf(w, "    - %s\n", cell(warn))
		}
	}
	first = true
	for _, t := range tables {
		if t.Pattern == "" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nCovered by a tables block (planned without a table block of their own):")
			first = false
		}
		fmt.Fprintf(w, "  %s  (tables %q)\n", cell(config.QualifiedName(t.Schema, t.Name)), t.Pattern)
	}
}

// markPatterns sets, on each inspected table a tables block of src
// covers, that block's label.
func markPatterns(src *config.Source, obs *providers.Observed) {
	covered := map[[2]string]string{}
	sourceSchema := ""
	if src.Postgres != nil {
		sourceSchema = src.Postgres.Schema
	}
	for _, t := range planner.ExpandPatterns(src, obs, nil).Tables {
		if t.Pattern != "" {
			schema := t.Schema
			if schema == "" {
				schema = sourceSchema
			}
			covered[[2]string{schema, t.Table}] = t.Pattern
		}
	}
	for i := range obs.Tables {
		obs.Tables[i].Pattern = covered[[2]string{obs.Tables[i].Schema, obs.Tables[i].Name}]
	}
}

// cell shows a name in the table: control characters (tabs, newlines),
// which would break the columns, are escaped.
func cell(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
