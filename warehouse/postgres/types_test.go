package postgres

import (
	"testing"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
)

// TestColumnTypeOfStrings checks which types a STRING column keeps: every
// built-in type whose input reads its text form back (names with
// underscores too), and text for types resolved in the warehouse's own
// catalog or missing from it.
func TestColumnTypeOfStrings(t *testing.T) {
	for _, c := range []struct{ source, want string }{
		{"pg_lsn", "pg_lsn"},
		{"pg_lsn[]", "pg_lsn[]"},
		{"txid_snapshot", "txid_snapshot"},
		{"pg_snapshot", "pg_snapshot"},
		{"time with time zone", "time with time zone"},
		{"bit varying(8)", "bit varying(8)"},
		{"int4multirange", "int4multirange"},
		{"regclass", "text"},
		{"regtype", "text"},
		{"regproc", "text"},
		{"hstore", "text"},
		{"mood", "text"},
		{"public.my_type", "text"},
	} {
		got, err := codec.ColumnType(records.Column{Name: "c", Type: tString, SourceType: c.source})
		if err != nil || got != c.want {
			t.Errorf("columnType(STRING, %q) = %q, %v; want %q", c.source, got, err, c.want)
		}
	}
}
