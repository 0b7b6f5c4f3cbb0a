package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// DefaultNamespace is the Iceberg namespace of the iceberg warehouse's
// tables unless namespace says otherwise.
const DefaultNamespace = "sluice"

// DefaultIcebergCatalogFile is the SQLite catalog's file, beside a local
// state file, when the iceberg warehouse has no catalog block.
const DefaultIcebergCatalogFile = "iceberg-catalog.db"

// namespacePattern is what an Iceberg namespace may be: query engines
// (Trino, Spark, DuckDB) fold unquoted identifiers to lower case and read
// a dot as a level separator, so only these names work unquoted
// everywhere.
var namespacePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,127}$`)

// icebergSchemes are the object-store URL schemes an iceberg warehouse's
// path may have (those iceberg-go reaches); anything else with "://" is
// refused rather than taken for a local directory.
var icebergSchemes = []string{"s3", "s3a", "gs", "file"}

// objectStoreScheme returns the scheme of a path written as a URL
// ("s3" for "s3://lake/sluice"), "" for a local path.
func objectStoreScheme(p string) string {
	scheme, _, ok := strings.Cut(p, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, `/\`) {
		return ""
	}
	return strings.ToLower(scheme)
}

// decodeIceberg decodes the iceberg backend's attributes and blocks of
// the warehouse block a reads.
func (l *loader) decodeIceberg(w *Warehouse, a *attrs, blocks map[string]hcl.Blocks) {
	if w.Backend == "iceberg" {
		w.Namespace = DefaultNamespace
	}
	if a.str("namespace", &w.Namespace) && !namespacePattern.MatchString(w.Namespace) {
		a.errorf("namespace", "Invalid namespace",
			"namespace %q must start with a lowercase letter or an underscore and hold only lowercase letters, digits and underscores (at most 128), so that every query engine reads it unquoted.", w.Namespace)
	}
	var retention string
	if a.str("retention", &retention) {
		if d, err := ParseDuration(retention); err != nil || d <= 0 {
			a.errorf("retention", "Invalid retention", "retention must be a positive duration, such as 24h or 7d: how long replaced snapshots stay readable before they expire.")
		} else {
			w.Retention = d
		}
	}
	scheme := ""
	if w.Backend == "iceberg" && !a.isUnknown("path") {
		scheme = objectStoreScheme(w.Path)
		if scheme != "" && !containsString(icebergSchemes, scheme) {
			a.errorf("path", "Unsupported warehouse location",
				"The iceberg warehouse's path is a local directory, s3://bucket/prefix or gs://bucket/prefix; %s:// is not supported.", scheme)
		}
	}
	if c := single(&l.e, blocks["catalog"]); c != nil {
		w.Catalog = &Catalog{Type: "sql"}
		ca := &attrs{e: &l.e, m: l.content(c, catalogSchema), prefix: "catalog.", ranges: w.Attrs, sensitive: w.Sensitive, unknown: l.unknownOf(w)}
		if ca.str("type", &w.Catalog.Type) && w.Catalog.Type != "sql" {
			ca.errorf("type", "Unknown catalog type",
				"catalog type %q is not supported: the iceberg warehouse uses the SQL catalog (type = \"sql\"), on SQLite or PostgreSQL.%s", w.Catalog.Type, suggest(w.Catalog.Type, []string{"sql"}))
		}
		if ca.str("url", &w.Catalog.URL) {
			if _, err := parseCatalogURL(w.Catalog.URL); err != nil {
				ca.errorf("url", "Invalid catalog URL", "%s", err)
			}
		} else if !ca.has("url") {
			l.e.diags = append(l.e.diags, errorAt(c.DefRange, "Missing catalog URL",
				`The catalog block needs url: "sqlite:///abs/path.db", "sqlite:relative.db" or "postgres://..."; leave the block out for a SQLite catalog beside the state.`))
		}
	}
	if s := single(&l.e, blocks["s3"]); s != nil {
		w.S3 = &S3{}
		sa := &attrs{e: &l.e, m: l.content(s, s3Schema), prefix: "s3.", ranges: w.Attrs, sensitive: w.Sensitive, unknown: l.unknownOf(w)}
		if sa.str("endpoint", &w.S3.Endpoint) {
			if u, err := url.Parse(w.S3.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				sa.errorf("endpoint", "Invalid S3 endpoint", "endpoint must be an http:// or https:// URL, such as http://127.0.0.1:7070.")
			}
		}
		sa.str("region", &w.S3.Region)
		sa.boolean("path_style", &w.S3.PathStyle)
		sa.str("access_key_id", &w.S3.AccessKeyID)
		sa.str("secret_access_key", &w.S3.SecretAccessKey)
		if sa.has("access_key_id") != sa.has("secret_access_key") {
			name := "access_key_id"
			if !sa.has("access_key_id") {
				name = "secret_access_key"
			}
			sa.errorf(name, "Incomplete S3 credentials", "access_key_id and secret_access_key go together: set both, or neither (the AWS SDK's usual chain then applies: AWS_* variables, profiles, instance roles).")
		}
		if w.Backend == "iceberg" && !a.isUnknown("path") && scheme != "s3" && scheme != "s3a" {
			l.e.diags = append(l.e.diags, errorAt(s.DefRange, "S3 options without an S3 location",
				"The s3 block configures an s3:// path, but path is %q. Set path = \"s3://bucket/prefix\", or remove the s3 block.", w.Path))
		}
	}
}

// catalogURL is a parsed catalog URL.
type catalogURL struct {
	sqlite string // the SQLite file, as written
}

// parseCatalogURL checks a catalog URL's form.
func parseCatalogURL(u string) (catalogURL, error) {
	switch {
	case strings.HasPrefix(u, "sqlite://"):
		p := strings.TrimPrefix(u, "sqlite://")
		if !strings.HasPrefix(p, "/") {
			return catalogURL{}, errors.New(`a "sqlite://" catalog URL takes an absolute path ("sqlite:///abs/path.db"); write "sqlite:relative.db" for a file relative to the configuration`)
		}
		return catalogURL{sqlite: p}, nil
	case strings.HasPrefix(u, "sqlite:"):
		p := strings.TrimPrefix(u, "sqlite:")
		if p == "" {
			return catalogURL{}, errors.New(`the catalog URL names no SQLite file: write "sqlite:///abs/path.db" or "sqlite:relative.db"`)
		}
		return catalogURL{sqlite: p}, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if _, err := url.Parse(u); err != nil {
			return catalogURL{}, errors.New("the catalog's postgres:// URL does not parse")
		}
		return catalogURL{}, nil
	}
	return catalogURL{}, errors.New(`the catalog URL must be "sqlite:///abs/path.db", "sqlite:relative.db" or "postgres://..."`)
}

// IcebergLocation is the iceberg warehouse's location: an object store
// URL as written, or the local directory made absolute (relative to the
// configuration's directory).
func (c *Config) IcebergLocation() (string, error) {
	p := c.Warehouse.Path
	switch objectStoreScheme(p) {
	case "":
		return ResolvePath(c.Dir, p)
	case "file":
		return ResolvePath(c.Dir, strings.TrimPrefix(p, p[:len("file://")]))
	}
	return p, nil
}

// IcebergCatalogURL is the iceberg warehouse's SQL catalog: the catalog
// block's url with a relative SQLite file made absolute (relative to the
// configuration's directory), or by default a SQLite catalog beside the
// state (DefaultIcebergCatalogFile in the local state file's directory)
// or, with the postgres state backend, the state's database. sensitive
// reports whether the URL derives from a sensitive value; a URL is never
// printed whole anyway (it may hold a password).
func (c *Config) IcebergCatalogURL() (u string, sensitive bool, err error) {
	if cat := c.Warehouse.Catalog; cat != nil {
		pu, err := parseCatalogURL(cat.URL)
		if err != nil {
			return "", false, err
		}
		if pu.sqlite == "" {
			return cat.URL, true, nil
		}
		p, err := ResolvePath(c.Dir, pu.sqlite)
		if err != nil {
			return "", false, err
		}
		return "sqlite://" + filepath.ToSlash(p), c.Warehouse.Sensitive["catalog.url"], nil
	}
	switch c.State.Backend {
	case "postgres":
		return c.State.URL, true, nil
	case "", "local":
		p, err := ResolvePath(c.Dir, c.State.Path)
		if err != nil {
			return "", false, err
		}
		return "sqlite://" + filepath.ToSlash(filepath.Join(filepath.Dir(p), DefaultIcebergCatalogFile)), false, nil
	}
	return "", false, fmt.Errorf("no default iceberg catalog for the %s state backend: add a catalog block", c.State.Backend)
}
