// Package codec is sluice's one PostgreSQL type registry and codec, shared
// by the PostgreSQL source (providers/postgres) and the PostgreSQL
// warehouse (warehouse/postgres): which Parquet type a PostgreSQL type
// maps to and back, and every value in both formats (binary and text) and
// both directions (decoded into record batches for the source's
// snapshots, cursor reads and CDC, and the warehouse's read-backs;
// encoded from them for the warehouse's COPY).
//
// It is a package of its own, beside internal/pg (connections), because
// it needs no connection, no configuration and no network: it works on
// bytes and record batches only, so its tests and fuzzers run without an
// SSH server or TLS certificates, and a package that only encodes or
// decodes values (a future warehouse, a benchmark) does not link SSH and
// the libpq conventions.
//
// The layout follows pgtype's, one file per type family, each holding
// that family's forms in both formats and both directions:
//
//	bool.go, int.go, float.go   boolean; smallint, integer, bigint; real, double
//	numeric.go                  numeric and DECIMAL (128-bit unscaled values)
//	datetime.go                 date, time, timestamp, timestamptz
//	text.go                     text, bytea, uuid, json and jsonb
//	array.go                    one-dimensional arrays (LIST)
//
// and around them what picks and drives the family code:
//
//	types.go      the type registry: PostgreSQL type -> Parquet type (MapType)
//	              and back (ColumnType), as Atlas keeps one registry
//	catalog.go    pg_type rows resolved into PGType values
//	decoder.go    binary values -> batch (Decoder, ColumnDecoder)
//	exact.go      binary values -> exact text, for what Parquet cannot hold
//	textdecoder.go text values -> batch (TextDecoder, SessionSettings)
//	encoder.go    batch -> binary or text values (BinaryEncoder, TextEncoder)
//	copy.go       COPY framing, both directions
package codec
