package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
	"github.com/sluice-dev/sluice/state"
	"github.com/sluice-dev/sluice/warehouse"
)

// CDC: the cdc tables of a source are synced together, by one engine per
// source that snapshots the tables that need it and then streams the
// source's replication slot into their warehouse tables.
//
// # How CDC starts
//
// `sluice apply` creates the publication and the slot (with
// pg_create_logical_replication_slot) and records them. A slot created
// that way exports no snapshot, so the runner's first sync of a source
// whose cdc tables have no committed snapshot recreates it: the ChangeStream
// drops the still-unused slot and creates it again with an exported
// snapshot (CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT), keeping the
// exporting connection open while every table is read under that snapshot
// (ReadRequest.Snapshot; a table's parallel readers all import it). Each
// table's snapshot commits with Position{LSN: the slot's consistent point,
// SnapshotDone: true}; then the snapshot is released and the stream starts
// at the consistent point, so snapshot + stream is exactly each table's
// history (DESIGN invariant 2).
//
// A table that needs a snapshot while others of its source already stream
// (a cdc table added later, a resync, a new column under full_resync, a
// column whose type changed) is snapshotted under a TEMPORARY slot's
// exported snapshot (the main slot is left as it is; the server drops the
// temporary slot when its connection closes) and commits the temporary
// slot's consistent point as its LSN: the main stream, which restarts from
// the lowest committed LSN of the source's tables, skips that table's
// changes at or before it.
//
// # Commit protocol
//
// Changes are committed to the warehouse at transaction boundaries, every
// CDCFlushChanges changes or CDCFlushInterval, whichever comes first; each
// warehouse table's commit carries its position (the last transaction
// wholly applied), and the slot is confirmed only up to the transaction
// every table has committed (DESIGN invariant 1). A transaction too large
// to hold in memory is committed in parts: the position then also records
// how many of that transaction's changes of the table are applied, so that
// a restart skips exactly those. A restart streams from the lowest position
// of the source's tables, and each table skips what it already holds:
// nothing is lost, nothing is applied twice.

// Metadata columns of cdc warehouse tables (SPEC §4). The stream's rows
// carry the first three.
const (
	colOp        = warehouse.HistoryOpColumn
	colLSN       = "_sluice_lsn"
	colCDCTime   = "_sluice_cdc_timestamp"
	colDeleted   = "_sluice_deleted"
	colDeletedAt = "_sluice_deleted_at"
	colValidFrom = warehouse.ValidFromColumn
	colValidTo   = warehouse.ValidToColumn
)

var (
	typString = records.ParquetType{Physical: records.PhysicalByteArray, Logical: records.LogicalString, Name: "STRING"}
	typInt64  = records.ParquetType{Physical: records.PhysicalInt64, Name: "INT64"}
	typBool   = records.ParquetType{Physical: records.PhysicalBoolean, Name: "BOOLEAN"}
	typTime   = records.ParquetType{Physical: records.PhysicalInt64, Logical: records.LogicalTimestamp, AdjustedToUTC: true, Name: "TIMESTAMP(MICROS,UTC)"}
)

// Keys of records.Position.Extra for a transaction committed in parts.
const (
	extraPartialLSN     = "cdc_partial_lsn"
	extraPartialChanges = "cdc_partial_changes"
)

// errResnapshot asks the engine to snapshot a table again: its schema
// changed in a way the warehouse table cannot follow.
type errResnapshot struct {
	table  string
	reason string
}

func (e *errResnapshot) Error() string {
	return fmt.Sprintf("%s: %s: snapshotting it again", e.table, e.reason)
}

// cdcTable is one cdc table of a source and its warehouse tables.
type cdcTable struct {
	j   job
	key string // config.QualifiedName: the key of StreamRequest.Tables and Transaction.Changes
	req providers.ReadRequest
	// outs are the consolidated table and/or the history table, in that
	// order.
	outs []*cdcOutput
	// resnapshot is set when the stream found the table must be read again.
	resnapshot bool
	// noHistory is set while the table starts without its history
	// (historical_load = false): snapshotTable reads no rows.
	noHistory bool
	failed    bool
	eng       *cdcEngine
	// hash hashes the table's hash columns (nil: none).
	hash *hasher
	// ren maps the source's schemas to warehouse column names.
	ren *renamer
}

// cdcOutput is one warehouse table of a cdc table, with its committed
// position.
type cdcOutput struct {
	name    string
	history bool
	wt      warehouse.CDCTable
	pos     records.Position
	// pc reads and writes the stream's positions.
	pc providers.PositionCodec
	// lsn is pos.LSN; partLSN and partN, when partLSN is set, say that the
	// first partN changes of the table in the transaction committed at
	// partLSN are applied too.
	lsn     providers.StreamPosition
	partLSN providers.StreamPosition
	partN   int64
}

