package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Options are the inputs of Load besides the files.
type Options struct {
	// Vars are -var arguments, "NAME=VALUE", in command-line order.
	Vars []string
	// VarFiles are -var-file paths; relative ones are read relative to the
	// process's working directory (the CLI resolves them against -chdir).
	VarFiles []string
	// LookupEnv reads the environment; os.LookupEnv when nil. It serves
	// env() and SLUICE_VAR_<name>.
	LookupEnv func(string) (string, bool)
	// AllowMissingVariables leaves required variables without a value
	// unknown instead of reporting them: commands that only need the state
	// block (show, state, force-unlock) work without the source secrets.
	AllowMissingVariables bool
	// Validate evaluates without secrets, as `sluice validate` does on a
	// pull request from a fork: a variable without a value, env() of an
	// unset environment variable and file() of a file that cannot be read
	// are unknown values of their type. Checks that need such a value are
	// skipped; every other error is still reported.
	Validate bool
}

// maxDiagnosticsPerFile bounds what one unreadable file can print: a file
// of garbage would otherwise give an error per line.
const maxDiagnosticsPerFile = 20

// MaxFileSize bounds a configuration file. Real configurations, even ones
// generated for thousands of tables, are a few hundred KiB; a larger file
// in the directory is almost certainly there by mistake.
const MaxFileSize = 8 << 20

// Load reads every *.hcl file directly in dir and returns the configuration
// with every diagnostic found, errors and warnings, in one pass. The
// configuration is usable only when the diagnostics hold no error; it is
// returned anyway (with Files set) so that diagnostics can be rendered with
// snippets.
func Load(dir string, opts Options) (*Config, hcl.Diagnostics) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	cfg := &Config{
		Dir:       dir,
		Files:     map[string]*hcl.File{},
		Variables: map[string]*Variable{},
		Locals:    map[string]cty.Value{},
	}
	names, err := configFiles(dir)
	if err != nil {
		return cfg, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the configuration directory",
			Detail:   fmt.Sprintf("%s. Run sluice in the directory that holds your *.hcl files, or pass -chdir=DIR.", err),
		}}
	}
	if len(names) == 0 {
		return cfg, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail: fmt.Sprintf("There are no *.hcl files in %s; sluice reads the *.hcl files directly in the configuration directory, not in its subdirectories. "+
				"Run sluice in the directory that holds them or pass -chdir=DIR, or write one (see examples/quickstart) or generate one with `sluice init -source=postgres.NAME -url=URL`.", displayDir(dir)),
		}}
	}
	var diags hcl.Diagnostics
	var files []*hcl.File
	for _, name := range names {
		f, fd := parseFile(filepath.Join(dir, name), name)
		diags = append(diags, fd...)
		if f != nil {
			files = append(files, f)
		}
	}
	return cfg, append(diags, decode(cfg, names, files, diags.HasErrors(), opts)...)
}

// decode decodes parsed files into cfg. Files that did not parse are not
// decoded: that would pile confusing errors on top of the syntax errors
// that explain them.
func decode(cfg *Config, names []string, files []*hcl.File, parseFailed bool, opts Options) hcl.Diagnostics {
	var bodies []hcl.Body
	for i, f := range files {
		cfg.Files[names[i]] = f
		bodies = append(bodies, f.Body)
	}
	if parseFailed {
		return nil
	}
	l := &loader{cfg: cfg, opts: opts}
	l.load(bodies)
	return l.e.diags
}

// displayDir names a directory for a message: as given, with its absolute
// path when that says more ("the current directory (/srv/sluice)").
func displayDir(dir string) string {
	name := dir
	if dir == "" || dir == "." {
		dir, name = ".", "the current directory"
	}
	abs, err := filepath.Abs(dir)
	if err != nil || abs == dir {
		return name
	}
	return fmt.Sprintf("%s (%s)", name, abs)
}

