package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/providers"
)

// Batched reads (batch_size, req.CommitRows > 0) order the rows by the
// cursor and then the key, read them through a server-side cursor
// CommitRows rows at a time, and after each such fetch hand the runner
// the position of the last row read (req.Commit), for it to commit what
// it has received. That position is the last row's cursor value
// (Position.Cursor; for xmin reads the row's xmin) and key
// (Position.AfterKey), in PostgreSQL's text forms, and the next read
// continues exactly after it:
//
//	WHERE (c, k1, k2) > ($1, $2, $3) ORDER BY c, k1, k2
//
// so that rows sharing a cursor value across a commit are neither read
// twice nor skipped. A read resumes from such a position whether or not
// it is batched itself (batch_size may have been removed meanwhile), and
// its final position is a plain one again (Cursor and BoundaryKeys, or
// Xmin), which unbatched reads also give: batching changes where a read
// may stop, not what the next sync starts from.

// needsKey refuses a batched or resumed read of a table without a key:
// the rows could not be told apart at a boundary.
func needsKey(info *tableInfo, req providers.ReadRequest) error {
	if len(info.keyIdx) > 0 {
		return nil
	}
	if len(req.From.AfterKey) > 0 {
		return fmt.Errorf("reading %s: the committed position continues after a key, but the table has no primary key now; resync the table", info.name)
	}
	return fmt.Errorf("reading %s: batch_size needs a primary key to resume from, and the table has none: set primary_key or remove batch_size", info.name)
}

// keyList is the key columns, quoted and comma-separated, in key order.
func (info *tableInfo) keyList() string {
	names := make([]string, len(info.keyIdx))
	for i, k := range info.keyIdx {
		names[i] = pgx.Identifier{info.cols[k].name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// afterKeyArgs are the parameters $first.. that hold a position's key (its
// text forms, typed as the key columns), and their placeholders.
func (info *tableInfo) afterKeyArgs(key []string, first int) (placeholders string, args [][]byte, oids []uint32, err error) {
	if len(key) != len(info.keyIdx) {
		return "", nil, nil, fmt.Errorf("reading %s: the committed position holds a key of %d columns, the table's key has %d; resync the table", info.name, len(key), len(info.keyIdx))
	}
	ph := make([]string, len(key))
	for i, k := range info.keyIdx {
		ph[i] = "$" + strconv.Itoa(first+i)
		args = append(args, []byte(key[i]))
		oids = append(oids, info.cols[k].typ.OID)
	}
	return strings.Join(ph, ", "), args, oids, nil
}

// lastRow keeps the values (as read, binary) of some columns of the last
// row a read accepted or skipped, for the position at a commit.
type lastRow struct {
	idx  []int
	vals [][]byte
}

func newLastRow(idx []int) *lastRow {
	return &lastRow{idx: idx, vals: make([][]byte, len(idx))}
}

func (l *lastRow) keep(vals [][]byte) {
	for j, i := range l.idx {
		l.vals[j] = append(l.vals[j][:0], vals[i]...)
	}
}

// textForms returns the text forms of values read in binary: what a
// position records, and what a later read passes back as parameters of the
// columns' types.
func (rt *readTx) textForms(ctx context.Context, idx []int, vals [][]byte) ([]string, error) {
	var sb strings.Builder
	sb.WriteString("SELECT ")
	oids := make([]uint32, len(idx))
	formats := make([]int16, len(idx))
	for j, i := range idx {
		if j > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "pg_catalog.format('%%s', $%d)", j+1)
		oids[j], formats[j] = rt.info.cols[i].resultOID, 1
	}
	out := make([]string, len(idx))
	rr := rt.conn.PgConn().ExecParams(ctx, sb.String(), vals, oids, formats, nil)
	for rr.NextRow() {
		for j, v := range rr.Values() {
			out[j] = string(v)
		}
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("reading %s: the text form of the position: %w", rt.info.name, err)
	}
	return out, nil
}

// keysAt returns the encoded keys (BoundaryKeys) of the rows whose cursor
// equals text, in the read's snapshot: where a read that committed part
// of a group of equal values ends, the group's keys from every commit.
func (rt *readTx) keysAt(ctx context.Context, cc readCol, cursor, text string) ([]string, error) {
	info := rt.info
	idx := info.keyOrRow()
	sql := "SELECT "
	for j, i := range idx {
		if j > 0 {
			sql += ", "
		}
		sql += info.cols[i].expr
	}
	sql += " FROM " + info.from() + " WHERE " + pgx.Identifier{cursor}.Sanitize() + " = $1"
	var (
		keys rawKeys
		key  []byte
		vals = make([][]byte, len(info.cols))
	)
	rr := rt.conn.PgConn().ExecParams(ctx, sql, [][]byte{[]byte(text)}, []uint32{cc.typ.OID}, nil, binaryResults)
	for rr.NextRow() {
		for j, i := range idx {
			vals[i] = rr.Values()[j]
		}
		key = appendRawKey(key[:0], vals, idx)
		keys.add(key)
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("reading %s: the keys of the rows at %s = %q: %w", info.name, cursor, text, err)
	}
	return keys.hashes(), nil
}

// rowXmin returns the xmin of the row with the given key (text forms),
// as the read's snapshot sees it.
func (rt *readTx) rowXmin(ctx context.Context, key []string) (string, error) {
	info := rt.info
	ph, args, oids, err := info.afterKeyArgs(key, 1)
	if err != nil {
		return "", err
	}
	sql := "SELECT xmin::text FROM " + info.from() + " WHERE (" + info.keyList() + ") = (" + ph + ")"
	var xmin string
	rr := rt.conn.PgConn().ExecParams(ctx, sql, args, oids, nil, nil)
	for rr.NextRow() {
		xmin = string(rr.Values()[0])
	}
	if _, err := rr.Close(); err != nil {
		return "", fmt.Errorf("reading %s: the xmin of the last row: %w", info.name, err)
	}
	if xmin == "" {
		return "", fmt.Errorf("reading %s: the last row read is gone from the read's snapshot", info.name)
	}
	return xmin, nil
}

// fetchRows is readRows through a server-side cursor, n rows per fetch.
// After each fetch that returned n rows, the sink is flushed and boundary
// called (and the read goes on while it returns nil); a shorter fetch is
// the end, whose position the caller gives.
func fetchRows(ctx context.Context, conn *pgx.Conn, sql string, args [][]byte, oids []uint32, info *tableInfo, sink *batchSink, keep func([][]byte) (bool, error), n int, boundary func() error) error {
	if _, err := conn.PgConn().ExecParams(ctx, "DECLARE sluice_batched NO SCROLL CURSOR FOR "+sql, args, oids, nil, nil).Close(); err != nil {
		return fmt.Errorf("reading %s: %w", info.name, err)
	}
	fetch := "FETCH FORWARD " + strconv.Itoa(n) + " FROM sluice_batched"
	for {
		got := 0
		err := readRows(ctx, conn, fetch, nil, nil, info, sink, func(vals [][]byte) (bool, error) {
			got++
			return keep(vals)
		})
		if err != nil {
			return err
		}
		if got < n {
			break
		}
		if err := sink.flush(); err != nil {
			return err
		}
		if err := boundary(); err != nil {
			return err
		}
	}
	if _, err := conn.PgConn().Exec(ctx, "CLOSE sluice_batched").ReadAll(); err != nil {
		return fmt.Errorf("reading %s: %w", info.name, err)
	}
	return nil
}