func (o *cdcOutput) setPosition(pos records.Position) error {
	lsn, err := o.pc.DecodePosition(pos.LSN)
	if err != nil {
		return fmt.Errorf("warehouse table %s: committed LSN: %w", o.name, err)
	}
	o.pos, o.lsn, o.partLSN, o.partN = pos, lsn, providers.StreamPosition{}, 0
	if s := pos.Extra[extraPartialLSN]; s != "" {
		if o.partLSN, err = o.pc.DecodePosition(s); err != nil {
			return fmt.Errorf("warehouse table %s: committed partial LSN: %w", o.name, err)
		}
		if o.partN, err = strconv.ParseInt(pos.Extra[extraPartialChanges], 10, 64); err != nil {
			return fmt.Errorf("warehouse table %s: committed partial changes: %w", o.name, err)
		}
	}
	return nil
}

// behind reports whether o's position is before p's.
func (o *cdcOutput) behind(p *cdcOutput) bool {
	if c := o.lsn.Compare(p.lsn); c != 0 {
		return c < 0
	}
	oa, pa := o.lsn.Before(o.partLSN), p.lsn.Before(p.partLSN)
	switch {
	case !oa:
		return pa
	case !pa:
		return false
	case o.partLSN != p.partLSN:
		return o.partLSN.Before(p.partLSN)
	}
	return o.partN < p.partN
}

// cdcPosition is the position of a warehouse table that applied every
// transaction up to lsn and, when partLSN > lsn, the first partN changes
// of the transaction committed at partLSN.
func cdcPosition(pc providers.PositionCodec, lsn, partLSN providers.StreamPosition, partN int64) records.Position {
	pos := records.Position{LSN: pc.EncodePosition(lsn), SnapshotDone: true}
	if lsn.Before(partLSN) && partN > 0 {
		pos.Extra = map[string]string{extraPartialLSN: pc.EncodePosition(partLSN), extraPartialChanges: strconv.FormatInt(partN, 10)}
	}
	return pos
}

// cdcDeps are what a source's cdc engine works with: the source's
// provider (its ChangeStream and SnapshotReader), the warehouse, the status
// recorder its tables' records go through, metrics, logger, clock and the
// read and commit settings.
type cdcDeps struct {
	openSource func(ctx context.Context, src *config.Source) (providers.Source, error)
	warehouse  warehouse.Warehouse
	status     statusRecorder
	metrics    *Metrics
	// logger is the runner's logger; the engine's log adds its source.
	logger hclog.Logger
	now    func() time.Time
	// progressOut is where long snapshots report their progress (nil:
	// nowhere).
	progressOut io.Writer
	// batchRows and parallel are passed to the readers; flushChanges,
	// flushInterval and flushBytes say when streamed changes are
	// committed (Options.CDCFlush*).
	batchRows, parallel int
	flushChanges        int
	flushInterval       time.Duration
	flushBytes          int64
	// maint maintains the tables after their commits (maintain.go).
	maint *maintainer
}

// cdcEngine syncs the cdc tables of one source.
type cdcEngine struct {
	cdcDeps
	src    *config.Source
	rs     *state.Source
	addr   string
	log    hclog.Logger
	tables []*cdcTable

	prov providers.Source
	cs   providers.ChangeStream
	sr   providers.SnapshotReader

	// mu guards sink, the sink of the stream under way (nil while the
	// engine snapshots or starts): sync requests read how far it got
	// (progress).
	mu   sync.Mutex
	sink *cdcSink
}

// cdcGroups groups the enabled cdc tables of jobs by source, in a stable
// order.
func cdcGroups(jobs []job) map[string][]job {
	out := map[string][]job{}
	for _, j := range jobs {
		if config.SyncType(j.table.Sync) == config.SyncCDC && j.table.Enabled {
			addr := j.src.Address()
			out[addr] = append(out[addr], j)
		}
	}
	return out
}

// newCDCEngine returns the engine of jobs, the cdc tables of one source.
func newCDCEngine(d cdcDeps, jobs []job) *cdcEngine {
	e := &cdcEngine{cdcDeps: d, src: jobs[0].src, rs: jobs[0].rs, addr: jobs[0].src.Address()}
	e.log = d.logger.With("source", e.addr)
	for _, j := range jobs {
		t := j.table
		e.tables = append(e.tables, &cdcTable{
			j:    j,
			eng:  e,
			hash: jobHasher(j),
			ren:  newRenamer(t.Rename),
			key:  config.QualifiedName(t.Schema, t.Table),
			req: providers.ReadRequest{
				Schema: t.Schema, Table: t.Table, Columns: t.Columns, PrimaryKey: t.PrimaryKey,
				BatchRows: d.batchRows, Parallel: d.parallel,
			},
		})
	}
	return e
}

