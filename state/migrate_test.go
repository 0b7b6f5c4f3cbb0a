package state

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// checkMigratedV1 checks testdata/v1.json, a state written by a sluice
// whose format version was 1, as it must read today.
func checkMigratedV1(t *testing.T, st *State) {
	t.Helper()
	if st.FormatVersion != FormatVersion {
		t.Errorf("format version after reading a version 1 state = %d, want %d", st.FormatVersion, FormatVersion)
	}
	tables := st.Sources["postgres.prod"].Tables
	type view struct {
		History   string
		Sync      config.SyncType
		Output    config.CDCOutput
		New       config.NewColumnsPolicy
		Frequency config.Schedule
	}
	got := map[string]view{}
	for name, tb := range tables {
		sched, err := tb.Frequency.Get()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		got[name] = view{tb.HistoryTable, tb.Sync, tb.CDCOutput, tb.NewColumns, sched}
	}
	hour := config.Schedule{Interval: 3600e9}
	six := config.Schedule{Interval: 6 * 3600e9}
	want := map[string]view{
		`Mixed "Case"`: {Sync: config.SyncFullRefresh, Frequency: six},
		"audit":        {History: "postgres_prod_audit_cdc", Sync: config.SyncCDC, Output: config.CDCHistory, New: config.NewColumnsSyncForward, Frequency: six},
		"events": {History: "postgres_prod_events_cdc", Sync: config.SyncCDC, Output: config.CDCBoth, New: config.NewColumnsFullResync,
			Frequency: config.Schedule{Daily: true, At: 2*3600e9 + 30*60e9}},
		"orders": {Sync: config.SyncIncremental, Frequency: hour},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tables of the migrated state (-want +got):\n%s", diff)
	}
}

// TestMigrateV1File reads a checked-in version 1 state file: it upgrades in
// memory, the next write stores the current version, and the document
// written is the golden one (readable, stable).
func TestMigrateV1File(t *testing.T) {
	ctx := context.Background()
	old, err := os.ReadFile("testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	b := NewLocal(path)
	defer b.Close()
	st, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkMigratedV1(t, st)
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/v1-migrated.json"
	if *update {
		if err := os.WriteFile(golden, written, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(written)); diff != "" {
		t.Errorf("state written after migration (-%s +written):\n%s", golden, diff)
	}
	again, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkMigratedV1(t, again)
	// A version 2 document re-encodes byte for byte.
	enc, err := Encode(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, written) {
		t.Errorf("re-encoding the written state changed it:\n%s", cmp.Diff(string(written), string(enc)))
	}
}

// TestMigrateV1Postgres reads a version 1 state stored by the postgres
// backend, as an older sluice wrote it.
func TestMigrateV1Postgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	b := openPG(t, url)
	old, err := os.ReadFile("testdata/v1.json")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO sluice.state_versions (lineage, serial, state, written_by) VALUES ($1, 7, $2, 'old@sluice')`,
		"3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", string(old)); err != nil {
		t.Fatal(err)
	}
	st, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkMigratedV1(t, st)
	if err := b.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if v := query[int](t, url, `SELECT (state->>'format_version')::int FROM sluice.state_versions WHERE serial = 8`); v != FormatVersion {
		t.Errorf("format version written = %d, want %d", v, FormatVersion)
	}
	if v := query[int](t, url, `SELECT (state->>'format_version')::int FROM sluice.state_versions WHERE serial = 7`); v != 1 {
		t.Errorf("the version 1 row was changed to format %d; earlier versions are kept as written", v)
	}
	if h := query[string](t, url, `SELECT state->'sources'->'postgres.prod'->'tables'->'events'->>'history_table' FROM sluice.state_versions WHERE serial = 8`); h != "postgres_prod_events_cdc" {
		t.Errorf("history_table written = %q", h)
	}
	got, err := openPG(t, url).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkMigratedV1(t, got)
}

// TestFrequencyInvalidKept: a recorded frequency that does not parse still
// reads, survives a re-encoding, and is an error when asked for.
func TestFrequencyInvalidKept(t *testing.T) {
	f := ParseFrequency("every tuesday")
	if _, err := f.Get(); err == nil {
		t.Fatal("Get of an invalid frequency: no error")
	}
	b, _ := f.MarshalText()
	if string(b) != "every tuesday" {
		t.Errorf("re-encoded as %q", b)
	}
	if _, err := (Frequency{}).Get(); err == nil {
		t.Error("Get of no frequency: no error")
	}
}
