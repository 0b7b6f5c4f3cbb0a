#!/usr/bin/env bash
# A fleet of sluice runners on this machine, without Docker: one throwaway
# PostgreSQL 15 holds the source database (app), the state (sluice_state)
# and the warehouse (warehouse); three `sluice run` processes share the
# work of one configuration through the state database; `sluice status`
# shows who synced what; the runners stop on SIGTERM; everything is
# removed at the end (^C included).
#
#   make build && bash scripts/fleet-local.sh
#
# Settings (environment):
#   SLUICE=bin/sluice         the sluice binary (built with go build when missing)
#   RUNNERS=3                 how many runners to start
#   FLEET_SECONDS=20          how long they run before the status and the stop
#   FLEET_WAREHOUSE=postgres  or iceberg (Iceberg tables in a local directory,
#                             the catalog in the state database)
#   FLEET_KEEP=1              keep the work directory (configuration, logs)
#   PGTEST_BINDIR             PostgreSQL's bin directory (default /usr/lib/postgresql/15/bin;
#                             scripts/ensure-postgres.sh installs it)
#
# PostgreSQL refuses to run as root: as root, the server runs as the
# "postgres" user, as internal/pgtest does.
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
RUNNERS=${RUNNERS:-3}
FLEET_SECONDS=${FLEET_SECONDS:-20}
FLEET_WAREHOUSE=${FLEET_WAREHOUSE:-postgres}
BINDIR=${PGTEST_BINDIR:-/usr/lib/postgresql/15/bin}

case "$FLEET_WAREHOUSE" in
postgres | iceberg) ;;
*)
	echo "FLEET_WAREHOUSE=$FLEET_WAREHOUSE: use postgres or iceberg (a fleet refuses the local Parquet warehouse)" >&2
	exit 2
	;;
esac
if [ ! -x "$BINDIR/initdb" ]; then
	echo "$BINDIR/initdb not found: run scripts/ensure-postgres.sh (or set PGTEST_BINDIR)" >&2
	exit 1
fi
if [ ! -x "$SLUICE" ]; then
	echo "==> building $SLUICE"
	go build -o "$SLUICE" ./cmd/sluice
fi
SLUICE=$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")

# as_pg runs a PostgreSQL program in the cluster's directory: as the
# postgres user when we are root.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd "$pgdir" && runuser -u postgres -- "$@")
	else
		(cd "$pgdir" && "$@")
	fi
}

# free_port prints the first port from $1 up that nothing listens on.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
		p=$((p + 1))
	done
	echo "$p"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fleet.XXXXXX")
pgdir=$work/pg
cfg=$work/config
mkdir -p "$pgdir" "$cfg"
if [ "$(id -u)" -eq 0 ]; then
	chmod 711 "$work"
	chown postgres:postgres "$pgdir"
fi
pids=()
pg_started=
pause_pid=

# cleanup stops what is still running and removes the work directory.
cleanup() {
	local code=$?
	trap - EXIT INT TERM
	if [ -n "$pause_pid" ]; then
		kill "$pause_pid" 2>/dev/null || true
	fi
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$pg_started" ]; then
		as_pg "$BINDIR/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "${FLEET_KEEP:-}" ]; then
		echo "==> kept $work (FLEET_KEEP)"
	else
		rm -rf "$work"
	fi
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# pause sleeps in the background, so that ^C or SIGTERM ends the wait at
# once instead of after the sleep.
pause() {
	sleep "$1" &
	pause_pid=$!
	wait "$pause_pid"
}

port=$(free_port 54329)
echo "==> starting a throwaway PostgreSQL 15 on 127.0.0.1:$port (data in $pgdir)"
as_pg "$BINDIR/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log" >&2; exit 1; }
pg_started=1
as_pg "$BINDIR/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -s start \
	-o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c wal_level=logical -c fsync=off -c synchronous_commit=off -c max_connections=200" ||
	{ cat "$pgdir/postgres.log" >&2; exit 1; }

psql() { as_pg "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
for db in app sluice_state warehouse; do
	psql -d postgres -c "CREATE DATABASE $db"
done

echo "==> sample tables in database app: customers (cdc), orders (incremental), 12 items_NN (full_refresh)"
psql -d app <<'SQL'
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total numeric(12,2) NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON orders (updated_at);
INSERT INTO orders SELECT g, 1 + g % 1000, (g % 10000) / 100.0 FROM generate_series(1, 20000) g;
DO $$
BEGIN
	FOR i IN 1..12 LOOP
		EXECUTE format('CREATE TABLE items_%s (id int PRIMARY KEY, label text)', lpad(i::text, 2, '0'));
		EXECUTE format('INSERT INTO items_%s SELECT g, %L || g FROM generate_series(1, 5000) g', lpad(i::text, 2, '0'), 'item ');
	END LOOP;
END $$;
SQL

url() { echo "postgres://postgres@127.0.0.1:$port/$1?sslmode=disable"; }
export SLUICE_VAR_app_url SLUICE_VAR_state_url SLUICE_VAR_warehouse_url
SLUICE_VAR_app_url=$(url app)
SLUICE_VAR_state_url=$(url sluice_state)
SLUICE_VAR_warehouse_url=$(url warehouse)

if [ "$FLEET_WAREHOUSE" = postgres ]; then
	warehouse_block='warehouse {
  backend = "postgres"
  url     = var.warehouse_url
  schema  = "raw"
  sslmode = "disable"
}'
else
	warehouse_block='warehouse {
  backend   = "iceberg"
  path      = "lake" # beside the configuration; the catalog is the state database
  namespace = "sluice"
}'
fi

