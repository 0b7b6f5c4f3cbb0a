package postgres

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/internal/pg/codec"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/providers"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzCopyDecode from the test server's COPY output")

// numericTypmod4 is the type modifier of numeric(p,s).
func numericTypmod4(p, s int) int32 { return int32(p<<16|s) + 4 }

// fuzzColumns is the schema FuzzCopyDecode decodes: a column of every
// binary format the decoders know, and one read as text. The names are
// those of typeCases, whose values make the seeds.
var fuzzColumns = []struct {
	name   string
	oid    uint32
	typmod int32
	dims   int
}{
	{"b", pgtype.BoolOID, -1, 0},
	{"i2", pgtype.Int2OID, -1, 0},
	{"i4", pgtype.Int4OID, -1, 0},
	{"i8", pgtype.Int8OID, -1, 0},
	{"f4", pgtype.Float4OID, -1, 0},
	{"f8", pgtype.Float8OID, -1, 0},
	{"n9", pgtype.NumericOID, numericTypmod4(9, 2), 0},
	{"n18", pgtype.NumericOID, numericTypmod4(18, 4), 0},
	{"n38", pgtype.NumericOID, numericTypmod4(38, 10), 0},
	{"nfree", pgtype.NumericOID, -1, 0},
	{"t", pgtype.TextOID, -1, 0},
	{"by", pgtype.ByteaOID, -1, 0},
	{"d", pgtype.DateOID, -1, 0},
	{"tm", pgtype.TimeOID, -1, 0},
	{"ts", pgtype.TimestampOID, -1, 0},
	{"tz", pgtype.TimestamptzOID, -1, 0},
	{"u", pgtype.UUIDOID, -1, 0},
	{"js", pgtype.JSONOID, -1, 0},
	{"jb", pgtype.JSONBOID, -1, 0},
	{"ia", pgtype.Int4ArrayOID, -1, 1},
	{"ta", pgtype.TextArrayOID, -1, 1},
	{"na", pgtype.NumericArrayOID, numericTypmod4(10, 2), 1},
	{"iv", pgtype.IntervalOID, -1, 0},
}

// fuzzTable is the table of fuzzColumns, built without a server.
func fuzzTable(t testing.TB) *tableInfo {
	info := &tableInfo{schema: &records.Schema{}}
	var catalog codec.TypeCatalog
	for _, c := range fuzzColumns {
		typ := catalog.Resolve(c.oid, c.typmod, c.dims)
		pt := codec.MapType(typ)
		rc, err := planColumn(c.name, typ, pt)
		if err != nil {
			t.Fatal(err)
		}
		info.cols = append(info.cols, rc)
		info.schema.Columns = append(info.schema.Columns, records.Column{Name: c.name, Type: pt})
	}
	return info
}

const fuzzSeedDir = "testdata/fuzz/FuzzCopyDecode"

// FuzzCopyDecode feeds arbitrary bytes to the COPY stream decoder, at once
// and in pieces: it must return an error for malformed input, never panic
// nor allocate more than the input calls for, and decode the same rows
// however the input is cut.
func FuzzCopyDecode(f *testing.F) {
	header := append(append([]byte{}, copySignature...), 0, 0, 0, 0, 0, 0, 0, 0)
	f.Add(append(header, 0xFF, 0xFF), uint16(0))
	f.Add(append(header, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF), uint16(3))
	info := fuzzTable(f)
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		whole, errWhole := digestStream(info, data, 0)
		parts, errParts := digestStream(info, data, int(split))
		if (errWhole == nil) != (errParts == nil) {
			t.Fatalf("at once: %v; in pieces of %d: %v", errWhole, split, errParts)
		}
		if errWhole == nil && whole != parts {
			w, _ := decodeStream(info.schema, info.decoders(), data, 0, 3)
			p, _ := decodeStream(info.schema, info.decoders(), data, int(split), 3)
			t.Fatalf("at once and in pieces of %d differ (-whole +pieces):\n%s", split, cmp.Diff(w, p, cmpopts.EquateNaNs()))
		}
	})
}