// configFiles lists the *.hcl files directly in dir, sorted, so that
// diagnostics come out in a stable order.
func configFiles(dir string) ([]string, error) {
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %s", dir, describeFSError(err))
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsDir() || !strings.HasSuffix(e.Name(), ".hcl") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// parseFile reads and parses one file, refusing binary or oversized input
// with a single clear diagnostic rather than one error per garbage line.
func parseFile(path, name string) (*hcl.File, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read configuration file", Detail: fmt.Sprintf("%s: %s.", name, describeFSError(err))}}
	}
	if fi.Size() > MaxFileSize {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Configuration file too large",
			Detail:   fmt.Sprintf("%s is %s; the limit is %s. Every *.hcl file in the directory is read as configuration: move other files elsewhere.", name, FormatSize(fi.Size()), FormatSize(MaxFileSize)),
			Subject:  &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read configuration file", Detail: fmt.Sprintf("%s: %s.", name, describeFSError(err))}}
	}
	return ParseSource(src, name)
}

// ParseSource parses the text of one configuration file.
func ParseSource(src []byte, name string) (*hcl.File, hcl.Diagnostics) {
	if pos, bad := firstNonText(src); bad {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Configuration file is not text",
			Detail:   fmt.Sprintf("%s holds bytes that are not UTF-8 text (line %d, column %d). Configuration files are UTF-8 HCL; move other files out of the configuration directory.", name, pos.Line, pos.Column),
			Subject:  &hcl.Range{Filename: name, Start: pos, End: pos},
		}}
	}
	if d := checkNesting(src, name, false); d != nil {
		return nil, append(errorsBefore(src, name, d.Subject.Start.Byte), d)
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	return f, limitDiagnostics(diags, name)
}

// errorsBefore returns the syntax errors in src before byte cut, where
// nesting too deep to parse starts: in a file that is not HCL at all they
// say so better than the nesting does. The part before cut is parsed
// safely, since it nests no deeper than the bound; what the parser says
// about the text being cut short is left out.
func errorsBefore(src []byte, name string, cut int) hcl.Diagnostics {
	_, pd := hclsyntax.ParseConfig(src[:cut], name, hcl.InitialPos)
	lineStart := bytes.LastIndexByte(src[:cut], '\n') + 1
	var diags hcl.Diagnostics
	for _, d := range pd {
		// The parser reports the cut line's start as unfinished.
		if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.End.Byte < lineStart &&
			!strings.HasPrefix(d.Summary, "Unclosed") && !strings.HasPrefix(d.Summary, "Unterminated") && !strings.HasPrefix(d.Summary, "Missing") {
			diags = append(diags, d)
		}
	}
	return limitDiagnostics(diags, name)
}

// limitDiagnostics keeps the first maxDiagnosticsPerFile errors of a file.
func limitDiagnostics(diags hcl.Diagnostics, name string) hcl.Diagnostics {
	if errs := countErrors(diags); errs > maxDiagnosticsPerFile {
		kept := diags[:0:0]
		for _, d := range diags {
			if len(kept) < maxDiagnosticsPerFile {
				kept = append(kept, d)
			}
		}
		kept = append(kept, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Too many errors",
			Detail:   fmt.Sprintf("%d more errors in %s are not shown; is it an HCL file?", errs-maxDiagnosticsPerFile, name),
		})
		diags = kept
	}
	return diags
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// firstNonText finds the first NUL byte or invalid UTF-8 sequence.
func firstNonText(src []byte) (hcl.Pos, bool) {
	i := bytes.IndexByte(src, 0)
	if i < 0 {
		if utf8.Valid(src) {
			return hcl.Pos{}, false
		}
		for j := 0; j < len(src); {
			r, size := utf8.DecodeRune(src[j:])
			if r == utf8.RuneError && size <= 1 {
				i = j
				break
			}
			j += size
		}
	}
	line := 1 + bytes.Count(src[:i], []byte("\n"))
	col := i - bytes.LastIndexByte(src[:i], '\n')
	return hcl.Pos{Line: line, Column: col, Byte: i}, true
}

// loader holds the state of one Load.
type loader struct {
	cfg  *Config
	opts Options
	e    evaluator
	// unknown names, per *Source, *Table and *Warehouse, the attributes
	// whose value is not known (validate without secrets), so that checks
	// across blocks do not rely on the defaults those attributes leave.
	unknown map[any]map[string]bool
}

// unknownOf returns the set of unknown attributes of a block's model.
func (l *loader) unknownOf(owner any) map[string]bool {
	if l.unknown == nil {
		l.unknown = map[any]map[string]bool{}
	}
	m := l.unknown[owner]
	if m == nil {
		m = map[string]bool{}
		l.unknown[owner] = m
	}
	return m
}

