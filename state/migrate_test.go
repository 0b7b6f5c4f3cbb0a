package state

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/config"
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
