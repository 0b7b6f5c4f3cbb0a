package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

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
		{"work done: called again at the next commit", []warehouse.MaintenanceReport{did, did, {}}, nil, []int{0, 1, 2, 3, 4}, 3},
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
