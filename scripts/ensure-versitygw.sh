#!/usr/bin/env bash
# Makes sure versitygw, Versity's S3 gateway (Apache-2.0) that the S3 tests
# of warehouse/iceberg start on a loopback port in front of a temporary
# directory (internal/s3test), is installed where go install puts it
# ($(go env GOBIN), else $(go env GOPATH)/bin). Idempotent: does nothing when
# the pinned version is already there. Only the Go module proxy is needed.
# Prints the binary's path on its last line.
set -euo pipefail

version=v1.8.0
go=${GO:-go}
dir="$("$go" env GOBIN)"
if [ -z "$dir" ]; then
	dir="$("$go" env GOPATH | cut -d: -f1)/bin"
fi
bin="$dir/versitygw"

# The build information in the binary records the module version.
if [ -x "$bin" ] && "$go" version -m "$bin" 2>/dev/null | grep -q "github.com/versity/versitygw[[:space:]]*$version"; then
	echo "$bin"
	exit 0
fi

echo "installing github.com/versity/versitygw/cmd/versitygw@$version into $dir" >&2
# Outside the sluice module, so that its go.mod is not consulted or changed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && "$go" install "github.com/versity/versitygw/cmd/versitygw@$version")
if [ ! -x "$bin" ]; then
	echo "go install succeeded but $bin is missing (is GOBIN set?)" >&2
	exit 1
fi
echo "$bin"
