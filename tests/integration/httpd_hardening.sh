#!/usr/bin/env bash
# Integration test: weft-httpd against malformed, pipelined, trickled and
# failing clients (tests/integration/httpd_client.py, plain sockets).
#
#   httpd_hardening.sh <dir holding weft-httpd>
#
# Checks, each with a bounded wait:
#   - HEAD answers the GET head (Content-Length: 13) and no body; 405
#     carries Allow; HTTP/1.1 without exactly one Host, or a field name
#     with a space, is 400; a 9 KiB head of short fields or 8 KiB of empty
#     lines is 431 (the whole head counts); chunk lines and the CRLF after
#     chunk data are checked as RFC 9112 says;
#   - a request pipelined after an Upgrade or CONNECT request is not left
#     unanswered: the first is answered with "Connection: close" and the
#     connection closes;
#   - empty lines before a request, a head, a body and chunks trickled
#     every 0.5 s are all closed by the 2 s head/body deadlines;
#   - a connection whose handler fails (-F, GET /fail) is closed and
#     logged once, and the other connections and the server go on;
#   - at a low fd limit, 150 idle connections do not lock a new client out
#     (idle connections are shed when accept fails with EMFILE);
#   - connections idle for RELEASE_S (-R 1) wait with their stacks given
#     back (a dump shows "stack=released" for each) and are answered
#     again; with -R 0 none is;
#   - both servers end with exit 0 at SIGTERM.
set -euo pipefail

tools=${1:?usage: httpd_hardening.sh <tools/net build dir>}
httpd=$tools/weft-httpd
client=$(dirname "$0")/httpd_client.py
[[ -x $httpd ]] || { echo "FAIL: $httpd not built"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 is not installed"; exit 1; }

. "$(dirname "$0")/httpd_lib.sh" # $tmp, $pid, fail

# start_server ARGS...: runs weft-httpd in the background; sets pid, port.
start_server() {
	: >"$tmp/out"
	WEFT_WORKERS=2 "$httpd" "$@" >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	wait_port
	echo "weft-httpd $* (pid $pid) on port $port"
}

echo "== protocol details, timeouts, a failing handler"
start_server -i 30 -H 2 -B 2 -F -g 5
python3 "$client" "$port" head 405 host head_size chunks upgrade trickle fail ||
	fail "checks failed"
n=$(grep -c 'connection failed' "$tmp/err" || true)
((n == 1)) || fail "the failed connection was logged $n times, not once"
stop_server

echo "== idle connections at the fd limit"
# The limit is the server's only (a subshell); its clients live in
# python3, which keeps the default.  (Emptied first: the wait below must
# not read the first server's port.)
: >"$tmp/out"
(
	ulimit -n 64
	exec env WEFT_WORKERS=2 "$httpd" -i 60 -g 5 >"$tmp/out" 2>"$tmp/err"
) &
pid=$!
port=
for _ in $(seq 200); do
	port=$(sed -n 's/^port=//p' "$tmp/out" 2>/dev/null || true)
	[[ -n $port ]] && break
	sleep 0.05
done
[[ -n $port ]] || fail "weft-httpd (ulimit -n 64) did not report its port"
python3 "$client" "$port" shed || fail "checks failed"
stop_server

echo "== idle connections give their stacks back"
for release in 1 0; do
	WEFT_DUMP_SIGNAL=USR1 start_server -R "$release" -i 60 -g 5
	HTTPD_PID=$pid python3 "$client" "$port" idle_release ||
		fail "checks failed"
	# Parked in a read (-R 0) or in a light wait (-R 1).
	n=$(grep -cE 'op="stream (read|wait)"' "$tmp/err" || true)
	r=$(grep -E 'op="stream (read|wait)"' "$tmp/err" |
		grep -c 'stack=released' || true)
	if ((release == 1)); then
		((n >= 20 && r >= 20)) ||
			fail "-R 1: $r of $n waits in the dump released their stack (want 20)"
	else
		((n >= 20 && r == 0)) ||
			fail "-R 0: $r of $n waits in the dump released their stack (want 0)"
	fi
	stop_server
done
echo "PASS"
