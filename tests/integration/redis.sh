#!/usr/bin/env bash
# Integration test: weft-example-redis (tools/examples/redis.c) against a
# real redis-server of its own, on a UNIX socket in a scratch folder.
#
#   redis.sh <dir holding weft-example-redis>
#
# 100 tasks over a pool of 10 connections SET and GET their keys; a BLPOP
# under a 200 ms fail_after times out and the pool recovers; at "ready"
# this script kills the server (SIGKILL) while a command waits, and the
# example must report a clear error; then its supervised workers retry
# the dead server until this script starts a new one at "waiting for the
# server", and must all work again.  Exit 0.  Every wait is bounded.
set -euo pipefail

dir=${1:?usage: redis.sh <dir holding weft-example-redis>}
example=$dir/weft-example-redis
[[ -x $example ]] || { echo "FAIL: $example not built"; exit 1; }
command -v redis-server >/dev/null ||
	{ echo "FAIL: redis-server is not installed (tools/run deps)"; exit 1; }

tmp=$(mktemp -d)
rpid=
epid=
cleanup() {
	[[ -n $rpid ]] && kill -KILL "$rpid" 2>/dev/null || true
	[[ -n $epid ]] && kill -KILL "$epid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "--- example output:"
	cat "$tmp/out" "$tmp/err" 2>/dev/null || true
	echo "--- redis-server log (last 20 lines):"
	tail -n 20 "$tmp/redis.log" 2>/dev/null || true
	exit 1
}

sock=$tmp/redis.sock
start_server() {
	redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no \
		--dir "$tmp" --logfile "$tmp/redis.log" &
	rpid=$!
}
start_server
for _ in $(seq 200); do
	[[ -S $sock ]] && break
	sleep 0.05
done
[[ -S $sock ]] || fail "redis-server did not create $sock"

WEFT_WORKERS=2 timeout 60 "$example" "$sock" 100 10 >"$tmp/out" 2>"$tmp/err" &
epid=$!
for _ in $(seq 400); do
	grep -q '^ready$' "$tmp/out" 2>/dev/null && break
	kill -0 "$epid" 2>/dev/null || break
	sleep 0.05
done
grep -q '^ready$' "$tmp/out" || fail "the example never got ready"
# Let the last BLPOP reach the server, then kill it.
sleep 0.2
kill -KILL "$rpid"
wait "$rpid" 2>/dev/null || true
rpid=
# The supervised workers' connects are refused until a server is back.
for _ in $(seq 400); do
	grep -q '^waiting for the server$' "$tmp/out" 2>/dev/null && break
	kill -0 "$epid" 2>/dev/null || break
	sleep 0.05
done
grep -q '^waiting for the server$' "$tmp/out" ||
	fail "the supervised step never waited for the server"
sleep 0.2
start_server
status=0
wait "$epid" || status=$?
epid=
cat "$tmp/out"
((status == 0)) || fail "weft-example-redis exited with $status"
grep -q 'Server closed the connection' "$tmp/err" ||
	fail "no clear error for the server's death"
grep -q "^supervise: 3 workers back after" "$tmp/out" ||
	fail "the supervised workers did not come back"
grep -q '^supervise: worker: ECONNREFUSED: .* (restarting)$' "$tmp/err" ||
	fail "no refused connect was restarted"
grep -q '^PASS$' "$tmp/out" || fail "no PASS"
echo "PASS"
