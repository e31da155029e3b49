#!/usr/bin/env bash
# Integration test: weft-example-postgres (tools/examples/postgres.c)
# against a real PostgreSQL server of its own: initdb in a scratch folder,
# the server on a UNIX socket there, run as the `postgres` user (the tests
# run as root, which PostgreSQL refuses).
#
#   postgres.sh <dir holding weft-example-postgres>
#
# 100 tasks over a pool of 10 connections run pg_sleep(0.2) each, and
# PostgreSQL must see 10 at once; a pg_sleep(60) under a 300 ms
# fail_after is cancelled on the server and its connection reused; at
# "ready" the server is stopped (immediate mode: backends killed) while a
# query waits, and the example must report a clear error and exit 0.
set -euo pipefail

dir=${1:?usage: postgres.sh <dir holding weft-example-postgres>}
example=$dir/weft-example-postgres
[[ -x $example ]] || { echo "FAIL: $example not built"; exit 1; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -n $bin && -x $bin/initdb ]] ||
	{ echo "FAIL: PostgreSQL is not installed (tools/run deps)"; exit 1; }
id postgres >/dev/null 2>&1 ||
	{ echo "FAIL: no postgres user (Debian's postgresql package makes it)"; exit 1; }

tmp=$(mktemp -d)
chmod 755 "$tmp"
epid=
as_pg() {
	if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
	[[ -n $epid ]] && kill -KILL "$epid" 2>/dev/null || true
	as_pg "$bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "--- example output:"
	cat "$tmp/out" "$tmp/err" 2>/dev/null || true
	echo "--- server log (last 20 lines):"
	tail -n 20 "$tmp/pg.log" 2>/dev/null || true
	exit 1
}

[[ $(id -u) == 0 ]] && chown postgres "$tmp"
as_pg "$bin/initdb" -D "$tmp/data" -A trust -U postgres >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log"; fail "initdb failed"; }
as_pg "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w -t 30 \
	-o "-k $tmp -c listen_addresses='' -c fsync=off -c max_connections=40" \
	start >/dev/null || fail "the server did not start"

conninfo="host=$tmp port=5432 dbname=postgres user=postgres"
WEFT_WORKERS=2 timeout 120 "$example" "$conninfo" 100 10 >"$tmp/out" 2>"$tmp/err" &
epid=$!
for _ in $(seq 1200); do
	grep -q '^ready$' "$tmp/out" 2>/dev/null && break
	kill -0 "$epid" 2>/dev/null || break
	sleep 0.05
done
grep -q '^ready$' "$tmp/out" || fail "the example never got ready"
sleep 0.3 # the last query reaches the server
as_pg "$bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null ||
	fail "pg_ctl stop failed"
status=0
wait "$epid" || status=$?
epid=
cat "$tmp/out"
((status == 0)) || fail "weft-example-postgres exited with $status"
grep -q 'server closed the connection\|terminating connection' "$tmp/err" ||
	fail "no clear error for the server's death"
grep -q '^PASS$' "$tmp/out" || fail "no PASS"
echo "PASS"
