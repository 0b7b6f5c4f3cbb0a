package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// This file holds what CDC tables need beyond Replace, Merge and Append:
// history tables whose versions are closed by later changes, lookups of
// the stored version of given keys, and the committed schema those
// lookups decode by.
//
// # History tables
//
// A history table (SPEC §4, <prefix>_<table>_cdc) holds one row per
// version of a source row: valid_from is when the version began, valid_to
// when a later change (or the row's delete) ended it, NULL while it is
// current. A delete's own row (_sluice_cdc_op = 'D') is closed at once, so
// that `WHERE valid_to IS NULL` is exactly the live rows. The table has no
// primary key (a key has many versions) but a partial index on the key of
// the current versions, which is what a commit updates and a lookup
// reads. A history commit stages the incoming versions as a merge does,
// then in its transaction closes the current versions of the incoming
// keys at the first incoming version's valid_from, and inserts the
// incoming versions with valid_to set to the next version's valid_from
// (lead() over the key's versions in change order), or to their own
// valid_from for a delete.

// The columns of a history table that a history commit reads and sets;
// the runner builds them (SPEC §4).
const (
	HistoryOpColumn = warehouse.HistoryOpColumn
	ValidFromColumn = warehouse.ValidFromColumn
	ValidToColumn   = warehouse.ValidToColumn
)

// syncedAtType is the Parquet type _sluice_synced_at is recorded with, as
// the Parquet warehouse writes it.
var syncedAtType = records.ParquetType{
	Physical:      records.PhysicalInt64,
	Logical:       records.LogicalTimestamp,
	AdjustedToUTC: true,
	Name:          "TIMESTAMP(MICROS,UTC)",
}

// lookupTimeout bounds a lookup or scan within the caller's context: a
// lookup reads a few rows by index, a scan is for tests.
const lookupTimeout = 10 * time.Minute

// readBatchRows is how many rows a lookup or scan hands over at a time.
const readBatchRows = 4096

// historySpec says how a merge transaction writes a history table.
type historySpec struct {
	// closeAll closes every current version at closeAt before the
	// incoming versions: a TRUNCATE, or a resync whose snapshot becomes
	// the new current versions.
	closeAll bool
	closeAt  time.Time
}

// BeginHistory starts a transaction adding versions to a history table.
// schema must hold the columns HistoryOpColumn (STRING), ValidFromColumn
// and ValidToColumn (TIMESTAMP) and the source table's primary key; the
// incoming rows' valid_to is ignored (the commit sets it). Rows arrive in
// change order; each closes the key's previous version at its valid_from.
// A non-zero closeAllAt closes every current version at that time first.
func (t *Table) BeginHistory(ctx context.Context, schema *records.Schema, sync string, closeAllAt time.Time) (warehouse.Tx, error) {
	if err := warehouse.CheckHistorySchema(schema); err != nil {
		return nil, fmt.Errorf("beginning a write to history table %s: %w", t.qualified(), err)
	}
	h := &historySpec{closeAll: !closeAllAt.IsZero(), closeAt: closeAllAt.UTC()}
	tx, err := t.begin(ctx, warehouse.Merge, schema, sync, h)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// commitHistory closes the versions the staged ones end and inserts the
// staged versions (see the file comment).
func (tx *Tx) commitHistory(ctx context.Context) error {
	t := tx.t
	to, from, op := pgx.Identifier{ValidToColumn}.Sanitize(), pgx.Identifier{ValidFromColumn}.Sanitize(), pgx.Identifier{HistoryOpColumn}.Sanitize()
	if tx.hist.closeAll {
		q := fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s IS NULL", t.ident(), to, to)
		if _, err := tx.conn.Exec(ctx, q, tx.hist.closeAt); err != nil {
			return fmt.Errorf("closing the current versions: %w", err)
		}
	}
	if tx.rows == 0 {
		return nil
	}
	if err := tx.fillUnchanged(ctx); err != nil {
		return err
	}
	stage := pgx.Identifier{stageTable}.Sanitize()
	keyS, keyT, keyF := quoteList(tx.key, "s."), quoteList(tx.key, "t."), quoteList(tx.key, "f.")
	q := fmt.Sprintf(`UPDATE %s t SET %s = f.%s
FROM (SELECT DISTINCT ON (%s) %s, s.%s FROM %s s ORDER BY %s, s.%s) f
WHERE (%s) = (%s) AND t.%s IS NULL`,
		t.ident(), to, from, keyS, keyS, from, stage, keyS, stageRow, keyT, keyF, to)
	if _, err := tx.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("closing the versions the changes end: %w", err)
	}
	names := make([]string, len(tx.cols))
	sel := make([]string, len(tx.cols))
	for i, c := range tx.cols {
		names[i] = c.name
		sel[i] = "s." + pgx.Identifier{c.name}.Sanitize()
		if c.name == ValidToColumn {
			sel[i] = fmt.Sprintf("CASE WHEN s.%s = 'D' THEN s.%s ELSE lead(s.%s) OVER w END", op, from, from)
		}
	}
	insertCols := quoteList(names, "")
	var args []any
	if tx.hasSyncedAt {
		insertCols += ", " + pgx.Identifier{SyncedAtColumn}.Sanitize()
		sel = append(sel, "$1::timestamptz")
		args = append(args, tx.syncedAt)
	}
	q = fmt.Sprintf(`INSERT INTO %s (%s)
SELECT %s FROM %s s
WINDOW w AS (PARTITION BY %s ORDER BY s.%s)
ORDER BY s.%s`, t.ident(), insertCols, strings.Join(sel, ", "), stage, keyS, stageRow, stageRow)
	if _, err := tx.conn.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("inserting the versions: %w", err)
	}
	return nil
}

