#!/usr/bin/env bash
# Makes sure DuckDB, the independent reader the Parquet warehouse's tests
# query the warehouse with, is installed: the npm package @duckdb/node-api
# (which ships DuckDB's library) under the user's cache directory, for the
# machine's Node.js. Idempotent. Prints the node_modules directory on its
# last line, which the tests take from SLUICE_TEST_DUCKDB.
set -euo pipefail

version=1.5.6-r.1
dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/duckdb-$version"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "installing Node.js and npm with apt-get" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >&2
fi

if [ ! -f "$dir/node_modules/@duckdb/node-api/package.json" ]; then
	echo "installing @duckdb/node-api@$version into $dir" >&2
	mkdir -p "$dir"
	(cd "$dir" && npm install --no-audit --no-fund --silent "@duckdb/node-api@$version" >&2)
fi
echo "$dir/node_modules"
