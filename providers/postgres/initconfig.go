package postgres

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/providers"
)

// InitOptions say what `sluice init` inspects.
type InitOptions struct {
	// Name is the source's name: the file declares source "postgres" NAME.
	Name string
	// URL is the connection string of the database, a postgres:// URL or
	// libpq keyword=value pairs.
	URL string
	// Schema is the schema whose tables are declared; "" declares the
	// tables of every non-system schema.
	Schema string
	// Conn are passed to Connect.
	Conn []Option
}

// InitResult is a generated configuration.
type InitResult struct {
	// HCL is the formatted file.
	HCL []byte
	// SecretVariable is the sensitive variable the file reads the password
	// from (NAME_password), or the whole connection string (NAME_url) when
	// the URL cannot be written as discrete attributes; "" when the URL has
	// no password. It is set with SLUICE_VAR_<SecretVariable> or -var.
	SecretVariable string
	// Tables is the number of tables declared.
	Tables int
	// Skipped lists the tables left out, as comments, because they would
	// land in the same warehouse table as one declared before them.
	Skipped []string
}

// Init connects to a database, inspects it and writes a configuration that
// declares every table, disabled, with the recommended sync type: the
// starting point of `sluice init`, from which the user enables tables one
// by one.
//
// The password never goes into the file: a URL of one host whose
// parameters all have attributes (sslmode, sslrootcert, sslcert, sslkey,
// connect_timeout) becomes discrete host, port, database and user
// attributes with password = var.NAME_password; any other connection
// string goes whole into the sensitive variable NAME_url, read by
// connection_string.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	src := &config.Source{
		Type: "postgres", Name: o.Name, Prefix: initPrefix(o.Name),
		Postgres: &config.Postgres{
			ConnectionString: o.URL,
			Schema:           o.Schema,
			ConnectTimeout:   config.DefaultConnectTimeout,
			CDC: config.CDC{
				Management:  "managed",
				Publication: "sluice_pub_" + initIdent(o.Name),
				Slot:        "sluice_" + strings.ToLower(initIdent(o.Name)),
				LagWarning:  config.DefaultLagWarning,
				LagCritical: config.DefaultLagCritical,
			},
		},
	}
	conn, err := Connect(ctx, src, o.Conn...)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	obs, err := inspect(ctx, conn, src, inspectedSchemas(src))
	if err != nil {
		return nil, err
	}
	return generateConfig(o, obs.Tables)
}

// initPrefix is the warehouse prefix of a new source: postgres_<name>,
// lowercased, as SPEC §2's example has it.
func initPrefix(name string) string {
	return "postgres_" + strings.ToLower(initIdent(name))
}

// initIdent makes a source name usable in variable, environment variable
// and resource names: letters, digits and underscores.
func initIdent(name string) string {
	return strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// connFields are the attributes a connection URL is written as.
type connFields struct {
	host, database, user, password, sslmode, sslrootcert, sslcert, sslkey string
	port                                                                  int
	connectTimeout                                                        time.Duration
}

// urlParams are the URL parameters that have an attribute of their own.
var urlParams = map[string]bool{
	"host": true, "port": true, "dbname": true, "user": true, "password": true,
	"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true, "connect_timeout": true,
}

// splitURL splits a postgres:// URL of one host into attributes; ok is
// false for anything else (keyword=value strings, several hosts, other
// parameters), which then goes whole into a variable.
func splitURL(s string) (f connFields, ok bool) {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return f, false
	}
	u, err := url.Parse(s)
	if err != nil || strings.Contains(u.Host, ",") || u.Fragment != "" || u.Opaque != "" {
		return f, false
	}
	f.host = u.Hostname()
	if p := u.Port(); p != "" {
		if f.port, err = strconv.Atoi(p); err != nil {
			return f, false
		}
	}
	f.database = strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		f.user = u.User.Username()
		f.password, _ = u.User.Password()
	}
	for k, vs := range u.Query() {
		if !urlParams[k] || len(vs) != 1 {
			return f, false
		}
		v := vs[0]
		switch k {
		case "host":
			f.host = v
		case "port":
			if f.port, err = strconv.Atoi(v); err != nil {
				return f, false
			}
		case "dbname":
			f.database = v
		case "user":
			f.user = v
		case "password":
			f.password = v
		case "sslmode":
			f.sslmode = v
		case "sslrootcert", "sslcert", "sslkey":
			// libpq reads relative paths from the working directory, the
			// configuration from its own directory.
			if abs, err := filepath.Abs(v); err == nil && v != "system" {
				v = abs
			}
			switch k {
			case "sslrootcert":
				f.sslrootcert = v
			case "sslcert":
				f.sslcert = v
			default:
				f.sslkey = v
			}
		case "connect_timeout":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return f, false
			}
			f.connectTimeout = time.Duration(n) * time.Second
		}
	}
	if strings.ContainsAny(f.host, ",") {
		return f, false
	}
	return f, true
}