// Lookup calls fn with the committed rows whose primary key is one of the
// keys in keys, a batch of the table's key columns (same names, in key
// order); fn may be called several times, each time with a batch (reused
// afterwards) and the rows of it to read. With current set, only the
// current versions of a history table are read. Values come back with the
// types of the committed schema (Schema).
func (t *Table) Lookup(ctx context.Context, keys *records.Batch, current bool, fn func(*records.Batch, []int32) error) error {
	if keys == nil || keys.N == 0 {
		return nil
	}
	t.mu.Lock()
	schema, committed := cloneSchema(t.schema), t.committed
	t.mu.Unlock()
	if !committed {
		return nil
	}
	if schema == nil {
		return fmt.Errorf("looking up rows of %s: the table was written by an earlier version of sluice, which did not record its schema: resync the table", t.qualified())
	}
	if got := keyNames(keys.Schema); !slices.Equal(got, schema.PrimaryKey) {
		return fmt.Errorf("looking up rows of %s: the keys given are (%s), the table's key is (%s)", t.qualified(),
			strings.Join(got, ", "), strings.Join(schema.PrimaryKey, ", "))
	}
	r := &codec.TextRowReader{B: keys, Cols: make([]int, len(keys.Cols)), Enc: make([]codec.TextEncoder, len(keys.Cols))}
	for i, c := range keys.Schema.Columns {
		enc, err := codec.TextEncoderFor(c.Type)
		if err != nil {
			return fmt.Errorf("looking up rows of %s: key column %q: %w", t.qualified(), c.Name, err)
		}
		r.Cols[i], r.Enc[i] = i, enc
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	err := t.w.withConn(ctx, func(conn *pgx.Conn) error {
		return inTransaction(ctx, conn, func() error {
			keysTable := pgx.Identifier{"_sluice_keys"}.Sanitize()
			keyList := quoteList(schema.PrimaryKey, "")
			// The key columns' types are the table's, whatever the batch
			// carries them as.
			q := fmt.Sprintf("CREATE TEMPORARY TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA", keysTable, keyList, t.ident())
			if _, err := conn.Exec(ctx, q); err != nil {
				return err
			}
			if _, err := conn.PgConn().CopyFrom(ctx, r, "COPY "+keysTable+" ("+keyList+") FROM STDIN"); err != nil {
				return err
			}
			// Without statistics the planner would guess the keys' number.
			if _, err := conn.Exec(ctx, "ANALYZE "+keysTable); err != nil {
				return err
			}
			q = fmt.Sprintf("SELECT %s FROM %s t WHERE (%s) IN (SELECT %s FROM %s)", columnList(schema, "t."), t.ident(),
				quoteList(schema.PrimaryKey, "t."), keyList, keysTable)
			if current && schema.Index(ValidToColumn) >= 0 {
				q += " AND t." + pgx.Identifier{ValidToColumn}.Sanitize() + " IS NULL"
			}
			return readBatches(ctx, conn, q, schema, fn)
		})
	})
	if err != nil {
		return fmt.Errorf("looking up rows of %s: %w", t.qualified(), err)
	}
	return nil
}

// Scan calls fn with every row of the table, in batches of the committed
// schema (reused afterwards).
func (t *Table) Scan(ctx context.Context, fn func(*records.Batch) error) error {
	schema := t.Schema()
	if schema == nil {
		return fmt.Errorf("reading %s: no schema is recorded for it", t.qualified())
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	err := t.w.withConn(ctx, func(conn *pgx.Conn) error {
		q := fmt.Sprintf("SELECT %s FROM %s", columnList(schema, ""), t.ident())
		return readBatches(ctx, conn, q, schema, func(b *records.Batch, _ []int32) error { return fn(b) })
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", t.qualified(), err)
	}
	return nil
}

// inTransaction runs fn in a transaction of conn, committed when fn
// succeeds.
func inTransaction(ctx context.Context, conn *pgx.Conn, fn func() error) error {
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		// A broken connection is reconnected by withConn next time.
		conn.Exec(ctx, "ROLLBACK")
		return err
	}
	_, err := conn.Exec(ctx, "COMMIT")
	return err
}

func keyNames(s *records.Schema) []string {
	names := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		names[i] = c.Name
	}
	return names
}

// columnList quotes the schema's column names, each prefixed.
func columnList(s *records.Schema, prefix string) string {
	return quoteList(keyNames(s), prefix)
}

// readBatches runs query, whose columns are schema's, and hands its rows
// to fn decoded from their text forms, readBatchRows at a time.
func readBatches(ctx context.Context, conn *pgx.Conn, query string, schema *records.Schema, fn func(*records.Batch, []int32) error) error {
	decs := make([]*codec.TextDecoder, len(schema.Columns))
	for i, c := range schema.Columns {
		d, err := codec.NewTextDecoder(c.Type)
		if typ, terr := codec.ColumnType(c); terr == nil && codec.IsBoxArray(typ) {
			// box's array delimiter is ';' (its text holds commas).
			d, err = codec.NewListTextDecoder(c.Type, ';')
		}
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
		decs[i] = d
	}
	b := records.NewBatch(schema, readBatchRows)
	sel := make([]int32, 0, readBatchRows)
	flush := func() error {
		if b.N == 0 {
			return nil
		}
		sel = sel[:0]
		for i := range b.N {
			sel = append(sel, int32(i))
		}
		err := fn(b, sel)
		b.Reset()
		return err
	}
	// Text results: every value in the form the decoders read.
	rr := conn.PgConn().ExecParams(ctx, query, nil, nil, nil, nil)
	var err error
	for err == nil && rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(decs) {
			err = fmt.Errorf("the query returned %d columns, the schema has %d", len(vals), len(decs))
			break
		}
		for i, v := range vals {
			if v == nil {
				b.Cols[i].AppendNull()
				continue
			}
			if derr := decs[i].Decode(&b.Cols[i], v); derr != nil {
				err = fmt.Errorf("column %q: %w", schema.Columns[i].Name, derr)
				break
			}
		}
		if err != nil {
			break
		}
		b.N++
		if b.N == readBatchRows {
			err = flush()
		}
	}
	_, cerr := rr.Close()
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	return flush()
}
