#!/usr/bin/env bash
# Runs render-core's PostGIS tests against a throwaway PostgreSQL cluster
# that outlives them with --keep, to look at the data afterwards.
#
#   crates/render-core/tests/postgis.sh            # the PostGIS tests only
#   crates/render-core/tests/postgis.sh --keep     # leave the cluster running (prints how to stop it)
#
# Not needed to run the tests: `cargo test` (scripts/check.sh, CI) runs
# the PostGIS test on a cluster the test starts and stops itself
# (tests/integration/pg_cluster.rs), and fails if it cannot.
#
# Needs PostgreSQL's server binaries and PostGIS (Debian 12:
# `apt-get install -y postgresql postgresql-15-postgis-3`, which
# scripts/install-deps.sh does). Nothing is installed or
# configured system-wide: a new cluster is made in a temp dir under /tmp,
# listens only on a Unix socket in that dir (no TCP port), trusts local
# connections, and is stopped and deleted on exit (also on errors and
# Ctrl-C). Run as root, the cluster runs as the `postgres` user (initdb
# refuses root); otherwise as the current user.
#
# The test uses the database in TESSERA_TEST_PG (a libpq conninfo string)
# when it is set, instead of starting its own cluster. This script sets it.
set -euo pipefail

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

repo=$(cd "$(dirname "$0")/../../.." && pwd)
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
fi
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    echo "postgis.sh: PostgreSQL server binaries not found (apt-get install -y postgresql postgis)" >&2
    exit 2
fi

port=54329
dir=$(mktemp -d /tmp/tessera-pg.XXXXXX)
if [[ $(id -u) -eq 0 ]]; then
    owner=postgres
    run_as="runuser -u postgres -- "
    chown postgres: "$dir"
    as_owner() { runuser -u postgres -- "$@"; }
else
    owner=$(id -un)
    run_as=""
    as_owner() { "$@"; }
fi
chmod 700 "$dir"

cleanup() {
    local rc=$?
    if [[ $keep -eq 1 && $rc -eq 0 ]]; then
        echo "postgis.sh: cluster left running in $dir; stop it with:"
        echo "  ${run_as}$bindir/pg_ctl -D $dir/data stop -m fast && rm -rf $dir"
        echo "and connect with: psql -h $dir -p $port -U postgres tessera_test"
        return
    fi
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner timeout 60 "$bindir/pg_ctl" -D "$dir/data" stop -m fast -w -t 30 >/dev/null || true
    fi
    rm -rf "$dir"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "postgis.sh: new cluster in $dir (as $owner)"
as_owner timeout 120 "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
as_owner timeout 60 "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses='' -k $dir -p $port -c fsync=off" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }

psql_() { timeout 60 "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE tessera_test"
psql_ -d tessera_test -c "CREATE EXTENSION postgis" ||
    { echo "postgis.sh: CREATE EXTENSION postgis failed: is PostGIS installed for $bindir?" >&2; exit 1; }
psql_ -d tessera_test -At -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', PostGIS ' || postgis_lib_version()"

export TESSERA_TEST_PG="dbname=tessera_test host=$dir port=$port user=postgres"
echo "postgis.sh: TESSERA_TEST_PG=\"$TESSERA_TEST_PG\""
cd "$repo"
timeout 1800 cargo test -p render-core --test integration postgis -- --nocapture
