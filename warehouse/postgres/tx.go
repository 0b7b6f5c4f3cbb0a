package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// Staging columns of a merge, after the batch's columns: the row's order in
// the transaction (the last row of a key wins) and the batch columns whose
// value the change did not carry (records.Vec.Unchanged).
const (
	stageTable     = "_sluice_stage"
	stageRow       = "_sluice_row"
	stageUnchanged = "_sluice_unchanged"
)

// beforeCommit, when set (by tests), runs just before COMMIT: an error
// there is a crash between the copy and the commit.
var beforeCommit func() error

// column is a column of the transaction's schema as the table holds it.
type column struct {
	name string
	typ  string // SQL type in format_type's spelling
	enc  codec.TextEncoder
	bin  codec.BinaryEncoder // nil when the column has no binary form
}

// existing is what the catalog says of a table.
type existing struct {
	oid     uint32
	columns map[string]string // name -> format_type
	order   []string          // in attnum order
	key     []string          // primary key, in key order
}

// Tx is one commit in progress: a PostgreSQL transaction on a connection of
// its own. Nothing it writes is visible until Commit; Abort, an error or a
// crash rolls all of it back.
type Tx struct {
	t      *Table
	conn   *pgx.Conn
	mode   warehouse.Mode
	sync   string
	schema *records.Schema
	cols   []column
	// hasSyncedAt is false when the batch schema carries _sluice_synced_at
	// itself.
	hasSyncedAt bool
	syncedAt    time.Time
	syncedText  []byte // syncedAt in COPY text form, tab-led
	// target is the quoted table COPY writes to: the new table of a
	// Replace, the staging table of a Merge, the table of an Append.
	target  string
	newName string // the new table of a Replace
	copySQL string
	// textCopySQL copies in the text format: a binary transaction's
	// batches that carry exact text forms (records.Vec.Exact) are written
	// by it.
	textCopySQL string
	key         []string
	old         *existing // the table before this transaction, nil if none
	// prevRows is the row count committed before (Append, Merge).
	prevRows  int64
	rows      int64 // rows written
	seq       int64 // the next _sluice_row
	unchanged map[int]bool
	// binary is set when the rows are copied in the binary format.
	binary bool
	// hist is set for a history transaction (BeginHistory).
	hist *historySpec
	// stored is the schema recorded with the committed position, nil if
	// none.
	stored *records.Schema
	// committedSchema is resultSchema, recorded by commit.
	committedSchema *records.Schema
	done            bool
}

var _ warehouse.Tx = (*Tx)(nil)

// Begin starts a commit (see warehouse.Table). Replace copies into a new
// table that replaces the old one at Commit; Merge copies into a temporary
// staging table upserted at Commit; Append copies into the table. Columns
// new to the table are added; a column whose type changed, or a changed
// primary key for Merge, is an error wrapping warehouse.ErrSchemaChanged.
func (t *Table) Begin(ctx context.Context, mode warehouse.Mode, schema *records.Schema, sync string) (warehouse.Tx, error) {
	tx, err := t.begin(ctx, mode, schema, sync, nil)
	if err != nil {
		return nil, classify(err)
	}
	return tx, nil
}

func (t *Table) begin(ctx context.Context, mode warehouse.Mode, schema *records.Schema, sync string, hist *historySpec) (*Tx, error) {
	tx := &Tx{t: t, mode: mode, sync: sync, schema: schema, hasSyncedAt: schema.Index(SyncedAtColumn) < 0,
		syncedAt: time.Now().UTC().Truncate(time.Microsecond), unchanged: map[int]bool{}, hist: hist}
	if err := tx.prepareColumns(); err != nil {
		return nil, fmt.Errorf("beginning a write to %s: %w", t.qualified(), err)
	}
	tx.syncedText = codec.AppendTimestamp([]byte{'\t'}, tx.syncedAt.UnixMicro(), true)
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	conn, err := t.w.txConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning a write to %s: connecting to the warehouse: %w", t.qualified(), err)
	}
	tx.conn = conn
	if err := tx.start(ctx); err != nil {
		tx.close()
		return nil, fmt.Errorf("beginning a write to %s: %w", t.qualified(), err)
	}
	return tx, nil
}

