#!/usr/bin/env bash
# tools/net/soak.sh <dir holding weft-httpd> [minutes]: a long soak of
# weft-httpd (`tools/run soak` builds it and calls this).
#
# The server runs with 2 workers, short timeouts (-i 2 -H 2 -B 2) and an
# fd limit of 256.  After a warm-up (wrk -c100 for 30 s), rounds of one
# minute each until the time is up: wrk -t1 -c100 for 50 s, and, at the
# same time, clients that reset connections mid-request and clients
# that trickle bytes until the server times them out
# (tests/integration/httpd_client.py resets, slow); every third round
# also 150 idle connections, which with wrk's 100 reach the fd limit
# (the server must shed, not stop).  After each round a plain request
# must be answered within 5 s, and the script prints one line: elapsed
# time, requests served and socket errors (wrk's, this round), RSS and
# open fds (after the round's connections closed).
#
# Fails (exit 1) when the server stops answering or dies, when its open
# fds do not return to the warm-up's figure after a round, or when its
# RSS at the end exceeds the warm-up's by more than 64 MiB.  wrk's socket
# errors are reported, not judged: at the fd limit refusals are the
# expected answer.  SIGTERM at the end must stop the server with exit 0.
set -euo pipefail

dir=${1:?usage: soak.sh <dir holding weft-httpd> [minutes]}
minutes=${2:-30}
[[ $minutes =~ ^[0-9]+$ ]] && ((minutes >= 1)) ||
	{ echo "soak.sh: minutes must be a whole number >= 1" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
client=$here/../../tests/integration/httpd_client.py
httpd=$dir/weft-httpd
[[ -x $httpd ]] || { echo "FAIL: $httpd not built"; exit 1; }
for tool in wrk curl python3; do
	command -v "$tool" >/dev/null ||
		{ echo "FAIL: $tool is not installed (tools/run deps)"; exit 1; }
done

. "$here/../../tests/integration/httpd_lib.sh" # $tmp, $pid, fail

(
	ulimit -n 256
	WEFT_WORKERS=2 exec "$httpd" -i 2 -H 2 -B 2 -g 5
) >"$tmp/out" 2>"$tmp/err" &
pid=$!
wait_port
url=http://127.0.0.1:$port/

fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
alive() { kill -0 "$pid" 2>/dev/null || fail "weft-httpd died"; }

# Waits (bounded: 30 s) until the server's fds are at most $1.
fds_settle() {
	local now
	for _ in $(seq 300); do
		now=$(fds)
		((now <= $1)) && return 0
		sleep 0.1
	done
	fail "fds: $now open 30 s after the round, expected at most $1"
}

answers() {
	local code
	code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url") || true
	[[ $code == 200 ]] || fail "no answer to a plain request (HTTP '$code')"
}

# wrk for $1 seconds; prints "<requests> <socket errors>".
run_wrk() {
	local out req err
	out=$(timeout $(($1 + 60)) wrk -t1 -c100 -d"$1s" --timeout 10s "$url" 2>&1) ||
		fail "wrk failed: $out"
	req=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
	err=$(echo "$out" | sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' |
		awk '{ print $1 + $2 + $3 + $4 }')
	echo "${req:-0} ${err:-0}"
}

start=$(date +%s)
line() {
	printf '%-10s %7ss %10s req %7s err %8s KiB RSS %5s fds\n' "$1" \
		$(($(date +%s) - start)) "$2" "$3" "$(rss_kb)" "$(fds)"
}
echo "weft-httpd (pid $pid) on port $port, fd limit 256, $minutes min"
line start - -

read -r req err < <(run_wrk 30)
alive
answers
base_fds=$(fds)
fds_settle "$base_fds"
warm_rss=$(rss_kb)
line warm-up "$req" "$err"

total_req=0
total_err=0
round=0
end=$((start + minutes * 60))
while (($(date +%s) + 60 <= end)); do
	round=$((round + 1))
	CLIENT_SECS=50 python3 "$client" "$port" resets slow >"$tmp/clients" 2>&1 &
	cpid=$!
	idle_pid=
	if ((round % 3 == 0)); then
		python3 - "$port" >/dev/null 2>&1 <<'EOF' &
import socket, sys, time
idle = []
for _ in range(150):
    try:
        idle.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5))
    except OSError:
        time.sleep(0.05)
time.sleep(20)
EOF
		idle_pid=$!
	fi
	read -r req err < <(run_wrk 50)
	wait "$cpid" || fail "clients: $(cat "$tmp/clients")"
	[[ -z $idle_pid ]] || wait "$idle_pid" || true
	alive
	answers
	fds_settle "$base_fds"
	total_req=$((total_req + req))
	total_err=$((total_err + err))
	line "round $round" "$req" "$err"
done

rss=$(rss_kb)
echo "total: $total_req requests, $total_err socket errors in $round rounds;" \
	"RSS ${warm_rss} -> ${rss} KiB, fds $base_fds -> $(fds)"
if ((rss > warm_rss + 65536)); then
	fail "RSS grew from ${warm_rss} KiB to ${rss} KiB"
fi
stop_server
echo "PASS"