func (l *loader) load(bodies []hcl.Body) {
	var blocks hcl.Blocks
	for _, b := range bodies {
		content, diags := b.Content(rootSchema)
		l.e.diags = append(l.e.diags, diags...)
		blocks = append(blocks, content.Blocks...)
	}
	byType := map[string]hcl.Blocks{}
	for _, b := range blocks {
		byType[b.Type] = append(byType[b.Type], b)
	}

	l.e.variables = l.cfg.Variables
	l.e.dir = l.cfg.Dir
	l.e.locals = map[string]bool{}
	l.decodeVariables(byType["variable"])
	l.assignVariables()
	l.e.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": l.varObject()},
		Functions: functions(l.cfg.Dir, l.opts.LookupEnv, l.opts.Validate, &l.e.budget),
	}
	l.decodeLocals(byType["locals"])

	before := len(l.e.diags.Errs())
	l.decodeState(single(&l.e, byType["state"]))
	stateOK := len(l.e.diags.Errs()) == before
	l.decodeWarehouse(single(&l.e, byType["warehouse"]))
	l.decodeRunner(single(&l.e, byType["runner"]))
	l.decodeNotify(byType["notify"])
	if stateOK {
		l.checkFleet()
	}
	for _, b := range byType["source"] {
		if s := l.decodeSource(b); s != nil {
			l.cfg.Sources = append(l.cfg.Sources, s)
		}
	}
	l.checkSources()
}

// checkFleet refuses a fleet (several runners: the postgres state
// backend, unless runner { fleet = false }) writing a local Parquet
// warehouse, which each runner would write apart from the others.
func (l *loader) checkFleet() {
	c := l.cfg
	if !c.IsFleet() || c.Warehouse.Backend != "parquet" {
		return
	}
	subject := c.Warehouse.DeclRange
	if subject.Empty() {
		subject = c.State.DeclRange
	}
	l.e.diags = append(l.e.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "A fleet of runners needs a shared warehouse",
		Detail: "With the postgres state backend, several `sluice run` processes may share the work (runner { fleet } defaults to true), " +
			"and each would write a Parquet directory of its own machine. Use warehouse { backend = \"postgres\" } or \"iceberg\" " +
			"(on object storage), or set runner { fleet = false } if only one runner will ever run.",
		Subject: subject.Ptr(),
	})
}

// single returns the one block of a kind that may appear once, reporting
// any repeat.
func single(e *evaluator, blocks hcl.Blocks) *hcl.Block {
	for _, b := range blocks[min(1, len(blocks)):] {
		e.diags = append(e.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", b.Type),
			Detail:   fmt.Sprintf("Only one %s block is allowed; the first is at %s.", b.Type, blocks[0].DefRange),
			Subject:  b.DefRange.Ptr(),
		})
	}
	if len(blocks) == 0 {
		return nil
	}
	return blocks[0]
}

func (l *loader) content(b *hcl.Block, schema *hcl.BodySchema) hcl.Attributes {
	c, diags := b.Body.Content(schema)
	l.e.diags = append(l.e.diags, diags...)
	return c.Attributes
}

func (l *loader) decodeState(b *hcl.Block) {
	st := &l.cfg.State
	st.Backend, st.Path = "local", ".sluice/state.json"
	if b == nil {
		return
	}
	st.DeclRange = b.DefRange
	sens := map[string]bool{}
	a := &attrs{e: &l.e, m: l.content(b, stateSchema), sensitive: sens}
	if a.str("backend", &st.Backend) {
		a.oneOf("backend", st.Backend, []string{"local", "postgres"})
	}
	a.str("path", &st.Path)
	a.str("url", &st.URL)
	st.URLSensitive = sens["url"]
	if st.Backend == "postgres" && !a.has("url") {
		l.e.diags = append(l.e.diags, errorAt(b.DefRange, "Missing state URL",
			`The postgres state backend needs url, such as url = env("SLUICE_STATE_URL").`))
	}
}