func (tx *Tx) prepareColumns() error {
	s := tx.schema
	seen := map[string]bool{}
	// One COPY has one format: binary when every column has a binary
	// form here, else text.
	allBinary := true
	defer func() { tx.binary = allBinary }()
	for _, c := range s.Columns {
		if c.Name == "" || len(c.Name) > maxIdentifierBytes {
			return fmt.Errorf("column name %q: PostgreSQL names are 1 to %d bytes long", c.Name, maxIdentifierBytes)
		}
		if seen[c.Name] {
			return fmt.Errorf("column %q appears twice", c.Name)
		}
		seen[c.Name] = true
		typ, err := codec.ColumnType(c)
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
		enc, err := codec.ColumnTextEncoder(c.Type, typ)
		if err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
		bin, ok := codec.ColumnBinaryEncoder(c.Type, typ)
		tx.cols = append(tx.cols, column{name: c.Name, typ: typ, enc: enc, bin: bin})
		allBinary = allBinary && ok
	}
	if _, err := s.KeyIndexes(); err != nil {
		return err
	}
	tx.key = s.PrimaryKey
	if tx.mode == warehouse.Merge && len(tx.key) == 0 {
		return errors.New("a merge needs a primary key: the table has none")
	}
	return nil
}

// createKey reports whether the table is created with its primary key: a
// table that is appended to keeps every version of a key.
func (tx *Tx) createKey() bool {
	return len(tx.key) > 0 && tx.mode != warehouse.Append && tx.sync != "append" && tx.hist == nil
}

func (tx *Tx) start(ctx context.Context) error {
	t := tx.t
	if _, err := tx.conn.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	// One writer per table, across processes: held until COMMIT or
	// ROLLBACK.
	if _, err := tx.conn.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(t.w.schema, t.name)); err != nil {
		return fmt.Errorf("locking the table: %w", err)
	}
	old, err := tx.lookup(ctx, t.name)
	if err != nil {
		return err
	}
	tx.old = old
	if err := tx.readCommitted(ctx); err != nil {
		return err
	}
	if old != nil && tx.mode != warehouse.Replace {
		if err := tx.checkCompatible(); err != nil {
			return err
		}
	}
	switch tx.mode {
	case warehouse.Replace:
		if old != nil && !t.w.dropCascade {
			// Fail before copying the rows, not after; Commit looks again.
			if err := tx.checkViews(ctx, old.oid); err != nil {
				return err
			}
		}
		tx.newName = "_sluice_new_" + randomHex(8)
		tx.target = pgx.Identifier{t.w.schema, tx.newName}.Sanitize()
		if _, err := tx.conn.Exec(ctx, tx.createSQL(tx.target)); err != nil {
			return fmt.Errorf("creating the new table: %w", err)
		}
	case warehouse.Append, warehouse.Merge:
		if old == nil {
			if _, err := tx.conn.Exec(ctx, tx.createSQL(t.ident())); err != nil {
				return fmt.Errorf("creating the table: %w", err)
			}
			switch {
			case tx.hist != nil:
				// Versions of a key are closed by the next: the current
				// ones are found by key.
				q := fmt.Sprintf("CREATE INDEX %s ON %s (%s) WHERE %s IS NULL", pgx.Identifier{derivedName(t.name, "_current")}.Sanitize(),
					t.ident(), quoteList(tx.key, ""), pgx.Identifier{ValidToColumn}.Sanitize())
				if _, err := tx.conn.Exec(ctx, q); err != nil {
					return fmt.Errorf("creating the index of current versions: %w", err)
				}
			case tx.mode == warehouse.Merge:
				if _, err := tx.conn.Exec(ctx, tx.keySQL(t.ident(), derivedName(t.name, "_pkey"))); err != nil {
					return fmt.Errorf("creating the primary key: %w", err)
				}
			}
			tx.old = &existing{columns: map[string]string{}}
		} else if err := tx.addColumns(ctx); err != nil {
			return err
		}
		tx.target = t.ident()
	}
	names := make([]string, 0, len(tx.cols)+2)
	for _, c := range tx.cols {
		names = append(names, c.name)
	}
	if tx.mode == warehouse.Merge {
		stage := pgx.Identifier{stageTable}.Sanitize()
		var b strings.Builder
		fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s (", stage)
		for _, c := range tx.cols {
			fmt.Fprintf(&b, "%s %s, ", pgx.Identifier{c.name}.Sanitize(), c.typ)
		}
		fmt.Fprintf(&b, "%s bigint NOT NULL, %s integer[]) ON COMMIT DROP", stageRow, stageUnchanged)
		if _, err := tx.conn.Exec(ctx, b.String()); err != nil {
			return fmt.Errorf("creating the staging table: %w", err)
		}
		tx.target = stage
		names = append(names, stageRow, stageUnchanged)
	} else if tx.hasSyncedAt {
		names = append(names, SyncedAtColumn)
	}
	tx.copySQL = "COPY " + tx.target + " (" + quoteList(names, "") + ") FROM STDIN"
	tx.textCopySQL = tx.copySQL
	var opts []string
	if tx.mode == warehouse.Replace {
		// The new table was created by this transaction: its rows can be
		// written frozen, sparing the readers' first scans (and vacuum)
		// the work of marking them.
		opts = append(opts, "FREEZE")
	}
	if len(opts) > 0 {
		tx.textCopySQL += " (" + strings.Join(opts, ", ") + ")"
	}
	if tx.binary {
		opts = append([]string{"FORMAT binary"}, opts...)
	}
	if len(opts) > 0 {
		tx.copySQL += " (" + strings.Join(opts, ", ") + ")"
	}
	return nil
}

