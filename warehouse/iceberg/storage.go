package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/io/gocloud/blobfs"
	_ "github.com/apache/iceberg-go/io/gocloud/gcs" // gs:// locations
	ices3 "github.com/apache/iceberg-go/io/gocloud/s3"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver of a postgres:// catalog
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// Uploads to S3 are multipart and streamed: a data or metadata file is cut
// into parts of uploadPartSize as it is written, at most uploadConcurrency
// parts are in flight, and the transfer manager pools concurrency+1 part
// buffers, so a file being written holds at most about
// (uploadConcurrency+2) × uploadPartSize = 32 MiB whatever its size. A
// file smaller than one part is a single PUT.
//
// On a failed upload (an error of the server, a cancelled context) the
// transfer manager aborts the multipart upload; uploadAbortTimeout gives
// that abort its own deadline, because the context of the upload is
// usually the cancelled one. Without it (gocloud's default) a cancelled
// sync would leave the upload open, its parts billed until a bucket
// lifecycle rule removes them.
const (
	uploadPartSize     = 8 << 20
	uploadConcurrency  = 2
	uploadAbortTimeout = time.Minute
)

// locationKind is where a warehouse keeps its files.
type locationKind int

const (
	localLocation locationKind = iota
	s3Location
	gcsLocation
)

// location is a parsed Options.Location.
type location struct {
	kind locationKind
	// url is what the catalog's "warehouse" property gets: an absolute
	// directory, or scheme://bucket[/prefix] without a trailing slash.
	url    string
	bucket string
}

// parseLocation reads Options.Location: a local directory (relative to the
// working directory) or file:// URL, s3:// (also s3a://, s3n://) or gs://.
func parseLocation(s string) (location, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		dir, err := filepath.Abs(s)
		if err != nil {
			return location{}, err
		}
		return location{kind: localLocation, url: dir}, nil
	}
	var kind locationKind
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(s)
		if err != nil || u.Host != "" && u.Host != "localhost" {
			return location{}, fmt.Errorf("location %q: a file URL is file:///absolute/path", s)
		}
		return location{kind: localLocation, url: filepath.Clean(u.Path)}, nil
	case "s3", "s3a", "s3n":
		kind, scheme = s3Location, "s3"
	case "gs":
		kind, scheme = gcsLocation, "gs"
	default:
		return location{}, fmt.Errorf("location %q: unsupported scheme %q; use a local directory, s3://bucket/prefix or gs://bucket/prefix", s, scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return location{}, fmt.Errorf("location %q names no bucket; write %s://bucket/prefix", s, scheme)
	}
	if strings.ContainsAny(bucket, "?#@:") || strings.ContainsAny(prefix, "?#") {
		// Not quoted: it may hold credentials.
		return location{}, fmt.Errorf("the %s:// location: write %s://bucket/prefix without credentials, port, query or fragment", scheme, scheme)
	}
	prefix = strings.Trim(prefix, "/")
	u := scheme + "://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return location{kind: kind, url: u, bucket: bucket}, nil
}

// ioProperties are the catalog's properties, which iceberg-go also hands
// to its FileIO: the warehouse location and the s3 block. They hold the
// secret key, so they are never logged or put in an error. iceberg-go
// writes none of them into table metadata (a table's properties are only
// those given to CreateTable), and the SQL catalog stores none of them.
func ioProperties(loc location, s S3Options) iceberggo.Properties {
	p := iceberggo.Properties{"warehouse": loc.url}
	if loc.kind != s3Location {
		return p
	}
	if s.Endpoint != "" {
		p[icebergio.S3EndpointURL] = s.Endpoint
	}
	if s.Region != "" {
		p[icebergio.S3Region] = s.Region
	}
	if s.AccessKeyID != "" {
		p[icebergio.S3AccessKeyID] = s.AccessKeyID
	}
	if s.SecretAccessKey != "" {
		p[icebergio.S3SecretAccessKey] = s.SecretAccessKey
	}
	p[icebergio.S3ForceVirtualAddressing] = strconv.FormatBool(!usePathStyle(s))
	return p
}

