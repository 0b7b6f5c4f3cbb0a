#!/usr/bin/env bash
# Makes sure stripe-mock, the stateless Stripe API stand-in the tests of
# providers/stripe start on a loopback port, is installed where go install
# puts it ($(go env GOBIN), else $(go env GOPATH)/bin). Idempotent: does
# nothing when the pinned version is already there. Only the Go module proxy
# is needed. Prints the binary's path on its last line.
set -euo pipefail

version=v0.203.0
go=${GO:-go}
dir="$("$go" env GOBIN)"
if [ -z "$dir" ]; then
	dir="$("$go" env GOPATH | cut -d: -f1)/bin"
fi
bin="$dir/stripe-mock"

# stripe-mock -version prints "master" for a plain go install; the build
# information in the binary records the module version, so `go version -m`
# is what tells.
if [ -x "$bin" ] && "$go" version -m "$bin" 2>/dev/null | grep -q "github.com/stripe/stripe-mock[[:space:]]*$version"; then
	echo "$bin"
	exit 0
fi

echo "installing github.com/stripe/stripe-mock@$version into $dir" >&2
# Outside the sluice module, so that its go.mod is not consulted or changed.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && "$go" install "github.com/stripe/stripe-mock@$version")
if [ ! -x "$bin" ]; then
	echo "go install succeeded but $bin is missing (is GOBIN set?)" >&2
	exit 1
fi
echo "$bin"