// createSQL is the CREATE TABLE of the transaction's columns, and
// _sluice_synced_at last.
func (tx *Tx) createSQL(ident string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", ident)
	for i, c := range tx.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", pgx.Identifier{c.name}.Sanitize(), c.typ)
	}
	if tx.hasSyncedAt {
		fmt.Fprintf(&b, ", %s timestamp with time zone", pgx.Identifier{SyncedAtColumn}.Sanitize())
	}
	b.WriteString(")")
	return b.String()
}

func (tx *Tx) keySQL(ident, constraint string) string {
	return fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)", ident, pgx.Identifier{constraint}.Sanitize(), quoteList(tx.key, ""))
}

// lookup reads a table's columns and primary key from the catalog; nil when
// there is no such table.
func (tx *Tx) lookup(ctx context.Context, name string) (*existing, error) {
	var oid uint32
	err := tx.conn.QueryRow(ctx, `
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, tx.t.w.schema, name).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking the table up: %w", err)
	}
	e := &existing{oid: oid, columns: map[string]string{}}
	rows, err := tx.conn.Query(ctx, `
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("reading the table's columns: %w", err)
	}
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			return nil, err
		}
		e.columns[n] = typ
		e.order = append(e.order, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the table's columns: %w", err)
	}
	err = tx.conn.QueryRow(ctx, `
SELECT coalesce(array_agg(a.attname ORDER BY k.ord), '{}')
FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary`, oid).Scan(&e.key)
	if err != nil {
		return nil, fmt.Errorf("reading the table's primary key: %w", err)
	}
	return e, nil
}

// checkCompatible fails with ErrSchemaChanged when a column changed type or
// (for Merge) the key is not the table's.
func (tx *Tx) checkCompatible() error {
	for _, c := range tx.cols {
		if typ, ok := tx.old.columns[c.name]; ok && typ != c.typ {
			return fmt.Errorf("%w: column %q is %s in the warehouse and %s now", warehouse.ErrSchemaChanged, c.name, typ, c.typ)
		}
	}
	switch {
	case tx.hist != nil:
		// A history table has no primary key constraint (a key has many
		// versions): its key is the one recorded.
		if tx.stored != nil && !slices.Equal(tx.stored.PrimaryKey, tx.key) {
			return fmt.Errorf("%w: the history table's key is (%s), the source's (%s)", warehouse.ErrSchemaChanged,
				strings.Join(tx.stored.PrimaryKey, ", "), strings.Join(tx.key, ", "))
		}
	case tx.mode == warehouse.Merge && !slices.Equal(tx.old.key, tx.key):
		return fmt.Errorf("%w: the warehouse table's primary key is (%s), the source's (%s)", warehouse.ErrSchemaChanged,
			strings.Join(tx.old.key, ", "), strings.Join(tx.key, ", "))
	}
	return nil
}

// addColumns adds the columns the table does not have yet.
func (tx *Tx) addColumns(ctx context.Context) error {
	add := func(name, typ string) error {
		if _, ok := tx.old.columns[name]; ok {
			return nil
		}
		_, err := tx.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", tx.t.ident(), pgx.Identifier{name}.Sanitize(), typ))
		if err != nil {
			return fmt.Errorf("adding column %q: %w", name, err)
		}
		tx.old.columns[name] = typ
		tx.old.order = append(tx.old.order, name)
		return nil
	}
	for _, c := range tx.cols {
		if err := add(c.name, c.typ); err != nil {
			return err
		}
	}
	if tx.hasSyncedAt {
		return add(SyncedAtColumn, "timestamp with time zone")
	}
	return nil
}