// usePathStyle: path-style addressing when the s3 block asks for it, and
// always for an endpoint on an IP address or localhost, where
// virtual-hosted addressing (bucket.host) cannot resolve.
func usePathStyle(s S3Options) bool {
	if s.PathStyle {
		return true
	}
	if s.Endpoint == "" {
		return false
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || net.ParseIP(h) != nil
}

// checkS3Config fails early, naming the fix, on an s3 block the AWS SDK
// cannot work with: half a key pair, or no region anywhere.
func checkS3Config(ctx context.Context, props iceberggo.Properties) error {
	if (props[icebergio.S3AccessKeyID] == "") != (props[icebergio.S3SecretAccessKey] == "") {
		return errors.New("the s3 block sets only one of access_key_id and secret_access_key: set both, or neither to use the AWS SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)")
	}
	cfg, err := ices3.ParseAWSConfig(ctx, props)
	if err != nil {
		return fmt.Errorf("loading the AWS configuration (AWS_* variables, ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		return errors.New("no S3 region: set region in the warehouse's s3 block, or AWS_REGION")
	}
	return nil
}

func init() {
	// iceberg-go's own s3 FileIO writes with gocloud's defaults; this one
	// is the same FileIO with the upload settings above (see
	// uploadPartSize). Registered for the schemes parseLocation accepts.
	for _, scheme := range []string{"s3", "s3a", "s3n"} {
		icebergio.Unregister(scheme)
		icebergio.Register(scheme, openS3IO)
	}
}

// openS3IO is the FileIO of an s3:// location: the AWS SDK's default
// chain, overridden by the s3.* properties.
func openS3IO(ctx context.Context, parsed *url.URL, props map[string]string) (icebergio.IO, error) {
	cfg, err := ices3.ParseAWSConfig(ctx, props)
	if err != nil {
		return nil, err
	}
	endpoint, ok := props[icebergio.S3EndpointURL]
	if !ok {
		endpoint = os.Getenv("AWS_S3_ENDPOINT")
	}
	pathStyle := endpoint != ""
	if v, err := strconv.ParseBool(props[icebergio.S3ForceVirtualAddressing]); err == nil {
		pathStyle = !v
	}
	client := awss3.NewFromConfig(*cfg, func(o *awss3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	bucket, err := s3blob.OpenBucketV2(ctx, client, parsed.Host, nil)
	if err != nil {
		return nil, err
	}
	fio := blobfs.New(ctx, bucket, blobfs.DefaultObjectLocationExtractor(parsed.Host, "s3", "s3a", "s3n"))
	return &s3IO{FileIO: fio, ctx: ctx, client: client}, nil
}

// s3IO is blobfs's FileIO whose Create streams with uploadPartSize parts
// and aborts failed multipart uploads.
type s3IO struct {
	*blobfs.FileIO
	ctx    context.Context
	client *awss3.Client
}

// Create opens a streaming writer; the upload completes at Close.
func (f *s3IO) Create(name string) (icebergio.FileWriter, error) {
	return f.FileIO.NewWriter(f.ctx, name, true, &blob.WriterOptions{
		BufferSize:     uploadPartSize,
		MaxConcurrency: uploadConcurrency,
		BeforeWrite:    f.tuneUpload,
	})
}

// tuneUpload replaces the transfer manager gocloud made for one upload
// with one that has the same part size and concurrency and, which gocloud
// cannot set, a multipart threshold of one part (so the first part is not
// buffered twice as large) and a timeout of its own for the abort.
func (f *s3IO) tuneUpload(as func(any) bool) error {
	var tm *transfermanager.Client
	if as(&tm) && tm != nil {
		*tm = *transfermanager.New(f.client, func(o *transfermanager.Options) {
			o.PartSizeBytes = uploadPartSize
			o.MultipartUploadThreshold = uploadPartSize
			o.Concurrency = uploadConcurrency
			o.FailTimeout = uploadAbortTimeout
		})
	}
	return nil
}

// catalogKind is the database of the SQL catalog.
type catalogKind int

const (
	sqliteCatalog catalogKind = iota
	postgresCatalog
)

// catalogDB is an opened catalog database.
type catalogDB struct {
	db   *sql.DB
	kind catalogKind
	// name is how errors name the catalog: the SQLite file, or the
	// PostgreSQL URL without its password.
	name string
	// path is the SQLite file.
	path string
}

// openCatalogDB opens the catalog database CatalogURL names (see
// Options.CatalogURL), or the default SQLite file of a local location.
func openCatalogDB(catalogURL string, loc location) (*catalogDB, error) {
	switch {
	case catalogURL == "":
		if loc.kind != localLocation {
			return nil, fmt.Errorf("no catalog for the object store location %s: set the warehouse's catalog.url (sqlite:///path/catalog.db or postgres://...)", loc.url)
		}
		return openSQLite(filepath.Join(loc.url, "catalog.db"))
	case strings.HasPrefix(catalogURL, "sqlite:"):
		p := strings.TrimPrefix(catalogURL, "sqlite:")
		if strings.HasPrefix(p, "//") {
			p = strings.TrimPrefix(p, "//") // sqlite:///abs → /abs; sqlite://rel → rel
		}
		if p == "" {
			return nil, errors.New("catalog URL sqlite: names no file; write sqlite:///abs/path.db or sqlite:relative.db")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		return openSQLite(abs)
	case strings.HasPrefix(catalogURL, "postgres://"), strings.HasPrefix(catalogURL, "postgresql://"):
		name := redactURL(catalogURL)
		db, err := sql.Open("pgx", catalogURL)
		if err != nil {
			// pgx's parse errors quote no password, but say which URL.
			return nil, fmt.Errorf("catalog %s: %w", name, err)
		}
		return &catalogDB{db: db, kind: postgresCatalog, name: name}, nil
	default:
		return nil, fmt.Errorf("catalog URL %q: use sqlite:///abs/path.db, sqlite:relative.db or postgres://user@host/db", redactURL(catalogURL))
	}
}

func openSQLite(path string) (*catalogDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	// The DSN is a URI: characters that would end the path are escaped.
	esc := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", "file:"+esc+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return &catalogDB{db: db, kind: sqliteCatalog, name: path, path: path}, nil
}

// redactURL is u with its password replaced by xxxxx, for messages; a
// string that does not parse is not shown at all.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an unparsable URL)"
	}
	if q := p.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		p.RawQuery = q.Encode()
	}
	return p.Redacted()
}
