package iceberg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"
)

// Check says, before anything is written, whether the catalog can be
// reached and written and whether the location exists and can be written,
// naming the fix when not. It writes nothing that stays: the catalog probe
// is rolled back, and the probe object under <location>/_sluice/ is
// deleted again.
func (w *Warehouse) Check(ctx context.Context) error {
	if err := w.checkCatalog(ctx); err != nil {
		return err
	}
	return w.checkLocation(ctx)
}

// checkCatalog: the namespace exists (Open created it) and a row can be
// inserted into and updated in both catalog tables, in a transaction that
// is rolled back.
func (w *Warehouse) checkCatalog(ctx context.Context) error {
	c := w.catalog
	if err := w.db.PingContext(ctx); err != nil {
		return fmt.Errorf("iceberg warehouse: cannot reach the catalog %s: %w%s", c.name, err, catalogHint(c, err))
	}
	exists, err := w.cat.CheckNamespaceExists(ctx, table.Identifier{w.ns})
	if err != nil {
		return fmt.Errorf("iceberg warehouse: reading namespace %q in the catalog %s: %w%s", w.ns, c.name, err, catalogHint(c, err))
	}
	if !exists {
		return fmt.Errorf("iceberg warehouse: namespace %q is missing from the catalog %s (removed since sluice opened it?): run sluice again to create it", w.ns, c.name)
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("iceberg warehouse: catalog %s: %w%s", c.name, err, catalogHint(c, err))
	}
	defer tx.Rollback()
	ph := func(i int) string {
		if c.kind == postgresCatalog {
			return fmt.Sprintf("$%d", i)
		}
		return "?"
	}
	probe := "_sluice_check_" + randomHex(8)
	stmts := []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value) VALUES (" + ph(1) + ", " + ph(2) + ", 'exists', 'true')", []any{catalogName, probe}},
		{"UPDATE iceberg_namespace_properties SET property_value = property_value WHERE catalog_name = " + ph(1) + " AND namespace = " + ph(2), []any{catalogName, probe}},
		{"INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location) VALUES (" + ph(1) + ", " + ph(2) + ", 'probe', 'probe')", []any{catalogName, probe}},
		{"UPDATE iceberg_tables SET metadata_location = metadata_location WHERE catalog_name = " + ph(1) + " AND table_namespace = " + ph(2), []any{catalogName, probe}},
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("iceberg warehouse: the catalog %s cannot be written: %w%s", c.name, err, catalogHint(c, err))
		}
	}
	return nil
}

// checkLocation writes a probe object under <location>/_sluice/ and
// deletes it.
func (w *Warehouse) checkLocation(ctx context.Context) error {
	fio, err := w.fileIO(ctx)
	if err != nil {
		return fmt.Errorf("iceberg warehouse: location %s: %w%s", w.dir, err, w.locationHint(err))
	}
	path := w.dir + "/_sluice/check-" + randomHex(8)
	if err := writeProbe(fio, path); err != nil {
		return fmt.Errorf("iceberg warehouse: cannot write to %s: %w%s", w.dir, err, w.locationHint(err))
	}
	if err := fio.Remove(path); err != nil {
		return fmt.Errorf("iceberg warehouse: wrote %s but cannot delete it (sluice deletes files no snapshot needs any more): %w%s", path, err, w.locationHint(err))
	}
	return nil
}

func writeProbe(fio icebergio.IO, path string) error {
	wf, ok := fio.(icebergio.WriteFileIO)
	if !ok {
		return errors.New("the location's file system cannot be written")
	}
	return wf.WriteFile(path, []byte("sluice write check\n"))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// catalogHint is what to do about a catalog error, as a sentence that
// starts with "; ", or "".
func catalogHint(c *catalogDB, err error) string {
	if err == nil {
		return ""
	}
	if c.kind == sqliteCatalog {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "readonly") || strings.Contains(msg, "read-only") || strings.Contains(msg, "permission denied") || strings.Contains(msg, "unable to open"):
			return fmt.Sprintf("; make %s and its directory writable by the user sluice runs as, or point catalog.url elsewhere", c.path)
		case strings.Contains(msg, "locked") || strings.Contains(msg, "busy"):
			return "; another process holds the SQLite catalog's write lock for long: is a second sluice writing to it?"
		}
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return "; check the user and password in catalog.url"
		case "3D000":
			return "; create the database (CREATE DATABASE ...) or fix catalog.url"
		case "42501":
			return "; the catalog's user needs CREATE on the schema (for the first run) and SELECT, INSERT, UPDATE, DELETE on iceberg_tables and iceberg_namespace_properties: GRANT SELECT, INSERT, UPDATE, DELETE ON iceberg_tables, iceberg_namespace_properties TO <user>"
		case "25006":
			return "; the server is read-only (a standby?): point catalog.url at the primary"
		}
		return ""
	}
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connect") {
		return "; is PostgreSQL running and reachable at the host and port of catalog.url?"
	}
	return ""
}

// locationHint is what to do about an object store error, as a sentence
// that starts with "; ", or "".
func (w *Warehouse) locationHint(err error) string {
	if w.loc.kind == localLocation {
		if strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "read-only") {
			return fmt.Sprintf("; make %s writable by the user sluice runs as", w.dir)
		}
		return ""
	}
	if w.loc.kind == gcsLocation {
		return fmt.Sprintf("; check that bucket %q exists and that Google's application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login) may write objects in it", w.loc.bucket)
	}
	creds := "check the warehouse's s3 block (access_key_id, secret_access_key) or, without one, the AWS SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)"
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Sprintf("; bucket %q does not exist: create it (e.g. aws s3 mb s3://%s) or fix the warehouse path", w.loc.bucket, w.loc.bucket)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "InvalidClientTokenId", "XAdminUserNotFound":
			return "; S3 refused the credentials: " + creds
		case "AccessDenied", "Forbidden", "AllAccessDisabled":
			return fmt.Sprintf("; the credentials may not write to %s: grant s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on bucket %q, or %s", w.dir, w.loc.bucket, creds)
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
			return fmt.Sprintf("; bucket %q is in another region: set region in the s3 block (or AWS_REGION) to the bucket's region", w.loc.bucket)
		}
		return ""
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role") || strings.Contains(msg, "static credentials are empty"):
		return "; no AWS credentials found: " + creds
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout"):
		return "; cannot reach the S3 endpoint: check endpoint in the s3 block (or AWS_ENDPOINT_URL_S3) and the network"
	}
	return ""
}
