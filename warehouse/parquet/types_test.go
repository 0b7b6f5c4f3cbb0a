package parquet

import (
	"errors"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// decimal16 is the 16-byte big-endian two's complement form of an unscaled
// decimal, as a DECIMAL(38,s) FIXED_LEN_BYTE_ARRAY holds it.
func decimal16(t testing.TB, s string) string {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("bad number %q", s)
	}
	if n.Sign() < 0 {
		n.Add(n, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	b := n.FillBytes(make([]byte, 16))
	return string(b)
}

// allTypesSchema has a column of every type of SPEC §5, with names that
// are not identifiers.
func allTypesSchema() *records.Schema {
	return &records.Schema{
		Columns: []records.Column{
			col("id", tInt64),
			col("small int", tInt16),
			col("Int32", tInt32),
			col("f32", tFloat),
			col("f64", tDouble),
			col("dec9", tDec9),
			col("dec18", tDec18),
			col("dec38", tDec38),
			col("flag", tBool),
			col(`naïve "quoted" 名前`, tString),
			col("doc", tJSON),
			col("raw", tBytes),
			col("day", tDate),
			col("clock", tTime),
			col("ts", tTS),
			col("tstz", tTSTZ),
			col("tags", tStrList),
			col("nums", tIntList),
			col("amounts", tDecList),
		},
		PrimaryKey: []string{"id"},
	}
}

func allTypesRows(t testing.TB) [][]any {
	return [][]any{
		{1, -32768, math.MinInt32, 1.5, math.Inf(-1), -999999999, -999999999999999999, decimal16(t, "-99999999999999999999999999999999999999"),
			true, "héllo 世界 🎉", `{"a": [1, 2, {"b": null}]}`, "\x00\x01\xff", -25567, 0, -2208988800000000, -1,
			[]any{"a", nil, "ç"}, []any{1, nil, 3}, []any{123, -456}},
		{2, 32767, math.MaxInt32, -0.25, math.MaxFloat64, 999999999, 999999999999999999, decimal16(t, "99999999999999999999999999999999999999"),
			false, "", `[]`, "", 2932896, 86399999999, 253402300799999999, 1732183200000000,
			[]any{}, []any{}, []any{}},
		{3, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil, nil, nil, nil, nil, nil,
			nil, nil, nil},
		{4, 0, 0, 0.0, 0.0, 0, 0, decimal16(t, "-1"),
			true, "x", `"s"`, "\x00", -1, 1, 0, 0,
			[]any{nil}, []any{nil, nil}, []any{nil, 1}},
	}
}

func TestRoundTripEveryType(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "types")
	s := allTypesSchema()
	want := allTypesRows(t)
	m := commitRows(t, tb, warehouse.Replace, s, records.Position{Cursor: "4"}, want)
	if m.Rows != 4 || m.Version != 1 {
		t.Fatalf("manifest rows %d version %d, want 4 and 1", m.Rows, m.Version)
	}
	names, got := scanAll(t, tb)
	wantNames := []string{}
	for _, c := range s.Columns {
		wantNames = append(wantNames, c.Name)
	}
	wantNames = append(wantNames, SyncedAtColumn)
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("columns (-want +got):\n%s", diff)
	}
	syncedAt := int(w.now().Add(-1e9).UnixMicro()) - 1e6 // Begin's tick, before Commit's
	for _, r := range got {
		if r[len(r)-1] != syncedAt {
			t.Errorf("_sluice_synced_at = %v, want %v", r[len(r)-1], syncedAt)
		}
	}
	if diff := cmp.Diff(want, withoutSyncedAt(got)); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestIndependentReader reads the files with parquet-go's generic reader,
// not Scan: the schema carries the logical types of SPEC §5 and the values
// come back.
func TestIndependentReader(t *testing.T) {
	w := openTestWarehouse(t)
	tb := mustTable(t, w, "types")
	s := allTypesSchema()
	commitRows(t, tb, warehouse.Replace, s, records.Position{}, allTypesRows(t))
	files := dataFiles(t, tb.Dir())
	if len(files) != 1 {
		t.Fatalf("files %v, want one", files)
	}
	f, err := os.Open(filepath.Join(tb.Dir(), files[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := pq.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}

	// The schema, as the file's metadata states it.
	type colInfo struct {
		Name, Physical, Logical string
		Repetition              string
	}
	var got []colInfo
	for _, e := range pf.Metadata().Schema[1:] {
		ci := colInfo{Name: e.Name, Repetition: e.RepetitionType.V.String()}
		if e.Type.Valid {
			ci.Physical = e.Type.V.String()
		}
		if e.LogicalType.Value != nil {
			ci.Logical = logicalName(&e.LogicalType)
		}
		got = append(got, ci)
	}
	opt, rep := "OPTIONAL", "REPEATED"
	list := func(name, phys, logical string) []colInfo {
		return []colInfo{{name, "", "LIST", opt}, {"list", "", "", rep}, {"element", phys, logical, opt}}
	}
	want := []colInfo{
		{"id", "INT64", "INT(64,true)", opt},
		{"small int", "INT32", "INT(16,true)", opt},
		{"Int32", "INT32", "INT(32,true)", opt},
		{"f32", "FLOAT", "", opt},
		{"f64", "DOUBLE", "", opt},
		{"dec9", "INT32", "DECIMAL(9,2)", opt},
		{"dec18", "INT64", "DECIMAL(18,4)", opt},
		{"dec38", "FIXED_LEN_BYTE_ARRAY", "DECIMAL(38,10)", opt},
		{"flag", "BOOLEAN", "", opt},
		{`naïve "quoted" 名前`, "BYTE_ARRAY", "STRING", opt},
		{"doc", "BYTE_ARRAY", "JSON", opt},
		{"raw", "BYTE_ARRAY", "", opt},
		{"day", "INT32", "DATE", opt},
		{"clock", "INT64", "TIME(isAdjustedToUTC=false,unit=MICROS)", opt},
		{"ts", "INT64", "TIMESTAMP(isAdjustedToUTC=false,unit=MICROS)", opt},
		{"tstz", "INT64", "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", opt},
	}
	want = append(want, list("tags", "BYTE_ARRAY", "STRING")...)
	want = append(want, list("nums", "INT64", "INT(64,true)")...)
	want = append(want, list("amounts", "INT32", "DECIMAL(9,2)")...)
	want = append(want, colInfo{SyncedAtColumn, "INT64", "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", opt})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("file schema (-want +got):\n%s", diff)
	}
	chunks := pf.Metadata().RowGroups[0].Columns
	if codec := chunks[0].MetaData.Codec; codec != format.Zstd {
		t.Errorf("codec %v, want ZSTD", codec)
	}
	// Statistics: min/max of the key as readers prune with them; none for
	// the FIXED_LEN_BYTE_ARRAY decimal, which parquet-go would order as
	// unsigned bytes.
	if st := chunks[0].MetaData.Statistics; pq.Int64Type.Kind().Value(st.MinValue).Int64() != 1 || pq.Int64Type.Kind().Value(st.MaxValue).Int64() != 4 {
		t.Errorf("id statistics %+v, want min 1 max 4", st)
	}
	if st := chunks[7].MetaData.Statistics; st.MinValue != nil || st.MaxValue != nil {
		t.Errorf("DECIMAL(38) statistics %+v, want no bounds", st)
	}

	// The values, through the generic row reader.
	r := pq.NewReader(pf)
	defer r.Close()
	var rows []pq.Row
	buf := make([]pq.Row, 10)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			rows = append(rows, row.Clone())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 4", len(rows))
	}
	// Leaf columns in order: 16 scalars, 3 list leaves, synced_at.
	first := rows[0]
	byColumn := map[int][]pq.Value{}
	for _, v := range first {
		byColumn[v.Column()] = append(byColumn[v.Column()], v)
	}
	checks := []struct {
		col  int
		want any
	}{
		{0, int64(1)},
		{1, int32(-32768)},
		{5, int32(-999999999)},
		{6, int64(-999999999999999999)},
		{7, decimal16(t, "-99999999999999999999999999999999999999")},
		{9, "héllo 世界 🎉"},
		{11, "\x00\x01\xff"},
		{12, int32(-25567)},
		{14, int64(-2208988800000000)},
	}
	for _, c := range checks {
		v := byColumn[c.col][0]
		var got any
		switch c.want.(type) {
		case int64:
			got = v.Int64()
		case int32:
			got = v.Int32()
		case string:
			got = string(v.ByteArray())
		}
		if got != c.want {
			t.Errorf("column %d: got %v, want %v", c.col, got, c.want)
		}
	}
	// tags ["a", NULL, "ç"]: three values, the NULL one at definition level 2.
	tags := byColumn[16]
	var tagVals []any
	for _, v := range tags {
		if v.IsNull() {
			tagVals = append(tagVals, v.DefinitionLevel())
		} else {
			tagVals = append(tagVals, string(v.ByteArray()))
		}
	}
	if diff := cmp.Diff([]any{"a", 2, "ç"}, tagVals); diff != "" {
		t.Errorf("tags of row 1 (-want +got):\n%s", diff)
	}
}

func logicalName(l *format.LogicalType) string {
	switch l.Value.(type) {
	case *format.StringType:
		return "STRING"
	case *format.JsonType:
		return "JSON"
	case *format.DateType:
		return "DATE"
	case *format.ListType:
		return "LIST"
	}
	return l.String()
}