// readCommitted reads, under the table's lock, the row count and schema
// committed with the position; it counts the rows of a table sluice has
// not recorded.
func (tx *Tx) readCommitted(ctx context.Context) error {
	var raw []byte
	err := tx.conn.QueryRow(ctx, `SELECT rows, schema FROM `+tx.t.w.positionsIdent()+` WHERE table_name = $1`, tx.t.name).Scan(&tx.prevRows, &raw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		tx.prevRows = 0
		if tx.old != nil && tx.mode != warehouse.Replace {
			if err := tx.conn.QueryRow(ctx, `SELECT count(*) FROM `+tx.t.ident()).Scan(&tx.prevRows); err != nil {
				return fmt.Errorf("counting the table's rows: %w", err)
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading the table's committed row count: %w", err)
	}
	if tx.old == nil {
		// The table was dropped by hand since: it starts again.
		tx.prevRows = 0
		return nil
	}
	tx.stored, err = decodeSchema(raw)
	return err
}

// resultSchema is the table's schema once the transaction commits: a
// Replace's columns, or the columns recorded before with the
// transaction's added or updated; _sluice_synced_at included.
func (tx *Tx) resultSchema() *records.Schema {
	out := &records.Schema{PrimaryKey: slices.Clone(tx.key)}
	if tx.mode != warehouse.Replace && tx.stored != nil {
		out.Columns = slices.Clone(tx.stored.Columns)
	}
	for _, c := range tx.schema.Columns {
		if i := out.Index(c.Name); i >= 0 {
			out.Columns[i] = c
		} else {
			out.Columns = append(out.Columns, c)
		}
	}
	if tx.hasSyncedAt && out.Index(SyncedAtColumn) < 0 {
		out.Columns = append(out.Columns, records.Column{Name: SyncedAtColumn, Type: syncedAtType, SourceType: "timestamp with time zone", Nullable: true})
	}
	return out
}

// Write copies a batch of the transaction's schema. Cancelling ctx stops
// the COPY and rolls the transaction back.
func (tx *Tx) Write(ctx context.Context, b *records.Batch) error {
	if tx.done {
		return errors.New("write after the transaction ended")
	}
	if len(b.Cols) != len(tx.cols) {
		return fmt.Errorf("writing to %s: the batch has %d columns, the transaction %d", tx.t.qualified(), len(b.Cols), len(tx.cols))
	}
	if b.N == 0 {
		return nil
	}
	var flags []int
	// unchangedFlags lists the batch columns row left unchanged (nil
	// when none), noting them for the commit's fill.
	unchangedFlags := func(row int) []int {
		flags = flags[:0]
		for ci := range b.Cols {
			if u := b.Cols[ci].Unchanged; u != nil && row < len(u) && u[row] {
				flags = append(flags, ci)
				tx.unchanged[ci] = true
			}
		}
		if len(flags) == 0 {
			return nil
		}
		return flags
	}
	cols := make([]int, len(tx.cols))
	for i := range cols {
		cols[i] = i
	}
	var r interface {
		io.Reader
		Copied() int64
	}
	// Values the batch's Parquet types cannot hold come with their exact
	// text forms, which only the text format takes: such (rare) batches
	// are copied in it.
	binary, copySQL := tx.binary, tx.copySQL
	for ci := range b.Cols {
		if binary && b.Cols[ci].HasExact() {
			binary, copySQL = false, tx.textCopySQL
		}
	}
	if binary {
		br := &codec.BinaryRowReader{B: b, Cols: cols, Enc: make([]codec.BinaryEncoder, len(tx.cols))}
		for i, c := range tx.cols {
			br.Enc[i] = c.bin
		}
		switch {
		case tx.mode == warehouse.Merge:
			br.NExtra = 2
			br.Extra = func(out []byte, row int) []byte {
				out = codec.AppendBinaryInt64Field(out, tx.seq)
				tx.seq++
				return codec.AppendBinaryInt4ArrayField(out, unchangedFlags(row))
			}
		case tx.hasSyncedAt:
			micros := tx.syncedAt.UnixMicro()
			br.NExtra = 1
			br.Extra = func(out []byte, _ int) []byte { return codec.AppendBinaryTimestampField(out, micros) }
		}
		r = br
	} else {
		tr := &codec.TextRowReader{B: b, Cols: cols, Enc: make([]codec.TextEncoder, len(tx.cols))}
		for i, c := range tx.cols {
			tr.Enc[i] = c.enc
		}
		switch {
		case tx.mode == warehouse.Merge:
			tr.Extra = func(out []byte, row int) []byte {
				out = append(out, '\t')
				out = strconv.AppendInt(out, tx.seq, 10)
				tx.seq++
				flags := unchangedFlags(row)
				if flags == nil {
					return append(out, '\t', '\\', 'N')
				}
				out = append(out, '\t', '{')
				for k, ci := range flags {
					if k > 0 {
						out = append(out, ',')
					}
					out = strconv.AppendInt(out, int64(ci), 10)
				}
				return append(out, '}')
			}
		case tx.hasSyncedAt:
			tr.Extra = func(out []byte, _ int) []byte { return append(out, tx.syncedText...) }
		}
		r = tr
	}
	if _, err := tx.conn.PgConn().CopyFrom(ctx, r, copySQL); err != nil {
		tx.fail()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			// A cancel closes the connection under the COPY: what the
			// write then reports ("use of closed network connection") is
			// the cancel's doing, and callers tell a cancel by ctx.Err().
			return fmt.Errorf("writing to %s: %w (%w)", tx.t.qualified(), ctxErr, err)
		}
		return classify(fmt.Errorf("writing to %s: %w", tx.t.qualified(), err))
	}
	tx.rows += r.Copied()
	return nil
}

// Commit makes the rows and the position the table's current version in
// one PostgreSQL transaction, and returns the rows the table holds.
// Cancelling ctx before COMMIT completes (a swap waiting for a reader's
// lock, a long upsert) rolls the transaction back.
func (tx *Tx) Commit(ctx context.Context, pos records.Position) (int64, error) {
	if tx.done {
		return 0, errors.New("commit after the transaction ended")
	}
	rows, err := tx.commit(ctx, pos)
	if err != nil {
		tx.fail()
		return 0, classify(fmt.Errorf("committing to %s: %w", tx.t.qualified(), err))
	}
	tx.done = true
	// The transaction ended cleanly (its temporary tables dropped on
	// commit): the connection can serve the next one.
	tx.t.w.releaseConn(tx.conn)
	tx.conn = nil
	tx.t.mu.Lock()
	tx.t.pos, tx.t.committed, tx.t.schema = pos, true, tx.committedSchema
	tx.t.mu.Unlock()
	return rows, nil
}

func (tx *Tx) commit(ctx context.Context, pos records.Position) (int64, error) {
	var rows int64
	switch tx.mode {
	case warehouse.Replace:
		if err := tx.swap(ctx); err != nil {
			return 0, err
		}
		rows = tx.rows
	case warehouse.Append:
		rows = tx.prevRows + tx.rows
	case warehouse.Merge:
		if tx.hist != nil {
			if err := tx.commitHistory(ctx); err != nil {
				return 0, err
			}
			rows = tx.prevRows + tx.rows
			break
		}
		inserted, err := tx.merge(ctx)
		if err != nil {
			return 0, err
		}
		rows = tx.prevRows + inserted
	}
	raw, err := json.Marshal(pos)
	if err != nil {
		return 0, fmt.Errorf("encoding the position: %w", err)
	}
	mode := tx.mode.String()
	if tx.hist != nil {
		mode = "history"
	}
	schema := tx.resultSchema()
	rawSchema, err := json.Marshal(schema)
	if err != nil {
		return 0, fmt.Errorf("encoding the schema: %w", err)
	}
	_, err = tx.conn.Exec(ctx, `INSERT INTO `+tx.t.w.positionsIdent()+` (table_name, position, sync, mode, rows, committed_at, schema)
VALUES ($1, $2, $3, $4, $5, now(), $6)
ON CONFLICT (table_name) DO UPDATE SET position = EXCLUDED.position, sync = EXCLUDED.sync, mode = EXCLUDED.mode,
	rows = EXCLUDED.rows, committed_at = EXCLUDED.committed_at, schema = EXCLUDED.schema`,
		tx.t.name, string(raw), tx.sync, mode, rows, string(rawSchema))
	if err != nil {
		return 0, fmt.Errorf("recording the position: %w", err)
	}
	tx.committedSchema = schema
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return 0, err
		}
	}
	if err := warehouse.CheckCommitGuard(ctx); err != nil {
		return 0, err
	}
	if _, err := tx.conn.Exec(ctx, "COMMIT"); err != nil {
		return 0, err
	}
	return rows, nil
}

