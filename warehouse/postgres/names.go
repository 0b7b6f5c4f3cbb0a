package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxIdentifierBytes is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// silently truncated by the server, so that two long names could land on
// one table.
const maxIdentifierBytes = 63

// hashSuffixBytes is the length of "_" and the hex digits that end a
// truncated name: 8 hex digits (32 bits) keep names that share their first
// 54 bytes apart.
const hashSuffixBytes = 1 + 8

// TableName is the PostgreSQL table name of a warehouse table: lowercase,
// every character outside [a-z0-9_] replaced by "_" (as the runner's names
// already are), and a name longer than 63 bytes cut to 54 bytes followed by
// "_" and 8 hex digits of a SHA-256 of the whole name, so that two names
// that differ only past the cut stay two tables.
func TableName(name string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, name)
	return truncateIdent(s, name)
}

// truncateIdent shortens s to an identifier PostgreSQL keeps whole; key is
// what the hash suffix is computed from (the name before any mapping, so
// that names mapped to the same long identifier still differ).
func truncateIdent(s, key string) string {
	if len(s) <= maxIdentifierBytes {
		return s
	}
	sum := sha256.Sum256([]byte(key))
	// s is ASCII after TableName's mapping; for other callers cut at a
	// character boundary.
	cut := maxIdentifierBytes - hashSuffixBytes
	for cut > 0 && !isCharStart(s[cut]) {
		cut--
	}
	return s[:cut] + "_" + hex.EncodeToString(sum[:4])
}

func isCharStart(b byte) bool { return b&0xC0 != 0x80 }

// derivedName is an identifier made from a table's name and a suffix
// (constraint and temporary table names), kept within 63 bytes.
func derivedName(table, suffix string) string {
	if len(table)+len(suffix) <= maxIdentifierBytes {
		return table + suffix
	}
	return truncateIdent(table+suffix, table+suffix)
}
