package runner

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRecordedWarehouseNames: the runner writes the warehouse tables state
// records (apply chose them), and never derives a name itself: a history
// table recorded under another name than <table>_cdc is written there.
func TestRecordedWarehouseNames(t *testing.T) {
	e := newCDCEnv(t, `
CREATE TABLE h (id int PRIMARY KEY, v text);
INSERT INTO h VALUES (1, 'one'), (2, 'two');`, `
  table "h" {
    sync       = "cdc"
    cdc_output = "history"
  }`, "")
	st, err := e.local.Read(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb := st.Sources["postgres.db"].Tables["h"]
	if tb.HistoryTable != "pg_h_cdc" {
		t.Fatalf("apply recorded history table %q, want pg_h_cdc", tb.HistoryTable)
	}
	tb.HistoryTable = "recorded_history"
	if err := e.local.Write(e.ctx, st); err != nil {
		t.Fatal(err)
	}
	e.mustOnce()
	if got := e.rows("recorded_history", []string{"id", "v"}, nil); len(got) != 2 || got[0] != "1|one" {
		t.Errorf("recorded history table holds %v, want the two rows", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "warehouse", "pg_h_cdc")); err == nil {
		t.Error("the runner wrote pg_h_cdc, a name it derived, not the recorded one")
	}
}
