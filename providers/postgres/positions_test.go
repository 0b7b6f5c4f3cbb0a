package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/providers"
)

// TestPositionsAsStored: the LSN texts warehouses, manifests and state
// hold today (pglogrepl's form, which is PostgreSQL's) decode to
// positions that encode back to the same text, and order as PostgreSQL
// orders pg_lsn; the zero position is "" read and "0/0" written.
func TestPositionsAsStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var p providers.PositionCodec = &Provider{}

	stored := []string{"0/0", "0/1", "0/12C", "0/FFFFFFFF", "1/0", "16/B374D848", "16/B374D849", "17/0", "7FFFFFFF/FFFFFFFF", "80000000/0", "FFFFFFFF/FFFFFFFF"}
	pos := make([]providers.StreamPosition, len(stored))
	for i, s := range stored {
		if pos[i], err = p.DecodePosition(s); err != nil {
			t.Fatalf("DecodePosition(%q): %v", s, err)
		}
		if got := p.EncodePosition(pos[i]); got != s {
			t.Errorf("EncodePosition(DecodePosition(%q)) = %q", s, got)
		}
		var text string
		var ord string
		if err := conn.QueryRow(ctx, `SELECT $1::pg_lsn::text, ($1::pg_lsn - '0/0')::text`, s).Scan(&text, &ord); err != nil {
			t.Fatal(err)
		}
		if text != s {
			t.Errorf("PostgreSQL writes %q as %q", s, text)
		}
		if got := strconv.FormatUint(uint64(pos[i].Ordinal()), 10); got != ord {
			t.Errorf("%s: ordinal %s, PostgreSQL's byte position %s", s, got, ord)
		}
	}
	for i := range stored {
		for j := range stored {
			var cmp int
			if err := conn.QueryRow(ctx, `SELECT CASE WHEN $1::pg_lsn < $2::pg_lsn THEN -1 WHEN $1::pg_lsn > $2::pg_lsn THEN 1 ELSE 0 END`, stored[i], stored[j]).Scan(&cmp); err != nil {
				t.Fatal(err)
			}
			if got := pos[i].Compare(pos[j]); got != cmp {
				t.Errorf("Compare(%s, %s) = %d, PostgreSQL says %d", stored[i], stored[j], got, cmp)
			}
			if got := pos[i].Before(pos[j]); got != (cmp < 0) {
				t.Errorf("Before(%s, %s) = %v", stored[i], stored[j], got)
			}
		}
	}

	zero, err := p.DecodePosition("")
	if err != nil || !zero.IsZero() || p.EncodePosition(zero) != "0/0" || zero != pos[0] {
		t.Errorf(`DecodePosition("") = %v, %v; want the zero position, written "0/0"`, zero, err)
	}
	if got := p.EncodePosition(pos[2].Next()); got != "0/12D" {
		t.Errorf("Next(0/12C) = %s, want 0/12D", got)
	}
	if lead, err := p.DecodePosition("0/0000012C"); err != nil || lead != pos[2] {
		t.Errorf("DecodePosition(0/0000012C) = %v, %v; want 0/12C as pg_lsn reads it", lead, err)
	}
	for _, bad := range []string{"16-B374D848", "x/1", "16/", "/1", "1/2/3", "123456789/0", "+1/0", "0x1/0", " 1/0"} {
		if _, err := p.DecodePosition(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("DecodePosition(%q): error %v, want one naming the text", bad, err)
		}
	}
}
