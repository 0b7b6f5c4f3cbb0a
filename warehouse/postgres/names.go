package postgres

import "github.com/sluice-dev/sluice/config"

// maxIdentifierBytes is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// silently truncated by the server, so that two long names could land on
// one table.
const maxIdentifierBytes = 63

// TableName is the PostgreSQL table name of a warehouse table
// (config.PostgresTableName): lowercase, characters outside [a-z0-9_]
// replaced by "_", and a name longer than 63 bytes cut and ended with a
// hash of the whole name. validate uses the same function to report two
// tables that would land on one name.
func TableName(name string) string { return config.PostgresTableName(name) }

// derivedName is an identifier made from a table's name and a suffix
// (constraint, index and temporary table names), kept within 63 bytes.
func derivedName(table, suffix string) string {
	if len(table)+len(suffix) <= maxIdentifierBytes {
		return table + suffix
	}
	return config.TruncateIdentifier(table+suffix, table+suffix)
}
