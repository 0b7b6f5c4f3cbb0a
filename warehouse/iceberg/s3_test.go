package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/pgtest"
	"github.com/sluice-dev/sluice/internal/records"
	"github.com/sluice-dev/sluice/internal/s3test"
	"github.com/sluice-dev/sluice/warehouse"
)

// testStore is a place the warehouse tests run against; opts opens the
// same (at first empty) warehouse every time.
type testStore struct {
	name string
	opts Options
	// s3 and bucket are set for an S3 location.
	s3     *s3test.Server
	bucket string
}

// s3Options configures access to srv as the s3 block would.
func s3Options(srv *s3test.Server) S3Options {
	return S3Options{Endpoint: srv.URL, Region: srv.Region, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}
}

// localStore is a fresh local directory with the default SQLite catalog.
func localStore(t *testing.T) testStore {
	return testStore{name: "local", opts: Options{Location: t.TempDir()}}
}

// s3Store is a fresh bucket of the package's versitygw, the location a
// prefix in it, the catalog catalogURL (a SQLite file in a temporary
// directory when empty).
func s3Store(t *testing.T, catalogURL string) testStore {
	srv, bucket := s3test.NewBucket(t)
	if catalogURL == "" {
		catalogURL = "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")
	}
	return testStore{
		name:   "s3",
		opts:   Options{Location: "s3://" + bucket + "/lake/sluice", CatalogURL: catalogURL, S3: s3Options(srv)},
		s3:     srv,
		bucket: bucket,
	}
}

// forEachStore runs body against a fresh warehouse in a local directory
// and one on S3 (versitygw), as subtests named local and s3, so that a
// warehouse test written once covers both.
func forEachStore(t *testing.T, body func(t *testing.T, st testStore)) {
	t.Run("local", func(t *testing.T) { body(t, localStore(t)) })
	t.Run("s3", func(t *testing.T) { body(t, s3Store(t, "")) })
}