// generateConfig writes the configuration of the inspected tables.
func generateConfig(o InitOptions, tables []providers.Table) (*InitResult, error) {
	res := &InitResult{}
	ident := initIdent(o.Name)
	prefix := initPrefix(o.Name)
	f := hclwrite.NewEmptyFile()
	root := f.Body()

	fields, discrete := splitURL(o.URL)
	where := ""
	if discrete {
		if fields.database != "" {
			where = fmt.Sprintf(" from database %s", strconv.Quote(fields.database))
		}
		if fields.host != "" {
			where += " on " + fields.host
		}
	}
	initComment(root,
		"Written by `sluice init`"+where+".",
		"Every table is declared with enabled = false: review the sync type of the tables to sync, then set enabled = true (or remove the line). `sluice inspect "+"postgres."+o.Name+"` shows them again, `sluice validate` checks this file.")
	root.AppendNewline()

	switch {
	case !discrete:
		res.SecretVariable = ident + "_url"
		initVariable(root, res.SecretVariable, "Connection string of source postgres."+o.Name+"; set it with SLUICE_VAR_"+res.SecretVariable+".")
	case fields.password != "":
		res.SecretVariable = ident + "_password"
		desc := "Password of source postgres." + o.Name
		if fields.user != "" {
			desc += " (user " + fields.user + ")"
		}
		initVariable(root, res.SecretVariable, desc+"; set it with SLUICE_VAR_"+res.SecretVariable+".")
	}

	src := root.AppendNewBlock("source", []string{"postgres", o.Name}).Body()
	src.SetAttributeValue("prefix", cty.StringVal(prefix))
	if discrete {
		setString(src, "host", fields.host)
		if fields.port != 0 {
			src.SetAttributeValue("port", cty.NumberIntVal(int64(fields.port)))
		}
		setString(src, "database", fields.database)
		setString(src, "user", fields.user)
		if fields.password != "" {
			src.SetAttributeTraversal("password", varRef(res.SecretVariable))
		}
	} else {
		src.SetAttributeTraversal("connection_string", varRef(res.SecretVariable))
	}
	src.SetAttributeValue("schema", cty.StringVal(o.Schema))
	if discrete {
		setString(src, "sslmode", fields.sslmode)
		setString(src, "sslrootcert", fields.sslrootcert)
		setString(src, "sslcert", fields.sslcert)
		setString(src, "sslkey", fields.sslkey)
		if fields.connectTimeout > 0 {
			src.SetAttributeValue("connect_timeout", cty.StringVal(fields.connectTimeout.String()))
		}
	}

	landed := map[string]string{} // warehouse table -> the table that lands there
	for _, t := range tables {
		schema := t.Schema
		if schema == o.Schema {
			schema = ""
		}
		label := config.QualifiedName(schema, t.Name)
		shown := config.QualifiedName(t.Schema, t.Name)
		src.AppendNewline()
		wh := config.WarehouseName(prefix, o.Schema, schema, t.Name)
		if prev, taken := landed[wh]; taken {
			initComment(src, fmt.Sprintf("%s is left out: it would land in warehouse table %s like %s. Declare it in another source, with a prefix of its own, to sync it.", shown, wh, prev))
			res.Skipped = append(res.Skipped, shown)
			continue
		}
		landed[wh] = shown

		initComment(src, describeForInit(shown, &t)...)
		tb := src.AppendNewBlock("table", []string{label}).Body()
		tb.SetAttributeValue("enabled", cty.False)
		tb.SetAttributeValue("sync", cty.StringVal(t.RecommendedSync))
		if config.SyncType(t.RecommendedSync).NeedsCursor() {
			tb.SetAttributeValue("incremental_field", cty.StringVal(t.RecommendedIncrementalField))
		}
		res.Tables++
	}
	res.HCL = hclwrite.Format(f.Bytes())
	return res, nil
}

// describeForInit is the comment above a table block: size, kind, what it
// can sync, warnings.
func describeForInit(shown string, t *providers.Table) []string {
	size := "size unknown"
	switch {
	case t.Kind == providers.KindView:
		size = "a view"
	case t.EstimatedRows != nil:
		size = "about " + groupThousands(*t.EstimatedRows) + " rows"
		if *t.EstimatedRows == 1 {
			size = "about 1 row"
		}
		if t.Kind != providers.KindTable {
			size = "a " + t.Kind + " of " + size
		}
	}
	lines := []string{fmt.Sprintf("%s: %s; can sync %s.", shown, size, strings.Join(t.SyncTypes, ", "))}
	for _, w := range t.Warnings {
		lines = append(lines, "Warning: "+w)
	}
	return lines
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func setString(b *hclwrite.Body, name, v string) {
	if v != "" {
		b.SetAttributeValue(name, cty.StringVal(v))
	}
}

func varRef(name string) hcl.Traversal {
	return hcl.Traversal{hcl.TraverseRoot{Name: "var"}, hcl.TraverseAttr{Name: name}}
}

func initVariable(b *hclwrite.Body, name, description string) {
	v := b.AppendNewBlock("variable", []string{name}).Body()
	v.SetAttributeValue("description", cty.StringVal(description))
	v.SetAttributeTraversal("type", hcl.Traversal{hcl.TraverseRoot{Name: "string"}})
	v.SetAttributeValue("sensitive", cty.True)
	b.AppendNewline()
}

// commentWidth is where comment lines are wrapped.
const commentWidth = 76

// initComment appends # comment lines, wrapped, with control characters
// (which could end a comment early) escaped.
func initComment(b *hclwrite.Body, paragraphs ...string) {
	var toks hclwrite.Tokens
	for _, p := range paragraphs {
		for _, line := range wrapWords(escapeControl(p), commentWidth) {
			toks = append(toks, &hclwrite.Token{Type: hclsyntax.TokenComment, Bytes: []byte(strings.TrimRight("# "+line, " ") + "\n")})
		}
	}
	b.AppendUnstructuredTokens(toks)
}

func escapeControl(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// wrapWords breaks s at spaces into lines of at most width bytes where
// the words allow. Runs of spaces (inside quoted names) are kept.
func wrapWords(s string, width int) []string {
	var lines []string
	line, started := "", false
	for _, w := range strings.Split(s, " ") {
		switch {
		case !started:
			line, started = w, true
		case line != "" && len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	return append(lines, line)
}
