package iceberg

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/warehouse"
)

// icebirdReader reads the table whose metadata file is argv[2] with
// icebird and prints its rows as JSON, in the value forms icebird gives
// made printable (binary arrives as a string decoded as UTF-8, so the
// exact bytes are checked by the iceberg-go read in TestTypesRoundTrip): a long (BigInt) as "<digits>n", bytes as "bytes:<hex>",
// a Date as its ISO string. icebird fetches files by URL, so fetch is
// shimmed to serve local paths (with Range); the SQL catalog writes no
// version-hint.text, so the metadata is passed in.
const icebirdReader = `
import { readFileSync } from 'node:fs'
import { icebergRead } from 'icebird'
const realFetch = globalThis.fetch
globalThis.fetch = async (url, init = {}) => {
  let u = String(url)
  if (u.startsWith('file://')) u = decodeURIComponent(new URL(u).pathname)
  if (!u.startsWith('/')) return realFetch(url, init)
  let buf
  try { buf = readFileSync(u) } catch (e) { return new Response(null, { status: 404 }) }
  const h = init.headers || {}
  const range = h.Range || h.range || (h.get && h.get('Range'))
  if (init.method === 'HEAD') return new Response(null, { status: 200, headers: { 'Content-Length': String(buf.length) } })
  if (range) {
    const m = /bytes=(\d+)-(\d*)/.exec(range)
    const start = Number(m[1]); const end = m[2] ? Number(m[2]) + 1 : buf.length
    return new Response(buf.subarray(start, end), { status: 206, headers: { 'Content-Length': String(end - start) } })
  }
  return new Response(buf, { status: 200, headers: { 'Content-Length': String(buf.length) } })
}
const metadata = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const rows = await icebergRead({ tableUrl: metadata.location, metadata })
const form = (v) => {
  if (typeof v === 'bigint') return v.toString() + 'n'
  if (v instanceof Uint8Array) return 'bytes:' + Buffer.from(v).toString('hex')
  if (v instanceof Date) return v.toISOString()
  if (Array.isArray(v)) return v.map(form)
  return v
}
const out = rows.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, form(v)])))
process.stdout.write(JSON.stringify(out))
`

// icebirdModules is the node_modules directory holding icebird:
// SLUICE_TEST_ICEBIRD, else where scripts/ensure-icebird.sh installs it.
func icebirdModules() string {
	if m := os.Getenv("SLUICE_TEST_ICEBIRD"); m != "" {
		return m
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	found, _ := filepath.Glob(filepath.Join(cache, "sluice", "icebird-*", "node_modules", "icebird"))
	if len(found) == 0 {
		return ""
	}
	return filepath.Dir(found[len(found)-1])
}

// readIcebird reads tb's current snapshot with icebird.
func readIcebird(t *testing.T, tb *Table) []map[string]any {
	t.Helper()
	modules := icebirdModules()
	if modules == "" {
		t.Fatal("icebird is not installed: run `bash scripts/ensure-icebird.sh` (make test does) or set SLUICE_TEST_ICEBIRD to the node_modules directory holding icebird")
	}
	dir := t.TempDir()
	// ES modules resolve packages from the script's directory up, not
	// from NODE_PATH.
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "read.mjs")
	if err := os.WriteFile(script, []byte(icebirdReader), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, tb.MetadataLocation())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("icebird: %v", err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("icebird printed %q: %v", out, err)
	}
	for _, r := range rows {
		delete(r, SyncedAtColumn)
	}
	return rows
}

// TestIcebirdReadsTypes reads every type back with icebird, an
// independent Iceberg reader, after a Replace and an Append. Its value
// forms: a long is a BigInt, a decimal a (lossy) Number, a timestamp a
// Date (microseconds cut to milliseconds toward zero, so -1µs reads as
// the epoch), a time BigInt microseconds, binary a UTF-8-decoded string.
func TestIcebirdReadsTypes(t *testing.T) {
	w := openTest(t, t.TempDir())
	tb := openTable(t, w, "types")
	commit(t, tb, warehouse.Replace, typesSchema, records.Position{Cursor: "1"}, typesBatch())
	row0 := map[string]any{
		"id": "9007199254740993n", "i16": -32768.0, "i32": 2147483647.0, "f32": 1.5, "f64": -2.25e300, "ok": true,
		"d9": -1234567.89, "d18": 12345678901234.5678, "d38": 1e27,
		"day": "2022-01-08T00:00:00.000Z", "tod": "86399999999n",
		"ts": "2023-11-14T22:13:20.123Z", "tstz": "0001-01-01T00:00:00.000Z",
		"name": "héllo, \"world\"\n", "doc": `{"a": [1, 2]}`, "ref": "7f1e8d3a-1b2c-4d5e-8f90-123456789abc",
		"raw": "\x00\x01\ufffd\ufffd", "tags": []any{"a", nil, ""}, "nums": []any{"-1n", "4611686018427387904n"},
	}
	row1 := map[string]any{
		"id": "-1n", "i16": 7.0, "i32": -2147483648.0, "f32": -0.25, "f64": 0.1, "ok": false,
		"d9": 0.05, "d18": -0.0001, "d38": -1e-10,
		"day": "1969-12-31T00:00:00.000Z", "tod": "0n",
		"ts": "1970-01-01T00:00:00.000Z", "tstz": "1970-01-01T00:00:00.000Z",
		"name": "", "doc": "null", "ref": "00000000-0000-0000-0000-000000000000",
		"raw": "", "tags": []any{}, "nums": []any{},
	}
	row2 := map[string]any{"id": "0n"}
	for _, c := range typesSchema.Columns[1:] {
		if c.Type.Logical != records.LogicalList { // icebird leaves a NULL list undefined
			row2[c.Name] = nil
		}
	}
	// icebird's decimals are Numbers: equal to about 15 digits.
	approx := cmpopts.EquateApprox(1e-15, 0)
	if diff := cmp.Diff([]map[string]any{row0, row1, row2}, readIcebird(t, tb), approx); diff != "" {
		t.Errorf("icebird reads after Replace (-want +got):\n%s", diff)
	}
	commit(t, tb, warehouse.Append, typesSchema, records.Position{Cursor: "2"}, typesBatch())
	if got := readIcebird(t, tb); len(got) != 6 {
		t.Errorf("icebird reads %d rows after Append, want 6", len(got))
	}
	commit(t, tb, warehouse.Replace, typesSchema, records.Position{Cursor: "3"}, typesBatch())
	if got := readIcebird(t, tb); len(got) != 3 {
		t.Errorf("icebird reads %d rows after a second Replace, want 3", len(got))
	}
}