// digestStream decodes a COPY stream written in pieces of size split (0:
// at once) in batches of 3 rows, and returns a digest of the batches:
// cheaper than comparing rows, so that the fuzzer runs fast.
func digestStream(info *tableInfo, data []byte, split int) ([sha256.Size]byte, error) {
	h := sha256.New()
	sink := emitSink(info.schema, 3, func(b *records.Batch) error {
		fmt.Fprint(h, b.N)
		for i := range b.Cols {
			digestVec(h, &b.Cols[i])
		}
		return nil
	})
	s := codec.NewCopyStream(info.decoders(), sink)
	if split <= 0 {
		split = len(data)
	}
	for len(data) > 0 {
		n := min(split, len(data))
		if _, err := s.Write(data[:n]); err != nil {
			return [sha256.Size]byte{}, err
		}
		data = data[n:]
	}
	if err := s.Finish(); err != nil {
		return [sha256.Size]byte{}, err
	}
	if err := sink.flush(); err != nil {
		return [sha256.Size]byte{}, err
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

func digestVec(h hash.Hash, v *records.Vec) {
	var buf []byte
	for _, x := range v.Valid {
		buf = append(buf, boolByte(x))
	}
	buf = append(buf, '|')
	for _, x := range v.Bool {
		buf = append(buf, boolByte(x))
	}
	buf = append(buf, '|')
	for _, x := range v.I32 {
		buf = binary.BigEndian.AppendUint32(buf, uint32(x))
	}
	buf = append(buf, '|')
	for _, x := range v.I64 {
		buf = binary.BigEndian.AppendUint64(buf, uint64(x))
	}
	buf = append(buf, '|')
	for _, x := range v.F32 {
		buf = binary.BigEndian.AppendUint32(buf, math.Float32bits(x))
	}
	buf = append(buf, '|')
	for _, x := range v.F64 {
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(x))
	}
	buf = append(buf, '|')
	for _, x := range v.Offsets {
		buf = binary.BigEndian.AppendUint32(buf, uint32(x))
	}
	buf = append(buf, '|')
	buf = append(buf, v.Data...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(v.Nulled))
	h.Write(buf)
	if v.List != nil {
		buf = buf[:0]
		for _, x := range v.List.Offsets {
			buf = binary.BigEndian.AppendUint32(buf, uint32(x))
		}
		h.Write(buf)
		digestVec(h, &v.List.Elem)
	}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// TestFuzzSeeds checks that the seeds of FuzzCopyDecode, COPY output of
// the test server, decode; with -update-fuzz-seeds it captures them
// again. It also checks that fuzzTable decodes those columns as a read of
// a real table does.
func TestFuzzSeeds(t *testing.T) {
	f := newReaderFixture(t)
	rows := createTypesTable(t, f.exec)
	var names []string
	for _, c := range fuzzColumns {
		names = append(names, c.name)
	}
	real := f.table(providers.ReadRequest{Table: "types", Columns: names})
	fuzz := fuzzTable(t)
	// The real read has the id key too.
	if d := cmp.Diff(fuzz.schema.Columns, real.schema.Columns[1:], cmpopts.IgnoreFields(records.Column{}, "SourceType", "Nullable")); d != "" {
		t.Errorf("fuzz schema differs from the server's (-fuzz +server):\n%s", d)
	}
	for i, c := range fuzz.cols {
		rc := real.cols[i+1]
		if c.expr != rc.expr || c.resultOID != rc.resultOID || !cmp.Equal(c.dec, rc.dec, cmp.AllowUnexported(codec.Decoder{})) {
			t.Errorf("column %s: fuzz decodes %s (%d) with %+v, a read %s (%d) with %+v", c.name, c.expr, c.resultOID, c.dec, rc.expr, rc.resultOID, rc.dec)
		}
	}

	// One small stream per row (the fuzzer's minimization of a new input
	// takes time quadratic in its size), and an empty one.
	query := "SELECT " + fuzz.selectList() + " FROM types"
	seeds := map[string][]byte{"server_empty": captureCopy(t, f, query+" WHERE false")}
	for id := range rows {
		seeds[fmt.Sprintf("server_row_%d", id)] = captureCopy(t, f, fmt.Sprintf("%s WHERE id = %d", query, id))
	}
	if *updateFuzzSeeds {
		if err := os.MkdirAll(fuzzSeedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		split := 0
		for name, data := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nuint16(%d)\n", strconv.Quote(string(data)), split)
			if err := os.WriteFile(filepath.Join(fuzzSeedDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			split = split*2 + 1
		}
	}
	for name, data := range seeds {
		if _, err := decodeStream(fuzz.schema, fuzz.decoders(), data, 0, 3); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	entries, err := os.ReadDir(fuzzSeedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(fuzzSeedDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(body), "\n", 4)
		if len(lines) < 3 || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Errorf("%s: not a seed of FuzzCopyDecode", e.Name())
			continue
		}
		data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if _, err := decodeStream(fuzz.schema, fuzz.decoders(), []byte(data), 0, 3); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
	if len(entries) == 0 {
		t.Errorf("no seeds in %s: run go test -run TestFuzzSeeds -update-fuzz-seeds", fuzzSeedDir)
	}
}
