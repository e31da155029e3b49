#!/usr/bin/env bash
# The I/O part of the demo (tools/run demo): starts weft-httpd, drives it
# with curl, wrk and weft-fetch, and shuts it down with SIGTERM.
#
#   net-demo.sh <dir holding weft-httpd and weft-fetch>
set -euo pipefail
tools=${1:?usage: net-demo.sh <tools/net build dir>}
out=$(mktemp)
err=$(mktemp)
pid=
cleanup() {
	[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
	rm -f "$out" "$err"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "weft-httpd: started with start()/started(), 2 workers"
WEFT_WORKERS=2 "$tools/weft-httpd" >"$out" 2>"$err" &
pid=$!
for _ in $(seq 100); do
	grep -q '^port=' "$out" 2>/dev/null && break
	sleep 0.05
done
port=$(sed -n 's/^port=//p' "$out")
[[ -n $port ]] || { cat "$err"; exit 1; }
echo "listening on 127.0.0.1:$port"

say "curl -i http://127.0.0.1:$port/"
curl -s -i "http://127.0.0.1:$port/"
echo

say "wrk -t1 -c100 -d2s (a real load generator)"
if command -v wrk >/dev/null; then
	wrk -t1 -c100 -d2s --latency "http://127.0.0.1:$port/" |
		grep -E 'Requests/sec|requests in|50%|99%'
else
	echo "(wrk not installed)"
fi

say "weft-fetch: concurrent GETs, one refused, one 404, 1 s per request"
free_port=$(( port == 65535 ? port - 1 : port + 1 ))
urls=()
for i in 1 2 3 4 5; do urls+=("http://127.0.0.1:$port/?n=$i"); done
urls+=("http://localhost:$port/" "http://127.0.0.1:$port/missing"
	"http://127.0.0.1:$free_port/")
WEFT_WORKERS=2 "$tools/weft-fetch" -c 4 -t 1 "${urls[@]}" || true

say "SIGTERM: stop accepting, finish, exit"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
cat "$err"
echo "weft-httpd exited with status $status"
exit "$status"
