package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns the canonical formatting of one configuration file. A file
// that does not parse is returned unchanged with its diagnostics: formatting
// broken syntax could move text the user has not finished writing.
func Format(src []byte, name string) ([]byte, hcl.Diagnostics) {
	if _, diags := ParseSource(src, name); diags.HasErrors() {
		return src, diags
	}
	return hclwrite.Format(src), nil
}
