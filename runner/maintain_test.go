package runner

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// maintainedTable is a warehouse.Table that counts Maintain calls and
// returns what it is told.
type maintainedTable struct {
	warehouse.Table
	calls   int
	reports []warehouse.MaintenanceReport
	err     error
	version warehouse.TableVersion
}

func (t *maintainedTable) Maintain(context.Context) (warehouse.MaintenanceReport, error) {
	t.calls++
	var rep warehouse.MaintenanceReport
	if len(t.reports) > 0 {
		rep, t.reports = t.reports[0], t.reports[1:]
	}
	if !rep.Empty() {
		t.version.SnapshotID++
	}
	return rep, t.err
}

func (t *maintainedTable) Version() warehouse.TableVersion { return t.version }

func TestMaintainerAfter(t *testing.T) {
	did := warehouse.MaintenanceReport{Compacted: 4, Written: 1}
	more := warehouse.MaintenanceReport{Compacted: 4, Written: 1, Pending: true}
	tests := []struct {
		name    string
		reports []warehouse.MaintenanceReport
		err     error
		// at are the commit times (seconds from the start) after which
		// the maintainer is asked.
		at        []int
		wantCalls int
	}{
		{"nothing due: once per interval", nil, nil, []int{0, 1, 29, 30, 31, 59, 61}, 3},
		{"work pending: called again at the next commit", []warehouse.MaintenanceReport{more, more, {}}, nil, []int{0, 1, 2, 3, 4}, 3},
		{"work done, none pending: once per interval", []warehouse.MaintenanceReport{did, did, did}, nil, []int{0, 1, 2, 31, 32}, 2},
		{"failure: retried after the interval, not before", nil, errors.New("catalog unreachable"), []int{0, 1, 10, 31}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
			now := start
			m := newMaintainer(func() time.Time { return now }, hclog.NewNullLogger())
			tbl := &maintainedTable{reports: tt.reports, err: tt.err, version: warehouse.TableVersion{MetadataLocation: "m", SnapshotID: 1}}
			for _, s := range tt.at {
				now = start.Add(time.Duration(s) * time.Second)
				m.after(context.Background(), "t", tbl, tbl.version)
			}
			if tbl.calls != tt.wantCalls {
				t.Errorf("Maintain called %d times, want %d", tbl.calls, tt.wantCalls)
			}
		})
	}
}

func TestMaintainerVersionAndOthers(t *testing.T) {
	m := newMaintainer(time.Now, hclog.NewNullLogger())
	tbl := &maintainedTable{reports: []warehouse.MaintenanceReport{{ExpiredSnapshots: 2}}, version: warehouse.TableVersion{MetadataLocation: "m", SnapshotID: 7}}
	got := m.after(context.Background(), "a", tbl, tbl.version)
	if diff := cmp.Diff(warehouse.TableVersion{MetadataLocation: "m", SnapshotID: 8}, got); diff != "" {
		t.Errorf("version after maintenance (-want +got):\n%s", diff)
	}
	// Tables are throttled one by one.
	other := &maintainedTable{}
	m.after(context.Background(), "b", other, warehouse.TableVersion{})
	if other.calls != 1 {
		t.Errorf("table b maintained %d times, want 1", other.calls)
	}
	// A table that does no maintenance, and no table, are left alone.
	v := warehouse.TableVersion{SnapshotID: 3}
	if got := m.after(context.Background(), "c", struct{ warehouse.Table }{}, v); got != v {
		t.Errorf("version of a plain table = %v, want %v", got, v)
	}
	var nilM *maintainer
	if got := nilM.after(context.Background(), "c", tbl, v); got != v {
		t.Errorf("nil maintainer changed the version: %v", got)
	}
}

// maintainingWarehouse wraps a warehouse whose tables it makes
// Maintainers and Versioned: each commit or maintenance is a new version.
type maintainingWarehouse struct {
	warehouse.Warehouse
	mu sync.Mutex
	// calls counts Maintain calls per table; versions is each table's
	// version number.
	calls, versions map[string]int64
	// committing is set while a commit of the table is in progress: a
	// Maintain then would race it.
	committing map[string]bool
	raced      []string
}

func newMaintainingWarehouse(w warehouse.Warehouse) *maintainingWarehouse {
	return &maintainingWarehouse{Warehouse: w, calls: map[string]int64{}, versions: map[string]int64{}, committing: map[string]bool{}}
}