// open opens the store's warehouse (another Warehouse each call, as a new
// process would).
func (st testStore) open(t *testing.T) *Warehouse {
	t.Helper()
	w, err := Open(context.Background(), st.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// objectKeys lists the keys under the store's bucket (read from the
// gateway's directory), sorted.
func (st testStore) objectKeys(t *testing.T) []string {
	t.Helper()
	root := filepath.Join(st.s3.Dir(), st.bucket)
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".sgw") { // versitygw's own
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// The PostgreSQL server of the package's catalog tests, started on first
// use; its watchdog stops it when the test process exits.
var pgServer struct {
	once sync.Once
	c    *pgtest.Cluster
	err  error
	seq  atomic.Int64
}

// pgCatalogURL creates a fresh database on the package's PostgreSQL and
// returns its URL; it is dropped when the test ends.
func pgCatalogURL(t *testing.T) string {
	t.Helper()
	pgServer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pgServer.c, pgServer.err = pgtest.Start(ctx, pgtest.Options{})
	})
	if pgServer.err != nil {
		t.Fatal(pgServer.err)
	}
	name := fmt.Sprintf("catalog_%d_%d", os.Getpid(), pgServer.seq.Add(1))
	pgExec(t, pgServer.c.URL("postgres"), "CREATE DATABASE "+name)
	t.Cleanup(func() { pgExec(t, pgServer.c.URL("postgres"), "DROP DATABASE "+name+" WITH (FORCE)") })
	return pgServer.c.URL(name)
}

func pgExec(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// s3Client is an S3 client of srv, for what the tests check behind the
// warehouse's back.
func s3Client(srv *s3test.Server) *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       srv.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
}

// icebirdS3Reader is icebirdReader's S3 variant: fetch is shimmed to send
// s3://bucket/key (and https://bucket.s3.amazonaws.com/key, which icebird
// makes of s3:// URLs) to the gateway, path-style, signed with AWS
// Signature Version 4 (UNSIGNED-PAYLOAD: GET and HEAD only). argv: the
// endpoint, access key, secret key, region and the metadata file's URL.
const icebirdS3Reader = `
import { createHash, createHmac } from 'node:crypto'
import { icebergRead } from 'icebird'
const [endpoint, access, secret, region, metadataUrl] = process.argv.slice(2)
const realFetch = globalThis.fetch
const gateway = new URL(endpoint)
const objectOf = (u) => {
  let m
  if ((m = /^s3a?:\/\/([^/]+)\/(.*)$/.exec(u))) return [m[1], m[2]]
  if ((m = /^https:\/\/([^./]+)\.s3\.amazonaws\.com\/(.*)$/.exec(u))) return [m[1], m[2]]
  if ((m = /^https:\/\/s3\.amazonaws\.com\/([^/]+)\/(.*)$/.exec(u))) return [m[1], m[2]]
  return null
}
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
const hmac = (k, s) => createHmac('sha256', k).update(s).digest()
globalThis.fetch = async (url, init = {}) => {
  const obj = objectOf(String(url))
  if (!obj) return realFetch(url, init)
  const [bucket, key] = obj
  const path = '/' + enc(bucket) + '/' + key.split('/').map(enc).join('/')
  const method = init.method || 'GET'
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')
  const day = amzDate.slice(0, 8)
  const signed = { 'host': gateway.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': amzDate }
  const names = Object.keys(signed).sort()
  const canonical = [method, path, '', names.map((h) => h + ':' + signed[h] + '\n').join(''), names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n')
  const scope = day + '/' + region + '/s3/aws4_request'
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n')
  const key4 = hmac(hmac(hmac(hmac('AWS4' + secret, day), region), 's3'), 'aws4_request')
  const signature = createHmac('sha256', key4).update(toSign).digest('hex')
  const headers = new Headers(init.headers || {})
  headers.set('x-amz-date', amzDate)
  headers.set('x-amz-content-sha256', 'UNSIGNED-PAYLOAD')
  headers.set('authorization', 'AWS4-HMAC-SHA256 Credential=' + access + '/' + scope + ', SignedHeaders=' + names.join(';') + ', Signature=' + signature)
  const res = await realFetch(gateway.origin + path, { ...init, headers })
  if (!res.ok && res.status !== 206) throw new Error(method + ' ' + url + ': HTTP ' + res.status + ' ' + await res.text())
  return res
}
const metadata = await (await fetch(metadataUrl)).json()
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

// readIndependent reads tb's current snapshot with icebird, wherever the
// store keeps it, without _sluice_synced_at.
func readIndependent(t *testing.T, st testStore, tb *Table) []map[string]any {
	t.Helper()
	if st.s3 == nil {
		return readIcebird(t, tb)
	}
	modules := icebirdModules()
	if modules == "" {
		t.Fatal("icebird is not installed: run `bash scripts/ensure-icebird.sh` (make test does) or set SLUICE_TEST_ICEBIRD to the node_modules directory holding icebird")
	}
	dir := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "read.mjs")
	if err := os.WriteFile(script, []byte(icebirdS3Reader), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := st.s3
	cmd := exec.Command("node", script, srv.URL, srv.AccessKey, srv.SecretKey, srv.Region, tb.MetadataLocation())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("icebird on S3: %v\n%s", err, stderr.String())
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

// kvSimple is a key and a text value.
var kvSimple = &records.Schema{Columns: []records.Column{
	{Name: "k", Type: tInt64, SourceType: "bigint"},
	{Name: "v", Type: tText, SourceType: "text", Nullable: true},
}, PrimaryKey: []string{"k"}}

// kvBatch has a row per key, its value "v<key>" (NULL for key 0).
func kvSimpleBatch(keys ...int64) *records.Batch {
	b := records.NewBatch(kvSimple, len(keys))
	for _, k := range keys {
		b.Cols[0].AppendInt64(k)
		if k == 0 {
			b.Cols[1].AppendNull()
		} else {
			b.Cols[1].AppendString(fmt.Sprintf("v%d", k))
		}
		b.N++
	}
	return b
}

// kvRows is what icebird reads of kvSimpleBatch(keys...), in key order.
func kvSimpleRows(keys ...int64) []map[string]any {
	keys = append([]int64(nil), keys...)
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	rows := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		var v any
		if k != 0 {
			v = fmt.Sprintf("v%d", k)
		}
		rows = append(rows, map[string]any{"k": fmt.Sprintf("%dn", k), "v": v})
	}
	return rows
}

// sortRows orders icebird's rows by key (file order is not row order).
func sortRows(rows []map[string]any) []map[string]any {
	key := func(r map[string]any) int64 {
		var k int64
		s, _ := r["k"].(string)
		fmt.Sscanf(strings.TrimSuffix(s, "n"), "%d", &k)
		return k
	}
	sort.SliceStable(rows, func(i, j int) bool { return key(rows[i]) < key(rows[j]) })
	return rows
}

// TestStoresReplaceAppend: Replace, Append and Replace again, on a local
// directory and on S3; after each commit a reopened warehouse has the
// position and icebird reads the rows.
func TestStoresReplaceAppend(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		tb := openTable(t, st.open(t), "kv")
		steps := []struct {
			mode warehouse.Mode
			keys []int64
			pos  records.Position
			want []int64
		}{
			{warehouse.Replace, []int64{3, 1, 2}, records.Position{Cursor: "r1"}, []int64{1, 2, 3}},
			{warehouse.Append, []int64{0, 4}, records.Position{LSN: "0/16B3748", SnapshotDone: true}, []int64{0, 1, 2, 3, 4}},
			{warehouse.Replace, []int64{9}, records.Position{Cursor: "r2"}, []int64{9}},
		}
		for i, s := range steps {
			if n := commit(t, tb, s.mode, kvSimple, s.pos, kvSimpleBatch(s.keys...)); n != int64(len(s.want)) {
				t.Errorf("step %d: Commit says %d rows, want %d", i, n, len(s.want))
			}
			reopened := openTable(t, st.open(t), "kv")
			if pos, ok := reopened.Position(); !ok || !cmp.Equal(pos, s.pos) {
				t.Errorf("step %d: reopened position %+v (committed %v), want %+v", i, pos, ok, s.pos)
			}
			if diff := cmp.Diff(kvSimpleRows(s.want...), sortRows(readIndependent(t, st, reopened))); diff != "" {
				t.Errorf("step %d: icebird reads (-want +got):\n%s", i, diff)
			}
		}
	})
}

// TestS3Catalogs writes to S3 with the SQLite and the PostgreSQL catalog:
// the files land under <location>/<namespace>.db/<table>/, the catalog
// row points at them, the position survives a reopen, icebird reads the
// rows, and the secret key is nowhere in what was stored.
func TestS3Catalogs(t *testing.T) {
	for _, cat := range []string{"sqlite", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			var url string
			if cat == "postgres" {
				url = pgCatalogURL(t)
			}
			st := s3Store(t, url)
			w := st.open(t)
			// Not a plain identifier. The table is created at
			// tableLocation, as Table's first commit will.
			name := "orders 2024.ü%x"
			ident := table.Identifier{w.ns, name}
			if _, err := w.cat.CreateTable(context.Background(), ident, mustIcebergSchema(t, kvSimple), catalog.WithLocation(w.tableLocation(name)), catalog.WithProperties(iceberggo.Properties{"format-version": "2"})); err != nil {
				t.Fatal(err)
			}
			tb := openTable(t, w, name)
			commit(t, tb, warehouse.Replace, kvSimple, records.Position{Cursor: "1"}, kvSimpleBatch(1, 2))
			commit(t, tb, warehouse.Append, kvSimple, records.Position{Cursor: "2"}, kvSimpleBatch(3))

			wantPrefix := "s3://" + st.bucket + "/lake/sluice/sluice.db/"
			if loc := tb.MetadataLocation(); !strings.HasPrefix(loc, wantPrefix) {
				t.Errorf("metadata at %s, want under %s", loc, wantPrefix)
			}
			var data, meta int
			dir := "lake/sluice/sluice.db/orders~202024.~C3~BC~25x/"
			for _, k := range st.objectKeys(t) {
				switch {
				case strings.HasPrefix(k, dir+"data/") && strings.HasSuffix(k, ".parquet"):
					data++
				case strings.HasPrefix(k, dir+"metadata/"):
					meta++
				default:
					t.Errorf("object %s is outside the table's data/ and metadata/", k)
				}
			}
			if data != 2 || meta == 0 {
				t.Errorf("%d data files and %d metadata files, want 2 and some", data, meta)
			}

			reopened := openTable(t, st.open(t), name)
			if pos, ok := reopened.Position(); !ok || pos.Cursor != "2" {
				t.Errorf("reopened position %+v (%v), want cursor 2", pos, ok)
			}
			if diff := cmp.Diff(kvSimpleRows(1, 2, 3), sortRows(readIndependent(t, st, reopened))); diff != "" {
				t.Errorf("icebird reads (-want +got):\n%s", diff)
			}
			if got := len(scan(t, reopened)); got != 3 {
				t.Errorf("iceberg-go reads %d rows, want 3", got)
			}

			// No secret in the bucket, nor in a SQLite catalog.
			secret := st.opts.S3.SecretAccessKey
			for _, k := range st.objectKeys(t) {
				b, err := os.ReadFile(filepath.Join(st.s3.Dir(), st.bucket, k))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), secret) {
					t.Errorf("object %s holds the secret access key", k)
				}
			}
			if cat == "sqlite" {
				path := strings.TrimPrefix(st.opts.CatalogURL, "sqlite://")
				files, _ := filepath.Glob(path + "*")
				for _, f := range files {
					if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), secret) {
						t.Errorf("catalog file %s holds the secret access key", f)
					}
				}
			}
		})
	}
}

// TestS3FailedUploadAborted: an upload whose context is cancelled after
// its first parts were sent leaves no multipart upload open.
func TestS3FailedUploadAborted(t *testing.T) {
	st := s3Store(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := st.open(t)
	fio, err := icebergio.LoadFS(ctx, w.props, w.dir)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := fio.(icebergio.WriteFileIO).Create(w.dir + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := 0; i < 3*uploadPartSize/len(chunk); i++ { // three parts' worth
		if _, err := fw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	uploads := func() int {
		out, err := s3Client(st.s3).ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(st.bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	if n := uploads(); n != 1 {
		t.Fatalf("%d multipart uploads open while writing, want 1 (the upload is not streamed?)", n)
	}
	cancel()
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = fw.Write(chunk)
	}
	cerr := fw.Close()
	if werr == nil && cerr == nil {
		t.Fatal("an upload with a cancelled context succeeded")
	}
	if n := uploads(); n != 0 {
		t.Errorf("%d multipart uploads left open after the failed upload", n)
	}
	for _, k := range st.objectKeys(t) {
		if strings.HasSuffix(k, "big.bin") {
			t.Errorf("the failed upload left object %s", k)
		}
	}
}

// TestS3Check: Check passes on a writable bucket and names the fix for a
// missing bucket and for refused credentials.
func TestS3Check(t *testing.T) {
	ctx := context.Background()
	st := s3Store(t, "")
	if err := st.open(t).Check(ctx); err != nil {
		t.Fatalf("Check on a writable bucket: %v", err)
	}
	if keys := st.objectKeys(t); len(keys) != 0 {
		t.Errorf("Check left objects: %v", keys)
	}

	missing := st
	missing.opts.Location = "s3://no-such-bucket-" + randomHex(4) + "/lake"
	bucket := strings.TrimPrefix(strings.TrimSuffix(missing.opts.Location, "/lake"), "s3://")
	err := missing.open(t).Check(ctx)
	for _, want := range []string{"bucket \"" + bucket + "\" does not exist", "create it"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check of a missing bucket = %v, want it to say %q", err, want)
		}
	}

	bad := st
	bad.opts.S3.SecretAccessKey = "not-the-secret"
	err = bad.open(t).Check(ctx)
	for _, want := range []string{"refused the credentials", "s3 block", "AWS_ACCESS_KEY_ID"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check with a wrong secret = %v, want it to say %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("Check's error shows the secret: %v", err)
	}

	// Without keys in the s3 block, the AWS SDK's chain: here AWS_*.
	t.Run("env", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", st.s3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", st.s3.SecretKey)
		env := st
		env.opts.S3.AccessKeyID, env.opts.S3.SecretAccessKey = "", ""
		w := env.open(t)
		if err := w.Check(ctx); err != nil {
			t.Fatalf("Check with the keys in AWS_*: %v", err)
		}
		commit(t, openTable(t, w, "kv"), warehouse.Replace, kvSimple, records.Position{Cursor: "1"}, kvSimpleBatch(1))
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		if err := env.open(t).Check(ctx); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
			t.Errorf("Check with a wrong AWS_SECRET_ACCESS_KEY = %v, want refused credentials", err)
		}
	})

	unknown := st
	unknown.opts.S3.AccessKeyID = "nobody"
	if err := unknown.open(t).Check(ctx); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("Check with an unknown access key = %v, want refused credentials", err)
	}
}

// TestGCSLocationOpens: gs:// is supported as far as this machine can
// tell without a GCS server: Open accepts it, and Check fails naming the
// bucket and the credentials to check.
func TestGCSLocationOpens(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := Open(ctx, Options{Location: "gs://some-bucket/lake", CatalogURL: "sqlite://" + filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), `"some-bucket"`) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Check of gs:// without credentials = %v, want the bucket and credentials named", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Check of gs:// hung until the deadline")
	}
}

func mustIcebergSchema(t *testing.T, s *records.Schema) *iceberggo.Schema {
	t.Helper()
	sc, err := icebergSchema(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
