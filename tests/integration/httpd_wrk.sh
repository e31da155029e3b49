#!/usr/bin/env bash
# Integration test: weft-httpd under a real load generator (Debian's wrk)
# and under clients that disconnect mid-request, on loopback.
#
#   httpd_wrk.sh <dir holding weft-httpd>
#
# Checks: wrk reports no socket errors and no non-2xx answers at -c100 and
# -c1000; after hundreds of clients that hang up mid-request (half a
# request line, half the headers, a full request never read, garbage, an
# immediate close) the server still answers; its open fds return to the
# baseline once the clients are gone; SIGTERM closes an idle keep-alive
# connection at once and ends the server cleanly (exit 0).
# Every wait is bounded.
set -euo pipefail

tools=${1:?usage: httpd_wrk.sh <tools/net build dir>}
httpd=$tools/weft-httpd
[[ -x $httpd ]] || { echo "FAIL: $httpd not built"; exit 1; }
if ! command -v wrk >/dev/null; then
	echo "FAIL: wrk is not installed (tools/run deps installs it)"
	exit 1
fi

. "$(dirname "$0")/httpd_lib.sh" # $tmp, $pid, fail

WEFT_WORKERS=2 "$httpd" -i 10 -H 2 -g 30 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do
	grep -q '^port=' "$tmp/out" 2>/dev/null && break
	sleep 0.05
done
port=$(sed -n 's/^port=//p' "$tmp/out")
[[ -n $port ]] || fail "weft-httpd did not report its port"
url=http://127.0.0.1:$port/
echo "weft-httpd pid $pid on port $port"

fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
baseline=$(fds)
echo "fd baseline: $baseline"

# answer: the body of GET / through bash's /dev/tcp (no extra client).
answer() {
	local reply
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' >&3
	reply=$(timeout 5 cat <&3 || true)
	exec 3<&-
	[[ $reply == *"Hello, World!"* ]]
}

run_wrk() {
	local conns=$1 out
	out=$(timeout 60 wrk -t1 -c"$conns" -d3s --timeout 10s --latency "$url" 2>&1) ||
		fail "wrk -c$conns failed: $out"
	echo "$out" | grep -E 'Requests/sec|requests in| 99%|Max'
	if echo "$out" | grep -q -E 'Socket errors|Non-2xx'; then
		fail "wrk -c$conns reported errors: $out"
	fi
	local n
	n=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
	((n > 1000)) || fail "wrk -c$conns made only $n requests"
}

echo "== wrk -t1 -c100"
run_wrk 100
echo "== wrk -t1 -c1000"
run_wrk 1000

echo "== 400 clients hanging up mid-request"
rude() {
	local kind=$1
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 0
	case $kind in
	0) printf 'GET / HT' >&3 ;;
	1) printf 'GET / HTTP/1.1\r\nHost: t\r\nX-Half: ' >&3 ;;
	2) printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&3 ;;  # never read
	3) printf '\x01\x02garbage\r\n\r\n' >&3 ;;
	4) ;;                                                 # just close
	esac
	exec 3<&- 3>&-
}
# (A bare `wait` would also wait for the server: wait for these only.)
jobs_=()
for i in $(seq 400); do
	rude $((i % 5)) &
	jobs_+=($!)
	if ((i % 50 == 0)); then
		wait "${jobs_[@]}" || true
		jobs_=()
	fi
done
answer || fail "no answer after the rude clients"
echo "still answering"

echo "== fds back to baseline"
now=$(fds)
for _ in $(seq 100); do
	now=$(fds)
	((now <= baseline)) && break
	sleep 0.1
done
((now <= baseline)) || fail "fds: $now open, baseline $baseline"
echo "fds: $now (baseline $baseline)"

echo "== an idle keep-alive connection"
# Answered, then left open: phase one must close it at once, not leave
# it to the idle timeout (10 s) or the grace period (30 s).
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&3
IFS= read -r -t 5 status_line <&3 || fail "no answer on the keep-alive connection"
[[ $status_line == "HTTP/1.1 200"* ]] || fail "keep-alive answer: $status_line"
while IFS= read -r -t 5 line <&3 && [[ $line != $'\r' ]]; do :; done
IFS= read -r -t 5 -N 13 body <&3 || fail "no body on the keep-alive connection"
[[ $body == "Hello, World!" ]] || fail "keep-alive body: $body"

echo "== SIGTERM"
kill -TERM "$pid"
timeout 3 cat <&3 >/dev/null || fail "the idle connection was not closed at phase one"
exec 3<&-
status=0
for _ in $(seq 100); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
	fail "weft-httpd still running 5 s after SIGTERM (grace 30 s)"
fi
wait "$pid" || status=$?
pid=
((status == 0)) || fail "weft-httpd exited with $status"
cat "$tmp/err"
echo "PASS"