func (w *maintainingWarehouse) Table(ctx context.Context, name string) (warehouse.Table, error) {
	t, err := w.Warehouse.Table(ctx, name)
	if err != nil {
		return nil, err
	}
	return &maintainingTable{CDCTable: t.(warehouse.CDCTable), w: w, name: name}, nil
}

type maintainingTable struct {
	warehouse.CDCTable
	w    *maintainingWarehouse
	name string
}

func (t *maintainingTable) Begin(ctx context.Context, mode warehouse.Mode, s *records.Schema, sync string) (warehouse.Tx, error) {
	tx, err := t.CDCTable.Begin(ctx, mode, s, sync)
	return t.tx(tx), err
}

func (t *maintainingTable) BeginHistory(ctx context.Context, s *records.Schema, sync string, closeAllAt time.Time) (warehouse.Tx, error) {
	tx, err := t.CDCTable.BeginHistory(ctx, s, sync, closeAllAt)
	return t.tx(tx), err
}

func (t *maintainingTable) tx(tx warehouse.Tx) warehouse.Tx {
	if tx == nil {
		return nil
	}
	t.w.mu.Lock()
	t.w.committing[t.name] = true
	t.w.mu.Unlock()
	return &maintainingTx{Tx: tx, t: t}
}

func (t *maintainingTable) Maintain(context.Context) (warehouse.MaintenanceReport, error) {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	if t.w.committing[t.name] {
		t.w.raced = append(t.w.raced, t.name)
	}
	t.w.calls[t.name]++
	t.w.versions[t.name]++
	return warehouse.MaintenanceReport{ExpiredSnapshots: 1}, nil
}

func (t *maintainingTable) Version() warehouse.TableVersion {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	return warehouse.TableVersion{MetadataLocation: t.name + ".metadata.json", SnapshotID: t.w.versions[t.name]}
}

type maintainingTx struct {
	warehouse.Tx
	t *maintainingTable
}

func (tx *maintainingTx) end() {
	tx.t.w.mu.Lock()
	tx.t.w.committing[tx.t.name] = false
	tx.t.w.mu.Unlock()
}

func (tx *maintainingTx) Commit(ctx context.Context, pos records.Position) (int64, error) {
	n, err := tx.Tx.Commit(ctx, pos)
	if err == nil {
		tx.t.w.mu.Lock()
		tx.t.w.versions[tx.t.name]++
		tx.t.w.mu.Unlock()
	}
	tx.end()
	return n, err
}

func (tx *maintainingTx) Abort(ctx context.Context) error {
	defer tx.end()
	return tx.Tx.Abort(ctx)
}

// TestMaintenanceAfterCommits: a batch sync and a cdc table's snapshot
// and streamed changes each maintain their tables after committing, never
// during a commit, and the status records the version maintenance left.
func TestMaintenanceAfterCommits(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE f (id int PRIMARY KEY, v text);
CREATE TABLE c (id int PRIMARY KEY, v text);
INSERT INTO f VALUES (1, 'a');
INSERT INTO c VALUES (1, 'a');`, `
  table "f" {
    sync = "full_refresh"
  }
  table "c" {
    sync       = "cdc"
    cdc_output = "both"
  }`, "")
	w := newMaintainingWarehouse(e.warehouse())
	e.mustOnce(func(o *Options) { o.Warehouse = w })
	e.exec(`INSERT INTO c VALUES (2, 'b')`)
	e.mustOnce(func(o *Options) { o.Warehouse = w })

	w.mu.Lock()
	calls := maps.Clone(w.calls)
	raced := w.raced
	w.mu.Unlock()
	// Each run is a new runner: its first commit of each table is due.
	want := map[string]int64{"pg_f": 1, "pg_c": 2, "pg_c_cdc": 2}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("Maintain calls (-want +got):\n%s", diff)
	}
	if len(raced) > 0 {
		t.Errorf("Maintain ran during a commit of %v", raced)
	}
	for addr, name := range map[string]string{"postgres.db/f": "pg_f", "postgres.db/c": "pg_c"} {
		st := e.status(addr)
		tb, _ := w.Table(e.ctx, name)
		want := tb.(warehouse.Versioned).Version()
		if got := (warehouse.TableVersion{MetadataLocation: st.MetadataLocation, SnapshotID: st.SnapshotID}); got != want {
			t.Errorf("%s: status records version %+v, the table is at %+v", addr, got, want)
		}
	}
}