// open connects to the source and opens the warehouse tables.
func (e *cdcEngine) open(ctx context.Context) error {
	if e.src.Postgres == nil {
		return fmt.Errorf("%s: cdc needs a PostgreSQL source", e.addr)
	}
	prov, err := e.openSource(ctx, e.src)
	if err != nil {
		return err
	}
	cs, ok1 := prov.(providers.ChangeStream)
	sr, ok2 := prov.(providers.SnapshotReader)
	if !ok1 || !ok2 {
		prov.Close()
		return fmt.Errorf("%s sources cannot stream changes", e.src.Type)
	}
	e.prov, e.cs, e.sr = prov, cs, sr
	for _, t := range e.tables {
		t.outs = nil
		out := t.j.table.CDCOutput
		if out == "" {
			out = "consolidated"
		}
		type output struct {
			name    string
			history bool
		}
		var outs []output
		if out == "consolidated" || out == "both" {
			outs = append(outs, output{t.j.table.WarehouseTable, false})
		}
		if out == "history" || out == "both" {
			outs = append(outs, output{t.j.table.HistoryTable, true})
		}
		for _, ot := range outs {
			name := ot.name
			wt, err := e.warehouse.Table(ctx, name)
			if err != nil {
				return err
			}
			cwt, ok := wt.(warehouse.CDCTable)
			if !ok {
				return fmt.Errorf("the %s warehouse cannot hold cdc tables yet: sync this table another way (full_refresh, append) or into another warehouse backend", warehouseKind(e.warehouse))
			}
			cur := e.status.current(t.j)
			if err := renameInPlace(ctx, wt, t.j.table, name, resyncDue(t.j.table, &cur), e.log); err != nil {
				return err
			}
			o := &cdcOutput{name: name, history: ot.history, wt: cwt, pc: cs}
			pos, _ := wt.Position()
			if err := o.setPosition(pos); err != nil {
				return err
			}
			t.outs = append(t.outs, o)
		}
	}
	return nil
}

func (e *cdcEngine) close() {
	if e.prov != nil {
		e.prov.Close()
		e.prov = nil
	}
}

// live are the tables not failed.
func (e *cdcEngine) live() []*cdcTable {
	var out []*cdcTable
	for _, t := range e.tables {
		if !t.failed {
			out = append(out, t)
		}
	}
	return out
}

// needsSnapshot reports why a table must be (re)read, or "".
func (e *cdcEngine) needsSnapshot(t *cdcTable) string {
	if t.resnapshot {
		return "its schema changed"
	}
	for _, o := range t.outs {
		if !o.pos.SnapshotDone {
			return "no snapshot committed yet"
		}
	}
	if cur := e.status.current(t.j); resyncDue(t.j.table, &cur) {
		return "a resync was requested"
	}
	// A slot created (by apply) after the table's position cannot give the
	// changes in between.
	if slot := e.rs.Resources.Slot; slot != nil && slot.CreatedLSN != "" {
		if created, err := e.cs.DecodePosition(slot.CreatedLSN); err == nil {
			for _, o := range t.outs {
				if o.lsn.Before(created) {
					return "the replication slot was created after its last commit"
				}
			}
		}
	}
	return ""
}

// run syncs the source's cdc tables: snapshots where needed, then the
// stream; with once, up to what was committed when it started.
func (e *cdcEngine) run(ctx context.Context, once bool) error {
	if err := e.open(ctx); err != nil {
		e.failAll(err)
		return err
	}
	defer e.close()
	var stop string
	if once {
		cur, ok := e.prov.(providers.WALPositioner)
		if !ok {
			err := fmt.Errorf("%s sources cannot tell their WAL position", e.src.Type)
			e.failAll(err)
			return err
		}
		var err error
		if stop, err = cur.CurrentLSN(ctx); err != nil {
			e.failAll(err)
			return err
		}
	}
	e.failMissing(ctx)
	for {
		if err := e.snapshotPending(ctx); err != nil {
			e.failAll(err)
			return err
		}
		if len(e.live()) == 0 {
			return nil
		}
		err := e.stream(ctx, stop, once)
		var rs *errResnapshot
		if errors.As(err, &rs) {
			e.log.Warn("snapshotting a table again", "table", rs.table, "reason", rs.reason)
			continue
		}
		if err != nil && ctx.Err() == nil {
			e.failAll(err)
		}
		return err
	}
}

// failMissing fails the tables dropped at the source: the stream brings
// nothing for them, which would pass for a sync with no changes.
func (e *cdcEngine) failMissing(ctx context.Context) {
	tc, ok := e.prov.(providers.TableChecker)
	if !ok {
		return
	}
	live := e.live()
	reqs := make([]providers.ReadRequest, len(live))
	for i, t := range live {
		reqs[i] = t.req
	}
	// An error here is the connection's; the stream reports it.
	errs, err := tc.MissingTables(ctx, reqs)
	if err != nil {
		return
	}
	for i, t := range live {
		if errs[i] != nil {
			t.failed = true
			e.failed(ctx, t.j, errs[i])
		}
	}
}

