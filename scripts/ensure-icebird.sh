#!/usr/bin/env bash
# Makes sure icebird, the independent Iceberg reader (pure JavaScript, on
# hyparquet) the Iceberg warehouse's tests read tables back with, is
# installed under the user's cache directory, for the machine's Node.js.
# Idempotent. Prints the node_modules directory on its last line, which
# the tests take from SLUICE_TEST_ICEBIRD.
#
# hyparquet-compressors' gunzip cannot inflate the raw-deflate Avro
# manifests iceberg-go writes, so an npm override replaces it with a shim
# (hc-shim) that inflates with node:zlib and keeps the rest.
set -euo pipefail

version=0.3.1
dir="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/icebird-$version"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "installing Node.js and npm with apt-get" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >&2
fi

if [ ! -f "$dir/node_modules/icebird/package.json" ] || [ ! -f "$dir/node_modules/hyparquet-compressors/shim" ]; then
	echo "installing icebird@$version into $dir" >&2
	mkdir -p "$dir/hc-shim"
	cat >"$dir/package.json" <<JSON
{
  "name": "sluice-icebird",
  "private": true,
  "dependencies": { "icebird": "$version", "real-hc": "npm:hyparquet-compressors@1.1.2" },
  "overrides": { "hyparquet-compressors": "file:./hc-shim" }
}
JSON
	cat >"$dir/hc-shim/package.json" <<'JSON'
{ "name": "hyparquet-compressors", "version": "1.1.2-zlib", "type": "module", "main": "index.js",
  "exports": { ".": "./index.js" }, "dependencies": { "real-hc": "npm:hyparquet-compressors@1.1.2" } }
JSON
	cat >"$dir/hc-shim/index.js" <<'JS'
import { inflateRawSync, gunzipSync } from 'node:zlib'
import * as real from 'real-hc'
export * from 'real-hc'
export function gunzip(input, output) {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  const out = (input[0] === 31 && input[1] === 139) ? gunzipSync(buf) : inflateRawSync(buf)
  const u8 = new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  if (output) { output.set(u8); return output }
  return u8
}
export const compressors = { ...real.compressors, GZIP: (input, length) => { const o = new Uint8Array(length); return gunzip(input, o) } }
JS
	touch "$dir/hc-shim/shim"
	(cd "$dir" && npm install --no-audit --no-fund --silent --install-links >&2)
fi
echo "$dir/node_modules"