// swap makes the new table of a Replace the table: its key is built before
// the old table is dropped, so that readers of the old table wait only for
// the drop and the renames.
func (tx *Tx) swap(ctx context.Context) error {
	t := tx.t
	newPkey := derivedName(tx.newName, "_pkey")
	if tx.createKey() {
		if _, err := tx.conn.Exec(ctx, tx.keySQL(tx.target, newPkey)); err != nil {
			return fmt.Errorf("creating the primary key: %w", err)
		}
	}
	// Another session may have created the table since Begin looked.
	old, err := tx.lookup(ctx, t.name)
	if err != nil {
		return err
	}
	var renames []string
	if old != nil {
		if renames, err = tx.carryOver(ctx, old.oid); err != nil {
			return err
		}
		drop := "DROP TABLE " + t.ident()
		if t.w.dropCascade {
			drop += " CASCADE"
		} else if err := tx.checkViews(ctx, old.oid); err != nil {
			return err
		}
		if _, err := tx.conn.Exec(ctx, drop); err != nil {
			return fmt.Errorf("dropping the previous version: %w", err)
		}
	}
	if _, err := tx.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", tx.target, pgx.Identifier{t.name}.Sanitize())); err != nil {
		return fmt.Errorf("renaming the new table: %w", err)
	}
	if tx.createKey() {
		_, err := tx.conn.Exec(ctx, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", pgx.Identifier{t.w.schema, newPkey}.Sanitize(), pgx.Identifier{derivedName(t.name, "_pkey")}.Sanitize()))
		if err != nil {
			return fmt.Errorf("renaming the primary key: %w", err)
		}
	}
	for _, q := range renames {
		if _, err := tx.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("renaming an index carried over: %w", err)
		}
	}
	return nil
}