// failAll records err as the failure of every live table.
func (e *cdcEngine) failAll(err error) {
	for _, t := range e.live() {
		e.failed(context.Background(), t.j, err)
	}
}

// snapshotPending snapshots the tables that need it: all of them under the
// main slot's exported snapshot when none has a usable position, else under
// a temporary slot's. A table whose read fails is marked failed; the others
// go on.
func (e *cdcEngine) snapshotPending(ctx context.Context) error {
	live := e.live()
	var need, fresh []*cdcTable
	for _, t := range live {
		t.noHistory = false
		if why := e.needsSnapshot(t); why != "" {
			cur := e.status.current(t.j)
			if !t.j.table.LoadsHistory(resyncDue(t.j.table, &cur)) {
				e.log.Info("starting without history (historical_load = false)", "table", t.j.addr, "reason", why)
				t.noHistory = true
				fresh = append(fresh, t)
				continue
			}
			e.log.Info("snapshot needed", "table", t.j.addr, "reason", why)
			need = append(need, t)
		}
	}
	if len(need) == 0 && len(fresh) == 0 {
		return nil
	}
	at := e.now().UTC().Truncate(time.Microsecond)
	var snap providers.ExportedSnapshot
	release := func() error { return nil }
	var err error
	// The main slot is created again with an exported snapshot only when
	// every table is snapshotted from it; tables without historical load
	// keep the changes it holds (everything since apply, for a slot not
	// used yet), so the others are then read under a temporary slot's.
	switch {
	case len(need) > 0 && len(need) == len(live):
		snap, release, err = e.cs.CreateSnapshotSlot(ctx, e.src.Postgres.CDC.Slot)
	case len(need) > 0:
		snap, release, err = e.temporarySnapshot(ctx)
	}
	if err != nil {
		return fmt.Errorf("creating the snapshot the cdc tables start from: %w", err)
	}
	defer release()
	if len(need) > 0 {
		e.log.Info("snapshot exported", "consistent_lsn", snap.ConsistentLSN, "tables", len(need))
	}
	fail := func(t *cdcTable, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.failed = true
		e.failed(ctx, t.j, err)
		return nil
	}
	for _, t := range need {
		if err := e.snapshotTable(ctx, t, snap, at); err != nil {
			if err := fail(t, err); err != nil {
				return err
			}
		}
	}
	for _, t := range fresh {
		var start providers.ExportedSnapshot
		if start.ConsistentLSN, err = e.startWithoutHistory(ctx, t); err != nil {
			return err
		}
		if err := e.snapshotTable(ctx, t, start, at); err != nil {
			if err := fail(t, err); err != nil {
				return err
			}
		}
	}
	return release()
}

// startWithoutHistory is the position a cdc table without historical
// load starts from: for a
// table never committed, the slot's confirmed position (the changes the
// slot still holds, everything since apply for a slot not used yet); for
// one read again (a resync, a schema change, a slot created after its
// last commit), the server's current WAL position: the changes committed
// from now on.
func (e *cdcEngine) startWithoutHistory(ctx context.Context, t *cdcTable) (string, error) {
	committed := false
	for _, o := range t.outs {
		committed = committed || o.pos.SnapshotDone
	}
	if committed {
		cur, ok := e.prov.(providers.WALPositioner)
		if !ok {
			return "", fmt.Errorf("%s sources cannot tell their WAL position", e.src.Type)
		}
		return cur.CurrentLSN(ctx)
	}
	slot := e.src.Postgres.CDC.Slot
	if sw, ok := e.prov.(providers.SlotWatcher); ok {
		st, err := sw.SlotStatus(ctx, slot)
		if err != nil {
			return "", err
		}
		if st == nil {
			return "", fmt.Errorf("%w: replication slot %s does not exist; run `sluice apply` to create it", providers.ErrSlotLost, slot)
		}
		if st.ConfirmedFlushLSN != "" {
			return st.ConfirmedFlushLSN, nil
		}
	}
	if rs := e.rs.Resources.Slot; rs != nil && rs.CreatedLSN != "" {
		return rs.CreatedLSN, nil
	}
	return "", fmt.Errorf("replication slot %s: its position is not known; run `sluice apply`", slot)
}

// temporarySnapshot exports a snapshot with a temporary slot of the
// source's, for tables added to a source that is already streaming.
func (e *cdcEngine) temporarySnapshot(ctx context.Context) (providers.ExportedSnapshot, func() error, error) {
	ts, ok := e.prov.(providers.TemporarySnapshotter)
	if !ok {
		return providers.ExportedSnapshot{}, nil, fmt.Errorf("%s sources cannot export a snapshot for a table added to a running stream", e.src.Type)
	}
	return ts.CreateTemporarySnapshot(ctx)
}

