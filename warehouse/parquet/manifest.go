package parquet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/internal/atomicfile"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// manifestFormat is the version of the manifest's JSON shape. A reader
// refuses a newer format rather than misreading it.
const manifestFormat = 1

// Manifest is a table's committed version, stored as
// <table>/_sluice/manifest.json. It is the source of truth: the table is
// exactly its Files, and Position is how far the sync had got when they
// were committed.
type Manifest struct {
	Format int `json:"format"`
	// Version counts commits: 1 after the first; 0 for a table never
	// committed (no manifest on disk).
	Version     int64     `json:"version"`
	CommittedAt time.Time `json:"committed_at"`
	// Mode is how the last commit changed the table ("replace", "merge",
	// "append"); SyncMode is the sluice sync type the caller named
	// ("full_refresh", "incremental", "cdc", ...).
	Mode     string `json:"mode,omitempty"`
	SyncMode string `json:"sync_mode,omitempty"`
	// Rows is the table's row count: the sum of Files' rows.
	Rows int64 `json:"rows"`
	// Bytes is the size of the table's files.
	Bytes int64 `json:"bytes"`
	// Warnings counts values written as NULL because Parquet cannot hold
	// them (numeric NaN in a DECIMAL column, ±infinity timestamps), over
	// the commits since the table was last replaced; CommitWarnings counts
	// those of the last commit.
	Warnings       int64 `json:"warnings"`
	CommitWarnings int64 `json:"commit_warnings"`
	// Position is the sync position committed with the data (DESIGN
	// invariant 1).
	Position records.Position `json:"position"`
	// Schema is the table's columns, the last being _sluice_synced_at.
	Schema Schema `json:"schema"`
	// Buckets is the number of hash buckets of a table with a primary key
	// (a power of two), 0 when its files are not bucketed. KeyHash names
	// the key encoding and hash that assign rows to buckets.
	Buckets int    `json:"buckets"`
	KeyHash string `json:"key_hash,omitempty"`
	// Files are the table's data files, relative to the table directory.
	Files []FileInfo `json:"files"`
}

// keyHashName identifies records.AppendKey + records.KeyHash, so that a
// future encoding can tell tables bucketed by this one.
const keyHashName = "sluice-key-v1/fnv1a64-fmix64"

// FileInfo describes one data file of a table.
type FileInfo struct {
	Name  string `json:"name"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
	// Bucket is the hash bucket whose keys the file holds, or -1 for a
	// file of a table without buckets (any key).
	Bucket int `json:"bucket"`
	// KeyMin and KeyMax bound the encoded primary keys (records.AppendKey)
	// of the file's rows, so that a merge skips files its keys cannot be
	// in; empty without a primary key.
	KeyMin []byte `json:"key_min,omitempty"`
	KeyMax []byte `json:"key_max,omitempty"`
}

// Schema is a table's schema as the manifest records it.
type Schema struct {
	Columns    []Column `json:"columns"`
	PrimaryKey []string `json:"primary_key,omitempty"`
}

// Column is one column of a table as the manifest records it.
type Column struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// SourceType is the type as the source names it ("numeric(12,2)").
	SourceType string `json:"source_type,omitempty"`
	// Nullable is the source column's nullability. Every Parquet column is
	// written OPTIONAL whatever it says: a value the Parquet type cannot
	// hold becomes NULL, and files written before a column existed hold
	// NULLs for it.
	Nullable bool `json:"nullable"`
}

// Type is a records.ParquetType as the manifest records it.
type Type struct {
	Name          string `json:"name"`
	Physical      string `json:"physical"`
	Logical       string `json:"logical,omitempty"`
	Precision     int    `json:"precision,omitempty"`
	Scale         int    `json:"scale,omitempty"`
	Length        int    `json:"length,omitempty"`
	AdjustedToUTC bool   `json:"adjusted_to_utc,omitempty"`
	Element       *Type  `json:"element,omitempty"`
}

func typeOf(t records.ParquetType) Type {
	out := Type{
		Name:          t.Name,
		Physical:      string(t.Physical),
		Logical:       string(t.Logical),
		Precision:     t.Precision,
		Scale:         t.Scale,
		Length:        t.Length,
		AdjustedToUTC: t.AdjustedToUTC,
	}
	if t.Element != nil {
		e := typeOf(*t.Element)
		out.Element = &e
	}
	return out
}

// ParquetType converts the recorded type back.
func (t Type) ParquetType() records.ParquetType {
	out := records.ParquetType{
		Name:          t.Name,
		Physical:      records.Physical(t.Physical),
		Logical:       records.Logical(t.Logical),
		Precision:     t.Precision,
		Scale:         t.Scale,
		Length:        t.Length,
		AdjustedToUTC: t.AdjustedToUTC,
	}
	if t.Element != nil {
		e := t.Element.ParquetType()
		out.Element = &e
	}
	return out
}

// schemaOf records s.
func schemaOf(s *records.Schema) Schema {
	out := Schema{PrimaryKey: append([]string(nil), s.PrimaryKey...)}
	for _, c := range s.Columns {
		out.Columns = append(out.Columns, Column{Name: c.Name, Type: typeOf(c.Type), SourceType: c.SourceType, Nullable: c.Nullable})
	}
	return out
}

// Records converts the recorded schema back.
func (s Schema) Records() *records.Schema {
	out := &records.Schema{PrimaryKey: append([]string(nil), s.PrimaryKey...)}
	for _, c := range s.Columns {
		out.Columns = append(out.Columns, records.Column{Name: c.Name, Type: c.Type.ParquetType(), SourceType: c.SourceType, Nullable: c.Nullable})
	}
	return out
}

// clone returns a deep enough copy for a transaction to change.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Files = append([]FileInfo(nil), m.Files...)
	c.Schema.Columns = append([]Column(nil), m.Schema.Columns...)
	c.Schema.PrimaryKey = append([]string(nil), m.Schema.PrimaryKey...)
	return &c
}

// readManifest loads the committed manifest of the table directory; a
// missing manifest is the zero version.
func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, metaDir, manifestName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Manifest{Format: manifestFormat}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the table manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading the table manifest %s: %w (%w: restore it from a backup, or resync the table (sluice resync), which reloads it from the source; for a cdc history table, whose past versions the source does not have, remove its directory before the resync)", path, err, warehouse.ErrDamaged)
	}
	if m.Format > manifestFormat {
		return nil, fmt.Errorf("the table manifest %s has format %d, newer than this sluice understands (%d): upgrade sluice", path, m.Format, manifestFormat)
	}
	return &m, nil
}

// writeManifest atomically replaces the table's manifest: the new content
// goes to a temporary file in _sluice/, which is synced, renamed over
// manifest.json, and the directory synced, so that after a crash the
// manifest is either the old or the new one, whole.
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the table manifest: %w", err)
	}
	path := filepath.Join(dir, metaDir, manifestName)
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600, atomicfile.TempPrefix(tmpManifestPrefix), atomicfile.NoSync(!durable)); err != nil {
		return fmt.Errorf("writing the table manifest: %w", err)
	}
	return nil
}

// durable turns the fsyncs of files and directories on; only tests that
// check neither durability nor crash recovery turn it off, to run fast on
// a busy disk.
var durable = true

// syncDir makes the entries of a directory (created, renamed and removed
// files) durable.
func syncDir(dir string) error {
	if !durable {
		return nil
	}
	return atomicfile.SyncDir(dir)
}
