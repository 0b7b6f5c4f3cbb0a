package iceberg

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// TestStoresMergeAndHistory: merges (updates, a tombstone, a key twice in
// one transaction) and a history table, on a local directory and on S3;
// after each commit a reopened warehouse has the position, and icebird,
// reading through the S3 API, applies the position deletes and sees
// exactly the live rows.
func TestStoresMergeAndHistory(t *testing.T) {
	ctx := context.Background()
	forEachStore(t, func(t *testing.T, st testStore) {
		s := kvSchema(tInt64, false)
		tb := openTable(t, st.open(t), "kv")
		steps := []struct {
			mode warehouse.Mode
			rows []row
			want []string // k=v, "!" for a tombstone, in key order
		}{
			{warehouse.Replace, []row{{k: "1", v: str("a")}, {k: "2", v: str("b")}, {k: "3", v: str("c")}}, []string{"1=a", "2=b", "3=c"}},
			{warehouse.Merge, []row{{k: "2", v: str("b2")}, {k: "4", v: str("d")}, {k: "2", v: str("b3")}}, []string{"1=a", "2=b3", "3=c", "4=d"}},
			{warehouse.Merge, []row{{k: "1", v: str("a"), del: true}, {k: "3", v: str("c2")}}, []string{"1=a!", "2=b3", "3=c2", "4=d"}},
		}
		for i, step := range steps {
			pos := records.Position{LSN: "0/" + string(rune('1'+i))}
			commit(t, tb, step.mode, s, pos, kvBatch(s, step.rows...))
			reopened := openTable(t, st.open(t), "kv")
			if got, ok := reopened.Position(); !ok || !cmp.Equal(got, pos) {
				t.Errorf("step %d: reopened position %+v (%v), want %+v", i, got, ok, pos)
			}
			var got []string
			for _, r := range readIndependent(t, st, reopened) {
				v := strings.TrimSuffix(r["k"].(string), "n") + "=" + r["v"].(string)
				if r["_sluice_deleted"] == true {
					v += "!"
				}
				got = append(got, v)
			}
			sort.Strings(got)
			if diff := cmp.Diff(step.want, got); diff != "" {
				t.Errorf("step %d: icebird reads (-want +got):\n%s", i, diff)
			}
		}

		h := openTable(t, st.open(t), "kv_cdc")
		for i, vs := range [][]version{
			{{k: 1, v: "a", op: "I", from: 10}, {k: 2, v: "b", op: "I", from: 10}, {k: 1, v: "a2", op: "U", from: 20}},
			{{k: 2, v: "b", op: "D", from: 30}, {k: 1, v: "a3", op: "U", from: 40}},
		} {
			tx, err := h.BeginHistory(ctx, histSchema, "cdc", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.Write(ctx, histBatch(vs...)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Commit(ctx, records.Position{LSN: "1/" + string(rune('1'+i))}); err != nil {
				t.Fatal(err)
			}
		}
		var open []string
		rows := readIndependent(t, st, openTable(t, st.open(t), "kv_cdc"))
		for _, r := range rows {
			if r[warehouse.ValidToColumn] == nil {
				open = append(open, strings.TrimSuffix(r["k"].(string), "n")+"="+r["v"].(string))
			}
		}
		if len(rows) != 5 || !cmp.Equal(open, []string{"1=a3"}) {
			t.Errorf("icebird reads %d versions (want 5), open ones %v (want [1=a3])", len(rows), open)
		}
	})
}