// outputSchema is a warehouse table's schema for rows of the source
// columns src (no metadata columns): the consolidated table adds
// _sluice_lsn, _sluice_deleted and _sluice_deleted_at; the history table
// _sluice_cdc_op, _sluice_cdc_timestamp, _sluice_lsn, valid_from and
// valid_to.
func outputSchema(src *records.Schema, history bool) (*records.Schema, error) {
	s := &records.Schema{Columns: append([]records.Column(nil), src.Columns...), PrimaryKey: append([]string(nil), src.PrimaryKey...)}
	meta := []records.Column{
		{Name: colLSN, Type: typInt64, SourceType: "pg_lsn"},
		{Name: colDeleted, Type: typBool, SourceType: "boolean"},
		{Name: colDeletedAt, Type: typTime, SourceType: "timestamp with time zone", Nullable: true},
	}
	if history {
		meta = []records.Column{
			{Name: colOp, Type: typString, SourceType: "text"},
			{Name: colCDCTime, Type: typTime, SourceType: "timestamp with time zone", Nullable: true},
			{Name: colLSN, Type: typInt64, SourceType: "pg_lsn"},
			{Name: colValidFrom, Type: typTime, SourceType: "timestamp with time zone"},
			{Name: colValidTo, Type: typTime, SourceType: "timestamp with time zone", Nullable: true},
		}
	}
	for _, m := range meta {
		if s.Index(m.Name) >= 0 {
			return nil, fmt.Errorf("the source column %q has the name of a sluice metadata column; leave it out with the table's columns attribute", m.Name)
		}
		s.Columns = append(s.Columns, m)
	}
	if len(s.PrimaryKey) == 0 {
		return nil, errors.New("cdc needs a primary key: the table has none (declare primary_key, or give the table one)")
	}
	return s, nil
}

// sourceColumns is a stream schema without its metadata columns.
func sourceColumns(s *records.Schema) *records.Schema {
	out := &records.Schema{PrimaryKey: s.PrimaryKey}
	for _, c := range s.Columns {
		if c.Name != colOp && c.Name != colLSN && c.Name != colCDCTime {
			out.Columns = append(out.Columns, c)
		}
	}
	return out
}

