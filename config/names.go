package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// prefixPattern is what a prefix must look like: it starts every warehouse
// table name, which must be a plain lowercase identifier everywhere.
var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// slotPattern is PostgreSQL's own rule for replication slot names.
var slotPattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// maxIdentifierBytes is PostgreSQL's NAMEDATALEN-1.
const maxIdentifierBytes = 63

// ParseTableName splits a table label into schema and table. A dot separates
// schema from table; double quotes protect dots and quotes inside a part
// ("a""b" is a"b), as in SQL. Unquoted parts are taken exactly as written:
// sluice never folds case, so "Orders" names the table Orders.
func ParseTableName(s string) (schema, table string, err error) {
	var parts []string
	var cur strings.Builder
	quoted, inQuotes, i := false, false, 0
	for i < len(s) {
		c := s[i]
		switch {
		case inQuotes && c == '"' && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"' && (inQuotes || cur.Len() == 0):
			inQuotes = !inQuotes
			quoted = true
		case c == '"':
			return "", "", fmt.Errorf("table name %q has a stray double quote; quote a whole part, as in \"sales\".\"Order Items\"", s)
		case c == '.' && !inQuotes:
			parts = append(parts, cur.String())
			cur.Reset()
			quoted = false
		default:
			if quoted && !inQuotes {
				return "", "", fmt.Errorf("table name %q has text after a closing quote", s)
			}
			cur.WriteByte(c)
		}
		i++
	}
	if inQuotes {
		return "", "", fmt.Errorf("table name %q has an unterminated double quote", s)
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		if p == "" {
			return "", "", fmt.Errorf("table name %q has an empty part; write \"table\" or \"schema.table\"", s)
		}
		if len(p) > maxIdentifierBytes {
			return "", "", fmt.Errorf("%q is longer than PostgreSQL's limit of %d bytes", p, maxIdentifierBytes)
		}
	}
	switch len(parts) {
	case 1:
		return "", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("table name %q has more than two parts; write \"table\" or \"schema.table\" (quote a part that contains a dot)", s)
}

// WarehouseName is the name of the warehouse table a source table lands in:
// <prefix>_<table> for tables in the source's schema, and
// <prefix>_<schema>_<table> otherwise, lowercased with every character
// outside [a-z0-9_] replaced by "_".
func WarehouseName(prefix, sourceSchema, schema, table string) string {
	name := prefix + "_"
	if schema != "" && schema != sourceSchema {
		name += schema + "_"
	}
	return sanitizeName(name + table)
}

// WarehouseName is the warehouse table this table lands in.
func (t *Table) WarehouseName(s *Source) string {
	schema := ""
	if s.Postgres != nil {
		schema = s.Postgres.Schema
	}
	return WarehouseName(s.Prefix, schema, t.Schema, t.Table)
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// defaultResourceName makes a publication or slot name from a source name,
// which may hold characters PostgreSQL's slot names do not allow.
func defaultResourceName(prefix, sourceName string) string {
	n := sanitizeName(prefix + sourceName)
	if len(n) > maxIdentifierBytes {
		n = n[:maxIdentifierBytes]
	}
	return n
}

// QualifiedName renders schema and table as "schema.table", the form
// publications are recorded in, double-quoting a part that holds a dot or a
// double quote so that ParseTableName splits it back exactly.
func QualifiedName(schema, table string) string {
	q := func(s string) string {
		if strings.ContainsAny(s, `."`) {
			return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
		}
		return s
	}
	if schema == "" {
		return q(table)
	}
	return q(schema) + "." + q(table)
}

// HistorySuffix ends the name of a cdc table's history table
// (<prefix>_<table>_cdc, SPEC §4).
const HistorySuffix = "_cdc"

// HistoryName is the history table of a cdc table whose cdc_output keeps
// one, "" for any other table.
func (t *Table) HistoryName(s *Source) string {
	if t.Sync != SyncCDC || !t.CDCOutput.WritesHistory() {
		return ""
	}
	return t.WarehouseName(s) + HistorySuffix
}

// LandingNames are the warehouse tables a source table writes: its own,
// and for a cdc table the history table (cdc_output "history" or "both";
// "history" alone has no consolidated table).
func (t *Table) LandingNames(s *Source) []string {
	wh := t.WarehouseName(s)
	switch {
	case t.Sync != SyncCDC:
		return []string{wh}
	case t.CDCOutput == CDCHistory:
		return []string{t.HistoryName(s)}
	case t.CDCOutput == CDCBoth:
		return []string{wh, t.HistoryName(s)}
	}
	return []string{wh}
}

// hashSuffixBytes is the length of "_" and the hex digits that end a
// truncated identifier: 8 hex digits (32 bits) keep names that share
// their first 54 bytes apart.
const hashSuffixBytes = 1 + 8

// PostgresTableName is the table a warehouse table is in a PostgreSQL
// warehouse: the name lowercased, every character outside [a-z0-9_]
// replaced by "_" (warehouse names already are), and a name longer than 63
// bytes, which PostgreSQL would silently cut, cut to 54 bytes followed by
// "_" and 8 hex digits of a SHA-256 of the whole name, so that two names
// that differ only past the cut stay two tables.
func PostgresTableName(name string) string {
	return TruncateIdentifier(sanitizeName(name), name)
}

// TruncateIdentifier shortens s to an identifier PostgreSQL keeps whole
// (see PostgresTableName); key is what the hash suffix is computed from.
func TruncateIdentifier(s, key string) string {
	if len(s) <= maxIdentifierBytes {
		return s
	}
	sum := sha256.Sum256([]byte(key))
	cut := maxIdentifierBytes - hashSuffixBytes
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut-- // not in the middle of a UTF-8 character
	}
	return s[:cut] + "_" + hex.EncodeToString(sum[:4])
}
