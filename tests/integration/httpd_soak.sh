#!/usr/bin/env bash
# Integration test: weft-httpd runs clean under load with a short idle
# timeout and clients that reset.
#
#   httpd_soak.sh <dir holding weft-httpd>
#
# With -i 1 (every keep-alive connection meets its idle deadline often),
# wrk -c200 for 10 s must see no socket error (a request read and then
# dropped unanswered shows as a read error) and no non-2xx answer, while
# another client resets connections mid-request for the same 10 s.
# Afterwards the server's open fds return to what they were after a
# warm-up run, its RSS has not grown by more than 64 MiB over the
# warm-up's (not checked under AddressSanitizer, whose quarantine holds
# freed memory), and SIGTERM ends it with exit 0.  Every wait is bounded.
set -euo pipefail

tools=${1:?usage: httpd_soak.sh <tools/net build dir>}
httpd=$tools/weft-httpd
client=$(dirname "$0")/httpd_client.py
[[ -x $httpd ]] || { echo "FAIL: $httpd not built"; exit 1; }
command -v wrk >/dev/null || { echo "FAIL: wrk is not installed (tools/run deps)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed"; exit 1; }

. "$(dirname "$0")/httpd_lib.sh" # $tmp, $pid, fail

WEFT_WORKERS=2 "$httpd" -i 1 -H 2 -g 5 >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_port
url=http://127.0.0.1:$port/
echo "weft-httpd -i 1 (pid $pid) on port $port"

fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
# The build says (cmake/WeftTools.cmake); ldd is the fallback for a run
# by hand.
sanitized=0
if [[ -n ${WEFT_TEST_SANITIZE:-} ]] ||
	ldd "$httpd" 2>/dev/null | grep -q -E 'lib[at]san'; then
	sanitized=1
fi

run_wrk() {
	local secs=$1 out
	out=$(timeout $((secs + 60)) wrk -t1 -c200 -d"${secs}s" --timeout 10s "$url" 2>&1) ||
		fail "wrk failed: $out"
	echo "$out" | grep -E 'requests in|Socket errors|Non-2xx' || true
	if echo "$out" | grep -q -E 'Socket errors|Non-2xx'; then
		fail "wrk -c200 -d${secs}s reported errors: $out"
	fi
}

# Waits (bounded) until the server's fds are at most $1.
fds_settle() {
	local now
	for _ in $(seq 150); do
		now=$(fds)
		((now <= $1)) && return 0
		sleep 0.1
	done
	fail "fds: $now open, expected at most $1"
}

echo "== warm-up: wrk -c200 -d2s"
base_fds=$(fds)
run_wrk 2
fds_settle "$base_fds"
warm_rss=$(rss_kb)
echo "fds $base_fds, RSS ${warm_rss} KiB"

echo "== wrk -c200 -d10s, with reset clients"
python3 "$client" "$port" resets >"$tmp/resets" 2>&1 &
rpid=$!
run_wrk 10
wait "$rpid" || fail "reset clients: $(cat "$tmp/resets")"

echo "== fds and RSS"
fds_settle "$base_fds"
rss=$(rss_kb)
echo "fds $(fds) (baseline $base_fds), RSS ${rss} KiB (after warm-up ${warm_rss} KiB)"
((sanitized == 0)) || echo "(sanitizer build: RSS not judged)"
if ((sanitized == 0 && rss > warm_rss + 65536)); then
	fail "RSS grew from ${warm_rss} KiB to ${rss} KiB"
fi

stop_server
echo "PASS"