// snapshotTable reads a table under snap and commits it: the consolidated
// table replaced by the snapshot's rows (_sluice_lsn the consistent point,
// not deleted); the history table with every current version closed at
// the snapshot (nothing to close the first time) and the snapshot's rows
// as current versions: _sluice_cdc_op 'I', _sluice_cdc_timestamp NULL (no
// commit is known), valid_from the snapshot's time.
func (e *cdcEngine) snapshotTable(ctx context.Context, t *cdcTable, snap providers.ExportedSnapshot, at time.Time) error {
	lsn, err := e.cs.DecodePosition(snap.ConsistentLSN)
	if err != nil {
		return fmt.Errorf("the snapshot's consistent point: %w", err)
	}
	start := e.now()
	e.status.running(ctx, t.j, start)
	req := t.req
	req.Snapshot = snap.Name
	var txs []warehouse.Tx
	abort := func() {
		for _, tx := range txs {
			tx.Abort(ctx)
		}
	}
	var fill *snapshotFill
	begin := func(src *records.Schema) error {
		fill = newSnapshotFill(src, lsn, at)
		for _, o := range t.outs {
			s, err := outputSchema(src, o.history)
			if err != nil {
				return err
			}
			var tx warehouse.Tx
			if o.history {
				tx, err = o.wt.BeginHistory(ctx, s, string(config.SyncCDC), at)
			} else {
				tx, err = o.wt.Begin(ctx, warehouse.Replace, s, string(config.SyncCDC))
			}
			if err != nil {
				return err
			}
			txs = append(txs, tx)
		}
		return nil
	}
	progress := newProgress(e.progressOut, t.j.addr)
	var rows, warnings int64
	read := e.sr.ReadSnapshot
	if t.noHistory {
		// Without historical load the tables are created empty (the
		// history table's current versions closed), and the stream
		// brings what changes after the position.
		read = func(context.Context, providers.ReadRequest, func(*records.Batch) error) (records.Position, error) {
			return records.Position{}, nil
		}
	}
	_, err = read(ctx, req, func(b *records.Batch) error {
		b, err := t.hash.batch(b)
		if err != nil {
			return err
		}
		b = t.ren.batch(b)
		if fill == nil {
			if err := begin(b.Schema); err != nil {
				return err
			}
		}
		rows += int64(b.N)
		warnings += warehouse.Nulled(e.warehouse, b)
		progress.add(int64(b.N))
		for k, o := range t.outs {
			if err := txs[k].Write(ctx, fill.batch(b, o.history)); err != nil {
				return err
			}
		}
		return nil
	})
	progress.done()
	if err == nil && fill == nil {
		var s *records.Schema
		if s, err = e.sr.Schema(ctx, req); err == nil {
			if s, err = t.hash.schema(s); err == nil {
				err = begin(t.ren.schema(s))
			}
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		abort()
		return err
	}
	pos := records.Position{LSN: e.cs.EncodePosition(lsn), SnapshotDone: true}
	var tableRows int64
	for k, o := range t.outs {
		n, err := txs[k].Commit(ctx, pos)
		if err != nil {
			abort()
			return err
		}
		if err := o.setPosition(pos); err != nil {
			return err
		}
		if k == 0 {
			tableRows = n
		}
	}
	t.resnapshot = false
	var version warehouse.TableVersion
	for k, o := range t.outs {
		v := e.maint.after(ctx, o.name, o.wt, tableVersion(o.wt))
		if k == 0 {
			version = v
		}
	}
	e.snapshotted(ctx, t.j, result{full: true, rowsRead: rows, tableRows: tableRows, warnings: warnings, version: version}, start)
	return nil
}

// snapshotFill turns snapshot batches into warehouse batches, sharing the
// source columns and adding constant metadata columns.
type snapshotFill struct {
	src                             *records.Schema
	cons, hist                      *records.Schema
	lsn, at                         int64
	n                               int
	lsnV, fromV, opV, falseV, nullT records.Vec
}

func newSnapshotFill(src *records.Schema, lsn providers.StreamPosition, at time.Time) *snapshotFill {
	f := &snapshotFill{src: src, lsn: lsn.Ordinal(), at: at.UnixMicro()}
	f.cons, _ = outputSchema(src, false)
	f.hist, _ = outputSchema(src, true)
	return f
}

func (f *snapshotFill) grow(n int) {
	if n <= f.n {
		return
	}
	n = max(n, 2*f.n)
	f.lsnV, f.fromV, f.opV, f.falseV, f.nullT = records.Vec{}, records.Vec{}, records.Vec{Offsets: []int32{0}}, records.Vec{}, records.Vec{}
	for range n {
		f.lsnV.AppendInt64(f.lsn)
		f.fromV.AppendInt64(f.at)
		f.opV.AppendString("I")
		f.falseV.AppendBool(false)
		f.nullT.I64 = append(f.nullT.I64, 0)
		f.nullT.Valid = append(f.nullT.Valid, false)
	}
	f.n = n
}

// batch is b (a snapshot batch) as a batch of the consolidated or history
// table; it shares b's vectors and is valid until the next call.
func (f *snapshotFill) batch(b *records.Batch, history bool) *records.Batch {
	f.grow(b.N)
	n := b.N
	cut := func(v records.Vec) records.Vec {
		if v.Valid != nil {
			v.Valid = v.Valid[:n]
		}
		if v.I64 != nil {
			v.I64 = v.I64[:n]
		}
		if v.Bool != nil {
			v.Bool = v.Bool[:n]
		}
		if v.Offsets != nil {
			v.Offsets = v.Offsets[:n+1]
			v.Data = v.Data[:v.Offsets[n]]
		}
		return v
	}
	out := &records.Batch{N: n, Cols: append([]records.Vec(nil), b.Cols...)}
	if history {
		out.Schema = f.hist
		out.Cols = append(out.Cols, cut(f.opV), cut(f.nullT), cut(f.lsnV), cut(f.fromV), cut(f.nullT))
	} else {
		out.Schema = f.cons
		out.Cols = append(out.Cols, cut(f.lsnV), cut(f.falseV), cut(f.nullT))
	}
	return out
}

// stream streams the slot into the live tables until ctx ends, or, with
// stop, until everything committed before stop is committed; then
// confirms to the server what was committed.
func (e *cdcEngine) stream(ctx context.Context, stop string, once bool) error {
	live := e.live()
	var start providers.StreamPosition
	tables := map[string]providers.ReadRequest{}
	for i, t := range live {
		tables[t.key] = t.req
		for k, o := range t.outs {
			if i == 0 && k == 0 || o.lsn.Before(start) {
				start = o.lsn
			}
		}
	}
	stopLSN, err := e.cs.DecodePosition(stop)
	if err != nil {
		return err
	}
	sink := newCDCSink(e, live, start, stopLSN)
	e.setSink(sink)
	defer e.setSink(nil)
	req := providers.StreamRequest{
		Slot: e.src.Postgres.CDC.Slot, Publication: e.src.Postgres.CDC.Publication,
		Tables: tables, StartLSN: e.cs.EncodePosition(start), StopAtLSN: stop,
		// A walsender still streaming from the slot under a fleet's
		// claim belongs to a runner that lost the claim.
		TakeOver: claimOf(ctx) != nil,
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		sink.flusher(sctx, ctx, cancel)
	}()
	e.log.Debug("streaming", "from", req.StartLSN, "to", stop)
	err = e.cs.Stream(sctx, req, sink)
	cancel()
	<-flushed
	if serr := sink.failure(); serr != nil && ctx.Err() == nil && (err == nil || errors.Is(err, context.Canceled)) {
		// A commit failed in the background and stopped the stream.
		err = serr
	}
	// Whatever was handed over whole is committed before leaving; on a
	// cancelled stream too (a shutdown), with a context of its own.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	ferr := sink.close(fctx)
	fcancel()
	if err == nil {
		err = ferr
	} else if ferr != nil && !errors.Is(err, context.Canceled) && sink.resnapshot == nil {
		e.log.Warn("committing the changes received before the stream ended", "error", ferr)
	}
	if err != nil && sink.resnapshot != nil {
		return sink.resnapshot
	}
	if err != nil || !once {
		return err
	}
	// run -once: the stream's last report may have come before the last
	// commit; report it, so that the slot keeps no WAL for it.
	if committed, reported := sink.positions(); reported.Before(committed) {
		creq := req
		creq.StartLSN, creq.StopAtLSN = e.cs.EncodePosition(committed), e.cs.EncodePosition(committed.Next())
		if err := e.cs.Stream(ctx, creq, confirmSink(creq.StartLSN)); err != nil {
			e.log.Warn("confirming the committed position to the slot", "error", err)
		}
	}
	return nil
}

// confirmSink receives nothing (its stream covers no transaction) and
// reports a committed position.
type confirmSink string

func (confirmSink) Transaction(context.Context, *providers.Transaction) error {
	return errors.New("unexpected transaction while confirming the slot's position")
}

func (s confirmSink) Flushed() string { return string(s) }

// snapshotted records a table's snapshot, started at start, committed.
func (e *cdcEngine) snapshotted(ctx context.Context, j job, res result, start time.Time) {
	now := e.now().UTC()
	took := now.Sub(start)
	if res.warnings > 0 {
		e.logger.Warn(warehouse.NulledWarning(e.warehouse), "table", j.addr, "count", res.warnings)
	}
	e.metrics.rows.WithLabelValues(j.addr).Add(float64(res.rowsRead))
	e.metrics.lastSuccess.WithLabelValues(j.addr).Set(float64(now.Unix()))
	e.metrics.duration.WithLabelValues(j.addr).Observe(took.Seconds())
	e.logger.Info("snapshot committed", "table", j.addr, "rows", res.rowsRead, "seconds", took.Seconds())
	e.status.streamed(ctx, j, now, res)
}

// committed records a commit of streamed changes: changes applied, the
// table holding tableRows after it.
func (e *cdcEngine) committed(ctx context.Context, j job, changes, tableRows, warnings int64, version warehouse.TableVersion) {
	now := e.now().UTC()
	if warnings > 0 {
		e.logger.Warn(warehouse.NulledWarning(e.warehouse), "table", j.addr, "count", warnings)
	}
	e.metrics.rows.WithLabelValues(j.addr).Add(float64(changes))
	e.metrics.lastSuccess.WithLabelValues(j.addr).Set(float64(now.Unix()))
	e.status.streamed(ctx, j, now, result{rowsRead: changes, tableRows: tableRows, warnings: warnings, version: version})
}

// failed records a failed cdc table.
func (e *cdcEngine) failed(ctx context.Context, j job, err error) {
	e.metrics.failures.WithLabelValues(j.addr).Inc()
	e.logger.Error("cdc sync failed", "table", j.addr, "error", err)
	e.status.failed(ctx, j, e.now(), err)
}

// onceCDC runs every source's cdc tables for run -once, and returns the
// tables that failed.
func (r *Runner) onceCDC(ctx context.Context, jobs []job, claims map[string]state.Claim) []string {
	groups := cdcGroups(jobs)
	var mu sync.Mutex
	var failed []string
	var wg sync.WaitGroup
	for _, addr := range sortedKeys(groups) {
		g := groups[addr]
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := newCDCEngine(r.cdc, g)
			ctx := withClaim(ctx, claims[streamClaim(addr)])
			err := e.run(ctx, true)
			r.recorder.flush(ctx, g)
			if err != nil {
				r.slots.slotLost(ctx, g[0].src, err)
			}
			r.slots.checkOnce(ctx, g[0].src, g[0].rs)
			mu.Lock()
			defer mu.Unlock()
			for _, t := range e.tables {
				if r.recorder.current(t.j).State == state.StateFailed {
					failed = append(failed, t.j.addr)
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cdcSupervisor keeps one engine (a stream) and one WAL monitor per source
// with cdc tables while the daemon runs, restarting an engine when its
// tables or slot change in state and, with backoff, when it fails.
type cdcSupervisor struct {
	r       *Runner
	mu      sync.Mutex
	running map[string]*supervised
	wg      sync.WaitGroup
}

type supervised struct {
	sig    string
	claim  state.Claim // nil outside a fleet
	cancel context.CancelFunc
	done   chan struct{}
}

func newCDCSupervisor(r *Runner) *cdcSupervisor {
	return &cdcSupervisor{r: r, running: map[string]*supervised{}}
}

// signature identifies what an engine was started with: a change restarts
// it.
func signature(g []job) string {
	var b strings.Builder
	rs := g[0].rs
	fmt.Fprintf(&b, "%q %q|", g[0].src.Postgres.CDC.Slot, g[0].src.Postgres.CDC.Publication)
	if s := rs.Resources.Slot; s != nil {
		fmt.Fprintf(&b, "slot %s %s %s|", s.Name, s.CreatedLSN, s.CreatedAt)
	}
	for _, j := range g {
		t := j.table
		fmt.Fprintf(&b, "%q %q %q %q %q %q %q %q %s %t %t %q|", t.Name, t.Schema, t.Table, t.Columns, t.PrimaryKey, t.CDCOutput, t.NewColumns, t.Hash, t.ResyncRequestedAt,
			t.LoadsHistory(false), t.ResyncHistorical, t.Rename)
	}
	return b.String()
}

// sync starts, restarts and stops engines to match groups; an engine
// started for a source with a claim (a fleet) commits under it.
func (s *cdcSupervisor) sync(ctx context.Context, groups map[string][]job, claims map[string]state.Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, sv := range s.running {
		if g, ok := groups[addr]; !ok || signature(g) != sv.sig || sv.claim != claims[addr] {
			s.r.opt.Logger.Info("cdc tables changed in state: restarting the stream", "source", addr)
			sv.cancel()
			<-sv.done
			delete(s.running, addr)
		}
	}
	for _, addr := range sortedKeys(groups) {
		if _, ok := s.running[addr]; ok {
			continue
		}
		g := groups[addr]
		ctx, cancel := context.WithCancel(withClaim(ctx, claims[addr]))
		// The WAL monitor may stop the stream (to drop its slot) and keep
		// watching; the whole entry stops when its tables change.
		engCtx, engCancel := context.WithCancel(ctx)
		engDone, monDone := make(chan struct{}), make(chan struct{})
		sv := &supervised{sig: signature(g), claim: claims[addr], cancel: cancel, done: make(chan struct{})}
		s.running[addr] = sv
		stopEngine := func() {
			engCancel()
			<-engDone
		}
		s.wg.Add(3)
		go func() {
			defer s.wg.Done()
			defer close(engDone)
			s.loop(engCtx, g)
			if ctx.Err() == nil {
				// The WAL monitor stopped the stream to drop its slot:
				// nothing streams until apply recreates it.
				s.r.setCDCDown(addr, fmt.Errorf("the stream of %s was stopped, and its replication slot dropped, because it retained WAL over lag_critical: resync required (see `sluice status`)", addr))
			}
		}()
		go func() {
			defer s.wg.Done()
			defer close(monDone)
			s.r.slots.monitor(ctx, g[0].src, g[0].rs, stopEngine)
		}()
		go func() {
			defer s.wg.Done()
			<-engDone
			<-monDone
			engCancel()
			s.r.setCDCDown(addr, nil)
			close(sv.done)
		}()
	}
}

// wait waits for every engine and monitor to stop (after ctx ended).
func (s *cdcSupervisor) wait() { s.wg.Wait() }

// loop runs a source's engine until ctx ends, restarting it after
// failures with backoff; a lost slot waits for apply to recreate it (a
// change of state restarts the loop).
func (s *cdcSupervisor) loop(ctx context.Context, g []job) {
	r := s.r
	for attempt := 1; ctx.Err() == nil; attempt++ {
		started := time.Now()
		e := newCDCEngine(r.cdc, g)
		r.setEngine(e.addr, e)
		err := e.run(ctx, false)
		r.setEngine(e.addr, nil)
		r.recorder.flush(ctx, g)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the stream ended")
		}
		if r.slots.slotLost(ctx, g[0].src, err) {
			// Until apply recreates the slot (which restarts the loop),
			// sync requests naming these tables fail at once.
			r.setCDCDown(e.addr, fmt.Errorf("%s (resync required: run `sluice apply`)", errorText(err)))
			<-ctx.Done()
			return
		}
		if time.Since(started) > r.opt.Retry.Max {
			attempt = 1
		}
		wait := r.opt.Retry.backoff(attempt)
		r.opt.Logger.Warn("cdc stream stopped; restarting", "source", e.addr, "in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

// warehouseKind names a warehouse by its package ("iceberg" for
// *iceberg.Warehouse), for messages.
func warehouseKind(w warehouse.Warehouse) string {
	name := strings.TrimLeft(fmt.Sprintf("%T", w), "*")
	pkg, _, _ := strings.Cut(name, ".")
	return pkg
}
