// Package roundtrip holds tests only: round trips from a source to a
// warehouse (the PostgreSQL source's snapshot reader into the PostgreSQL
// warehouse), checking that every type arrives as the source has it.
// They belong to neither side, and live here so that no package under
// warehouse/ imports a source provider, even in its tests.
package roundtrip