// carryOver gives the new table of a Replace what users added to the old
// one, which would otherwise go with it: privileges on the table and on
// the columns both have, comments, and indexes (but the primary key,
// which the new table has, and indexes of constraints). It runs before the
// old table is dropped, so that readers wait only for the drop; indexes
// are built under temporary names, and the returned statements give them
// their names back once the old table is gone. An index of a column the
// new table lacks is not carried over.
func (tx *Tx) carryOver(ctx context.Context, oldOID uint32) ([]string, error) {
	var cols []string
	for _, c := range tx.cols {
		cols = append(cols, c.name)
	}
	if tx.hasSyncedAt {
		cols = append(cols, SyncedAtColumn)
	}
	rows, err := tx.conn.Query(ctx, `
SELECT format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $2::text, g.name,
	CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
FROM pg_class c CROSS JOIN aclexplode(c.relacl) a
CROSS JOIN LATERAL (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) g(name)
WHERE c.oid = $1 AND a.grantee <> c.relowner
UNION ALL
SELECT format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type, at.attname, $2::text, g.name,
	CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
FROM pg_attribute at CROSS JOIN aclexplode(at.attacl) a
CROSS JOIN LATERAL (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) g(name)
WHERE at.attrelid = $1 AND at.attnum > 0 AND NOT at.attisdropped AND at.attname = ANY($3)
UNION ALL
SELECT format('COMMENT ON TABLE %s IS %L', $2::text, d.description)
FROM pg_description d WHERE d.classoid = 'pg_class'::regclass AND d.objoid = $1 AND d.objsubid = 0
UNION ALL
SELECT format('COMMENT ON COLUMN %s.%I IS %L', $2::text, at.attname, d.description)
FROM pg_description d JOIN pg_attribute at ON at.attrelid = d.objoid AND at.attnum = d.objsubid
WHERE d.classoid = 'pg_class'::regclass AND d.objoid = $1 AND d.objsubid > 0 AND at.attname = ANY($3)`,
		oldOID, tx.target, cols)
	if err != nil {
		return nil, fmt.Errorf("reading the previous version's privileges and comments: %w", err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("reading the previous version's privileges and comments: %w", err)
	}
	for _, q := range stmts {
		if _, err := tx.conn.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("carrying over %q: %w", q, err)
		}
	}

	type index struct{ name, quoted, table, def string }
	rows, err = tx.conn.Query(ctx, `
SELECT ci.relname, quote_ident(ci.relname), quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ci ON ci.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = $1 AND NOT i.indisprimary
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY ci.relname`, oldOID)
	if err != nil {
		return nil, fmt.Errorf("reading the previous version's indexes: %w", err)
	}
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var x index
		err := r.Scan(&x.name, &x.quoted, &x.table, &x.def)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the previous version's indexes: %w", err)
	}
	var renames []string
	for k, x := range indexes {
		tmp := derivedName(tx.newName, fmt.Sprintf("_idx%d", k))
		// pg_get_indexdef prints "CREATE [UNIQUE] INDEX name ON
		// schema.table USING ...", names quoted as quote_ident does.
		from := " INDEX " + x.quoted + " ON " + x.table + " USING "
		if !strings.Contains(x.def, from) {
			return nil, fmt.Errorf("carrying over index %q: cannot read its definition %q", x.name, x.def)
		}
		def := strings.Replace(x.def, from, " INDEX "+pgx.Identifier{tmp}.Sanitize()+" ON "+tx.target+" USING ", 1)
		if _, err := tx.conn.Exec(ctx, "SAVEPOINT carry_index"); err != nil {
			return nil, err
		}
		if _, err := tx.conn.Exec(ctx, def); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42703" {
				// A column it needs is gone from the source.
				if _, err := tx.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT carry_index"); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("carrying over index %q (%s): %w", x.name, x.def, err)
		}
		if _, err := tx.conn.Exec(ctx, "RELEASE SAVEPOINT carry_index"); err != nil {
			return nil, err
		}
		renames = append(renames, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", pgx.Identifier{tx.t.w.schema, tmp}.Sanitize(), pgx.Identifier{x.name}.Sanitize()))
	}
	return renames, nil
}

