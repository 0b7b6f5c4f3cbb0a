package config

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// attributeSamples give every source attribute a valid value that is not
// its default, so that TestEveryAttributeIsDecoded can tell it was read.
var attributeSamples = map[string]string{
	"prefix":                              `"pfx"`,
	"frequency":                           `"2h"`,
	"connection_string":                   `"postgres://u@db2/app"`,
	"host":                                `"db"`,
	"port":                                `6543`,
	"database":                            `"app"`,
	"user":                                `"reader"`,
	"password":                            `"pw"`,
	"schema":                              `"sales"`,
	"sslmode":                             `"verify-full"`,
	"sslrootcert":                         `"/ca.pem"`,
	"sslcert":                             `"/c.pem"`,
	"sslkey":                              `"/c.key"`,
	"connect_timeout":                     `"30s"`,
	"hash_salt":                           `"pepper"`,
	"ssh_tunnel.host":                     `"bastion"`,
	"ssh_tunnel.port":                     `2222`,
	"ssh_tunnel.user":                     `"jump"`,
	"ssh_tunnel.private_key":              `"KEY"`,
	"ssh_tunnel.password":                 `"tpw"`,
	"ssh_tunnel.passphrase":               `"phrase"`,
	"ssh_tunnel.known_hosts":              `"/kh"`,
	"ssh_tunnel.require_tls":              `true`,
	"ssh_tunnel.insecure_ignore_host_key": `true`,
	"cdc.management":                      `"self_managed"`,
	"cdc.publication":                     `"pub"`,
	"cdc.slot":                            `"slot"`,
	"cdc.lag_warning":                     `"2GB"`,
	"cdc.lag_critical":                    `"20GB"`,
	"cdc.auto_drop_slot":                  `false`,
	"api_key":                             `"sk_test_full"`,
	"api_base":                            `"http://127.0.0.1:12111"`,
	"webhook.url":                         `"https://sluice.example.com"`,
	"webhook.signing_secret":              `"whsec_x"`,
}

// sourceHCL writes a source block of typ setting the given attributes.
func sourceHCL(typ string, attrs []SourceAttribute) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source %q \"s\" {\n", typ)
	blocks := map[string][]string{}
	for _, a := range attrs {
		line := fmt.Sprintf("  %s = %s\n", a.Attr(), attributeSamples[a.Name])
		if blk := a.Block(); blk != "" {
			blocks[blk] = append(blocks[blk], line)
		} else {
			b.WriteString(line)
		}
	}
	names := make([]string, 0, len(blocks))
	for n := range blocks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s {\n%s  }\n", n, strings.Join(blocks[n], ""))
	}
	b.WriteString("  table \"t\" { sync = \"full_refresh\" }\n}\n")
	return b.String()
}

// TestEveryAttributeIsDecoded: every attribute of the one list
// (sourceAttributes) is accepted by its block's schema, decoded into the
// model and recorded by SourceSettings; secret ones are secret.
func TestEveryAttributeIsDecoded(t *testing.T) {
	for _, typ := range []string{"postgres", "stripe"} {
		t.Run(typ, func(t *testing.T) {
			var attrs, minimal []SourceAttribute
			for _, a := range sourceAttributes {
				if !containsString(a.Types, typ) {
					continue
				}
				if _, ok := attributeSamples[a.Name]; !ok {
					t.Fatalf("attribute %s has no sample value in attributeSamples", a.Name)
				}
				attrs = append(attrs, a)
				if a.Name == "api_key" {
					minimal = append(minimal, a)
				}
			}
			full, diags := load(t, sourceHCL(typ, attrs), Options{})
			if diags.HasErrors() {
				t.Fatalf("every attribute set:\n%s\n%v", sourceHCL(typ, attrs), diags)
			}
			base, diags := load(t, strings.Replace(sourceHCL(typ, minimal), "sk_test_full", "sk_test_min", 1), Options{})
			if diags.HasErrors() {
				t.Fatalf("defaults: %v", diags)
			}
			got, defaults := SourceSettings(full.Sources[0]), SourceSettings(base.Sources[0])
			for _, a := range attrs {
				if got[a.Name] == "" || got[a.Name] == defaults[a.Name] {
					t.Errorf("%s = %s was not decoded: recorded %q, %q by default", a.Name, attributeSamples[a.Name], got[a.Name], defaults[a.Name])
				}
				if a.Secret != IsSecretAttribute(a.Name) {
					t.Errorf("%s: Secret = %v, IsSecretAttribute = %v", a.Name, a.Secret, IsSecretAttribute(a.Name))
				}
				if a.Secret && !full.Sources[0].Sensitive[a.Name] {
					t.Errorf("%s is secret but the decoded source does not mark it sensitive", a.Name)
				}
			}
			for name := range got {
				if !containsString(attributeNames(attrs), name) {
					t.Errorf("SourceSettings records %s, which is not a %s attribute", name, typ)
				}
			}
		})
	}
}

func attributeNames(attrs []SourceAttribute) []string {
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = a.Name
	}
	return out
}
