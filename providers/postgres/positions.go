package postgres

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/sluice-dev/sluice/providers"
)

// A PostgreSQL stream position is an LSN, its ordinal the LSN's 64 bits,
// its text the form PostgreSQL writes ("16/B374D848", what
// pglogrepl.LSN.String gives and what warehouses have always stored).

// DecodePosition reads an LSN as PostgreSQL writes it; "" is the zero
// position.
func (p *Provider) DecodePosition(s string) (providers.StreamPosition, error) {
	return decodeLSN(s)
}

// EncodePosition writes an LSN as PostgreSQL does ("0/0" for the zero
// position).
func (p *Provider) EncodePosition(pos providers.StreamPosition) string {
	return encodeLSN(pos)
}

// decodeLSN is DecodePosition without a provider. It accepts what
// pg_lsn accepts: two groups of 1 to 8 hex digits around a slash.
func decodeLSN(s string) (providers.StreamPosition, error) {
	if s == "" {
		return providers.StreamPosition{}, nil
	}
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := parseHex32(hi)
	l, err2 := parseHex32(lo)
	if !ok || err1 != nil || err2 != nil {
		return providers.StreamPosition{}, fmt.Errorf("%q is not an LSN (PostgreSQL writes them as 16/B374D848)", s)
	}
	return providers.NewStreamPosition(h<<32 | l), nil
}

func parseHex32(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 8 || strings.ContainsAny(s, "+-_xX") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 16, 32)
}

// encodeLSN is EncodePosition without a provider.
func encodeLSN(pos providers.StreamPosition) string {
	return pglogrepl.LSN(pos.Uint64()).String()
}