// checkViews fails when views depend on the table a Replace drops.
func (tx *Tx) checkViews(ctx context.Context, oid uint32) error {
	views, err := tx.dependentViews(ctx, oid)
	if err != nil || len(views) == 0 {
		return err
	}
	return fmt.Errorf("replacing the table would drop the views that depend on it: %s; drop them (and create them again after the sync), or set drop_cascade = true in the warehouse block to let sluice drop them",
		strings.Join(views, ", "))
}

// dependentViews names the views and materialized views built on a table.
func (tx *Tx) dependentViews(ctx context.Context, oid uint32) ([]string, error) {
	rows, err := tx.conn.Query(ctx, `
SELECT DISTINCT format('%I.%I', vn.nspname, v.relname)
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_namespace vn ON vn.oid = v.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = $1 AND v.oid <> $1
ORDER BY 1`, oid)
	if err != nil {
		return nil, fmt.Errorf("looking up the views on the table: %w", err)
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking up the views on the table: %w", err)
	}
	return views, nil
}

// merge upserts the staged rows: per key the last one, its unchanged
// values taken from the key's previous staged row that carries them, else
// from the stored row. It returns how many keys were new.
func (tx *Tx) merge(ctx context.Context) (int64, error) {
	if tx.rows == 0 {
		return 0, nil
	}
	if err := tx.fillUnchanged(ctx); err != nil {
		return 0, err
	}
	stage := pgx.Identifier{stageTable}.Sanitize()
	keyS := quoteList(tx.key, "s.")
	names := make([]string, len(tx.cols))
	isKey := map[string]bool{}
	for _, k := range tx.key {
		isKey[k] = true
	}
	var set []string
	incoming := map[string]bool{}
	for i, c := range tx.cols {
		names[i] = c.name
		incoming[c.name] = true
		if !isKey[c.name] {
			q := pgx.Identifier{c.name}.Sanitize()
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	// The incoming row replaces the stored one: columns it does not carry
	// (dropped at the source) become NULL, as in a new row.
	for _, n := range tx.old.order {
		if !incoming[n] && n != SyncedAtColumn {
			set = append(set, pgx.Identifier{n}.Sanitize()+" = NULL")
		}
	}
	insertCols := quoteList(names, "")
	selectCols := quoteList(names, "s.")
	if tx.hasSyncedAt {
		q := pgx.Identifier{SyncedAtColumn}.Sanitize()
		insertCols += ", " + q
		selectCols += ", $1::timestamptz"
		set = append(set, q+" = EXCLUDED."+q)
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	q := fmt.Sprintf(`WITH up AS (
	INSERT INTO %s AS t (%s)
	SELECT DISTINCT ON (%s) %s FROM %s s ORDER BY %s, s.%s DESC
	ON CONFLICT (%s) %s
	RETURNING (xmax = 0) AS inserted)
SELECT count(*) FILTER (WHERE inserted) FROM up`,
		tx.t.ident(), insertCols, keyS, selectCols, stage, keyS, stageRow, quoteList(tx.key, ""), conflict)
	args := []any{}
	if tx.hasSyncedAt {
		args = append(args, tx.syncedAt)
	}
	var inserted int64
	if err := tx.conn.QueryRow(ctx, q, args...).Scan(&inserted); err != nil {
		return 0, fmt.Errorf("merging the staged rows: %w", err)
	}
	return inserted, nil
}

// Abort rolls the transaction back; the table keeps its previous version.
// Closing the connection is what rolls back, so ctx is not needed.
func (tx *Tx) Abort(context.Context) error {
	if tx.done {
		return nil
	}
	tx.fail()
	return nil
}

// fail ends the transaction after an error: closing the connection rolls
// it back (and frees the server of a COPY in progress).
func (tx *Tx) fail() {
	tx.done = true
	tx.close()
}

func (tx *Tx) close() {
	if tx.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tx.conn.Close(ctx)
	tx.conn = nil
}

// lockKey is the advisory lock of a table: a 64-bit hash of its schema and
// name.
func lockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("sluice warehouse\x00" + schema + "\x00" + name))
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fillUnchanged sets the staged values a change left unchanged: from the
// key's previous staged row that carries them, else from the stored row
// (the current version, in a history table).
func (tx *Tx) fillUnchanged(ctx context.Context) error {
	if len(tx.unchanged) == 0 {
		return nil
	}
	stage := pgx.Identifier{stageTable}.Sanitize()
	keyS, keyP, keyT := quoteList(tx.key, "s."), quoteList(tx.key, "p."), quoteList(tx.key, "t.")
	if _, err := tx.conn.Exec(ctx, fmt.Sprintf("CREATE INDEX ON %s (%s, %s)", stage, quoteList(tx.key, ""), stageRow)); err != nil {
		return fmt.Errorf("indexing the staged rows: %w", err)
	}
	cis := make([]int, 0, len(tx.unchanged))
	for ci := range tx.unchanged {
		cis = append(cis, ci)
	}
	slices.Sort(cis)
	for _, ci := range cis {
		col := pgx.Identifier{tx.cols[ci].name}.Sanitize()
		earlier := fmt.Sprintf("FROM %s p WHERE (%s) = (%s) AND p.%s < s.%s AND NOT coalesce($1 = ANY(p.%s), false)",
			stage, keyP, keyS, stageRow, stageRow, stageUnchanged)
		q := fmt.Sprintf(`UPDATE %s s SET %s = (SELECT p.%s %s ORDER BY p.%s DESC LIMIT 1), %s = array_remove(s.%s, $1)
WHERE $1 = ANY(s.%s) AND EXISTS (SELECT %s)`, stage, col, col, earlier, stageRow, stageUnchanged, stageUnchanged, stageUnchanged, earlier)
		if _, err := tx.conn.Exec(ctx, q, ci); err != nil {
			return fmt.Errorf("filling unchanged values of %q from earlier changes: %w", tx.cols[ci].name, err)
		}
		current := ""
		if tx.hist != nil {
			current = " AND t." + pgx.Identifier{ValidToColumn}.Sanitize() + " IS NULL"
		}
		q = fmt.Sprintf(`UPDATE %s s SET %s = t.%s, %s = array_remove(s.%s, $1) FROM %s t
WHERE $1 = ANY(s.%s) AND (%s) = (%s)%s`, stage, col, col, stageUnchanged, stageUnchanged, tx.t.ident(), stageUnchanged, keyT, keyS, current)
		if _, err := tx.conn.Exec(ctx, q, ci); err != nil {
			return fmt.Errorf("filling unchanged values of %q from the table: %w", tx.cols[ci].name, err)
		}
	}
	return nil
}