{
	cat <<'HCL'
# Written by scripts/fleet-local.sh. Every runner started with this
# configuration joins the fleet: runner { fleet = true } is the default
# with the postgres state backend.

variable "app_url" {
  type      = string
  sensitive = true
}

variable "state_url" {
  type      = string
  sensitive = true
}

variable "warehouse_url" {
  type      = string
  sensitive = true
}

state {
  backend = "postgres"
  url     = var.state_url
}

HCL
	echo "$warehouse_block"
	cat <<'HCL'

runner {
  concurrency = 2
}

source "postgres" "app" {
  prefix            = "app"
  connection_string = var.app_url
  sslmode           = "disable"
  frequency         = "1m"

  table "customers" {
    sync = "cdc"
  }

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }
HCL
	for i in $(seq -w 1 12); do
		printf '\n  table "items_%s" {\n    sync = "full_refresh"\n  }\n' "$i"
	done
	echo "}"
} >"$cfg/main.hcl"
"$SLUICE" -chdir="$cfg" fmt >/dev/null

echo "==> sluice apply -auto-approve"
"$SLUICE" -chdir="$cfg" -no-color apply -auto-approve | tail -n 3

echo "==> starting $RUNNERS runners: sluice run -id=runner-N -listen=127.0.0.1:PORT (logs in $work/runner-N.log)"
listen=18080
for n in $(seq 1 "$RUNNERS"); do
	listen=$(free_port $((listen + 1)))
	"$SLUICE" -chdir="$cfg" -no-color run -id="runner-$n" -listen="127.0.0.1:$listen" >"$work/runner-$n.log" 2>&1 &
	pids+=("$!")
	echo "    runner-$n: pid $!, http://127.0.0.1:$listen/healthz"
done

# Halfway, a change at the source for the cdc stream and the next
# incremental sync to carry.
pause $((FLEET_SECONDS / 2))
psql -d app -c "UPDATE customers SET name = name || ' (moved)', updated_at = now() WHERE id <= 10;
	INSERT INTO orders SELECT g, 1, 1.00 FROM generate_series(20001, 20100) g"
pause $((FLEET_SECONDS - FLEET_SECONDS / 2))

echo "==> runners after ${FLEET_SECONDS}s"
refused=0
exited=()
for n in $(seq 1 "$RUNNERS"); do
	pid=${pids[$((n - 1))]}
	if kill -0 "$pid" 2>/dev/null; then
		echo "    runner-$n: running"
	else
		exited+=("$n")
		code=0
		wait "$pid" || code=$?
		echo "    runner-$n: exited with status $code:"
		tail -n 5 "$work/runner-$n.log" | sed 's/^/        /'
		if grep -q 'holds the runner lock\|another sluice runner is running' "$work/runner-$n.log"; then
			refused=$((refused + 1))
		fi
	fi
done
if [ "$refused" -gt 0 ]; then
	echo "    $refused runner(s) refused to start beside another: this sluice has no fleet yet (one runner per state)."
fi

echo "==> sluice status"
"$SLUICE" -chdir="$cfg" -no-color status || true
if command -v python3 >/dev/null 2>&1; then
	echo "==> tables by the runner that last synced them (sluice status -json)"
	"$SLUICE" -chdir="$cfg" status -json | python3 -c '
import collections, json, sys
doc = json.load(sys.stdin)
by = collections.Counter(t.get("runner") or "(none yet)" for t in doc.get("tables", []))
for runner, n in sorted(by.items()):
    print("    %s: %d table(s)" % (runner, n))
for r in doc.get("runners") or []:
    print("    runner %s: pid %s on %s, %s, last heartbeat %s" % (r.get("id"), r.get("pid"), r.get("host"), r.get("state"), r.get("last_heartbeat")))
' || true
fi

echo "==> stopping the runners (SIGTERM)"
for n in $(seq 1 "$RUNNERS"); do
	kill -TERM "${pids[$((n - 1))]}" 2>/dev/null || true
done
for n in $(seq 1 "$RUNNERS"); do
	case " ${exited[*]} " in *" $n "*) continue ;; esac
	code=0
	wait "${pids[$((n - 1))]}" || code=$?
	echo "    runner-$n: exit status $code"
done
pids=()
echo "==> done; PostgreSQL and $work are removed on exit"
