#!/usr/bin/env bash
# Makes sure the PostgreSQL 15 server binaries that internal/pgtest runs are
# installed, and the "postgres" OS user it runs them as (PostgreSQL refuses
# to run as root). Idempotent: does nothing when they are already there.
#
# PGTEST_BINDIR, when set, names binaries installed some other way; then
# nothing is installed.
set -euo pipefail

default_bindir=/usr/lib/postgresql/15/bin

if [ -n "${PGTEST_BINDIR:-}" ]; then
	if [ -x "$PGTEST_BINDIR/initdb" ]; then
		exit 0
	fi
	echo "PGTEST_BINDIR=$PGTEST_BINDIR but $PGTEST_BINDIR/initdb does not exist; unset it to install postgresql-15 with apt-get" >&2
	exit 1
fi

# as_root runs a command as root: directly when we are root, else with sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "need root (or sudo) to run: $*" >&2
		return 1
	fi
}

if [ ! -x "$default_bindir/initdb" ]; then
	echo "PostgreSQL 15 server binaries not found; installing postgresql-15 with apt-get"
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "apt-get not found: install the PostgreSQL 15 server by hand and set PGTEST_BINDIR to its bin directory" >&2
		exit 1
	fi
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15
	if [ ! -x "$default_bindir/initdb" ]; then
		echo "postgresql-15 is installed but $default_bindir/initdb is still missing" >&2
		exit 1
	fi
	# The package creates and may start a cluster "15 main" on port 5432.
	# Tests use clusters of their own, so stop it: it only takes memory.
	if command -v pg_lsclusters >/dev/null 2>&1 &&
		pg_lsclusters --no-header 2>/dev/null | awk '$1 == "15" && $2 == "main" && $4 == "online" { found = 1 } END { exit !found }'; then
		as_root pg_ctlcluster 15 main stop || true
	fi
fi

# The package creates the user; make sure of it for binaries put there some
# other way. Only root needs it: others run the server as themselves.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /usr/sbin/nologin postgres
fi