func (l *loader) decodeWarehouse(b *hcl.Block) {
	w := &l.cfg.Warehouse
	w.Backend, w.Path, w.Schema = "parquet", "warehouse", "public"
	w.Attrs, w.Sensitive = map[string]hcl.Range{}, map[string]bool{}
	if b == nil {
		return
	}
	w.DeclRange = b.DefRange
	content, diags := b.Body.Content(warehouseSchema)
	l.e.diags = append(l.e.diags, diags...)
	a := &attrs{e: &l.e, m: content.Attributes, ranges: w.Attrs, sensitive: w.Sensitive, unknown: l.unknownOf(w)}
	if a.str("backend", &w.Backend) {
		a.oneOf("backend", w.Backend, warehouseBackends)
	}
	a.str("path", &w.Path)
	a.str("url", &w.URL)
	a.str("schema", &w.Schema)
	a.boolean("drop_cascade", &w.DropCascade)
	w.URLSensitive = w.Sensitive["url"]
	if w.Backend == "postgres" && !a.has("url") {
		l.e.diags = append(l.e.diags, errorAt(b.DefRange, "Missing warehouse URL",
			`The postgres warehouse backend needs url, such as url = env("SLUICE_WAREHOUSE_URL").`))
	}
	// The connection options of a PostgreSQL source, decoded the same way
	// (SPEC §2).
	if a.str("sslmode", &w.SSLMode) {
		a.oneOf("sslmode", w.SSLMode, sslModes)
	}
	a.str("sslrootcert", &w.SSLRootCert)
	a.str("sslcert", &w.SSLCert)
	a.str("sslkey", &w.SSLKey)
	if a.has("sslcert") != a.has("sslkey") {
		name := "sslcert"
		if !a.has("sslcert") {
			name = "sslkey"
		}
		a.errorf(name, "Incomplete client certificate", "sslcert and sslkey go together: set both, or neither.")
	}
	blocks := map[string]hcl.Blocks{}
	for _, blk := range content.Blocks {
		blocks[blk.Type] = append(blocks[blk.Type], blk)
	}
	if t := single(&l.e, blocks["ssh_tunnel"]); t != nil {
		tunnelOwner := &Source{Attrs: w.Attrs, Sensitive: w.Sensitive}
		unknown := l.unknownOf(w) // shared: the tunnel's attributes are the warehouse's
		l.unknown[tunnelOwner] = unknown
		w.SSHTunnel = l.decodeSSHTunnel(tunnelOwner, t)
	}
	l.decodeIceberg(w, a, blocks)
	if a.isUnknown("backend") {
		return
	}
	for _, attr := range warehouseAttributes {
		if containsString(attr.Backends, w.Backend) || attr.Block() != "" || !a.has(attr.Name) {
			continue
		}
		a.errorf(attr.Name, "Option of another backend", "%s applies to backend = %s only; this warehouse writes %s.",
			attr.Name, quotedList(attr.Backends), w.Backend)
	}
	for _, blk := range warehouseBlocks {
		if containsString(blk.Backends, w.Backend) || len(blocks[blk.Type]) == 0 {
			continue
		}
		l.e.diags = append(l.e.diags, errorAt(blocks[blk.Type][0].DefRange, "Option of another backend",
			"The %s block applies to backend = %s only; this warehouse writes %s.", blk.Type, quotedList(blk.Backends), w.Backend))
	}
}

// quotedList renders backends as `"a" or "b"`.
func quotedList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, " or ")
}

func (l *loader) decodeRunner(b *hcl.Block) {
	r := &l.cfg.Runner
	r.Listen, r.Concurrency = "127.0.0.1:8080", 4
	if b == nil {
		return
	}
	r.DeclRange = b.DefRange
	a := &attrs{e: &l.e, m: l.content(b, runnerSchema)}
	if a.str("listen", &r.Listen) {
		if _, port, ok := strings.Cut(r.Listen, ":"); !ok || port == "" {
			a.errorf("listen", "Invalid listen address", "listen must be HOST:PORT, such as 127.0.0.1:8080 or :8080.")
		}
	}
	a.integer("concurrency", 1, 1024, &r.Concurrency)
	var fleet bool
	if a.boolean("fleet", &fleet) {
		r.Fleet = &fleet
		if fleet && l.cfg.State.Backend != "postgres" {
			a.errorf("fleet", "A fleet needs the postgres state backend",
				"Several runners share the work through the state database: set state { backend = \"postgres\" }, or remove fleet (the local state backend runs one runner).")
		}
	}
}
