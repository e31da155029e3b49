#!/usr/bin/env bash
# Integration test: weft-fetch against servers weft did not write.
#
#   fetch_nginx.sh TOOLS_DIR     (TOOLS_DIR holds weft-fetch)
#
# Starts Debian's nginx on loopback (a free port, everything in a temp
# dir, no root needed) serving a small text file, a 1 MiB binary file and
# an empty file, plus (when python3 exists) a few hand-made servers: one
# that accepts and never answers, one that sends a malformed response, one
# with a chunked body and one whose body ends at EOF.  Then it checks:
#   1. statuses, sizes and saved bodies (cmp) of the files, and a 404
#      counted as a response (exit 0), at 1, 2 and 4 workers;
#   2. -q prints the total only;
#   3. 50 URLs through -c 5 all succeed;
#   4. a refused port: "ERR refused", the other URL unaffected;
#   5. a server that never answers, with -t 0.5: "ERR timeout", the other
#      URLs unaffected, the run well under the default 10 s timeout;
#   6. chunked and read-to-EOF bodies, and a malformed response
#      ("ERR bad-response");
#   7. --fail-fast: a refused URL cancels the never-answering ones
#      ("ERR cancelled") long before their 10 s timeout, and their
#      partial body files (-o) are removed;
#   8. -d 0.5: the whole run stops at the deadline ("ERR deadline");
#   9. usage errors exit 2 with a message;
#  10. (when the machine has IPv6 loopback) an IPv6 literal URL,
#      http://[::1]:PORT/, and a malformed one (exit 2).
# Every wait is bounded; the whole script takes a few seconds (< 60 s).
# nginx and the helper servers are stopped by a trap, also on failure.
# Skips (exit 0) only when /usr/sbin/nginx is missing.
set -euo pipefail

TOOLS=${1:?usage: fetch_nginx.sh TOOLS_DIR}
FETCH=$TOOLS/weft-fetch
NGINX=/usr/sbin/nginx

if [[ ! -x $NGINX ]]; then
	echo "SKIP: nginx not installed ($NGINX missing; tools/run deps installs it)"
	exit 0
fi
if [[ ! -x $FETCH ]]; then
	echo "FAIL: $FETCH not built" >&2
	exit 1
fi
source "$(dirname "$0")/nginx_lib.sh" fetch-nginx

# {====== the files nginx serves
mkdir -p "$T/out"
printf 'hello from nginx\n' >"$T/www/small.txt"
head -c 1048576 /dev/urandom >"$T/www/big.bin"
: >"$T/www/empty"
# IPv6 loopback, when the machine has it: nginx also listens on [::1]
# and section 10 fetches an IPv6 literal URL.
V6_LISTEN=
if ((HAVE_PY)) && python3 -c 'import socket
s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
	V6_LISTEN=1
fi
# }======

# {====== start nginx (nginx_lib.sh retries on a port taken in between)
# answers PORT: nginx serves small.txt there (curl, else a bare /dev/tcp
# connect, each bounded by 1 s).
answers() {
	if command -v curl >/dev/null 2>&1; then
		curl -s -o /dev/null --max-time 1 \
			"http://127.0.0.1:$1/small.txt" 2>/dev/null
	else
		timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
	fi
}
# One server on a free port (and [::1] when there is IPv6 loopback).
write_conf() {
	PORT=$(free_port)
	cat >"$T/nginx.conf" <<EOF
$USER_LINE
daemon off;
master_process on;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/error.log warn;
events { worker_connections 256; }
http {
	access_log $T/logs/access.log;
	default_type application/octet-stream;
	$TEMP_LINES
	server {
		listen 127.0.0.1:$PORT;
		${V6_LISTEN:+listen [::1]:$PORT;}
		root $T/www;
	}
}
EOF
}
ready() { answers "$PORT"; }
nginx_start write_conf ready
BASE=http://127.0.0.1:$PORT
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') on $BASE (pid $NGINX_PID)"
# }======

# {====== helper servers (python3)
if ((HAVE_PY)); then
	cat >"$T/helpers.py" <<'EOF'
# Hand-made servers on free ports; writes "name port" lines, then "ready".
import socket, sys, threading

REPLIES = {
    "silent": None,  # accepts, reads, never answers, never closes
    "bad": b"HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\nhello",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    "eof": b"HTTP/1.0 200 OK\r\n\r\nbody until EOF",
}
held = []

def serve(ls, reply):
    while True:
        c, _ = ls.accept()
        if reply is None:
            held.append(c)
            continue
        try:
            c.recv(65536)
            c.sendall(reply)
        finally:
            c.close()

with open(sys.argv[1] + ".tmp", "w") as f:
    for name, reply in REPLIES.items():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(128)
        f.write("%s %d\n" % (name, ls.getsockname()[1]))
        threading.Thread(target=serve, args=(ls, reply), daemon=True).start()
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
threading.Event().wait()
EOF
	python3 "$T/helpers.py" "$T/ports" &
	HELPER_PID=$!
	for _ in $(seq 50); do
		[[ -f $T/ports ]] && break
		sleep 0.1
	done
	[[ -f $T/ports ]] || fail "helper servers did not start"
	port_of() { awk -v n="$1" '$1 == n { print $2 }' "$T/ports"; }
	SILENT=http://127.0.0.1:$(port_of silent)
	BAD=http://127.0.0.1:$(port_of bad)
	CHUNKED=http://127.0.0.1:$(port_of chunked)
	EOFSRV=http://127.0.0.1:$(port_of eof)
else
	echo "NOTE: python3 missing: the never-answering server and the" \
		"hand-made responses are not tested"
fi
REFUSED=http://127.0.0.1:$(free_port)/
# }======

# {====== running weft-fetch and checking its output
WORKERS=2
# run_fetch NAME EXPECTED_EXIT ARGS...: output in $T/NAME.out/.err
run_fetch() {
	local name=$1 want=$2 rc=0
	shift 2
	WEFT_WORKERS=$WORKERS timeout 30 "$FETCH" "$@" >"$T/$name.out" \
		2>"$T/$name.err" || rc=$?
	sed 's/^/    | /' "$T/$name.out" "$T/$name.err"
	((rc == want)) || fail "$name: exit status $rc, expected $want"
}
# expect NAME REGEX: a line of NAME's output matches REGEX
expect() {
	grep -Eq -- "$2" "$T/$1.out" ||
		fail "$1: no line matching '$2'"
}
expect_count() {
	local n
	n=$(grep -Ec -- "$2" "$T/$1.out" || true)
	((n == $3)) || fail "$1: $n lines match '$2', expected $3"
}
# total_ms NAME: the run time from the total line
total_ms() {
	sed -n 's/^total: .*, \([0-9.]*\) ms$/\1/p' "$T/$1.out"
}
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
MS='[0-9]+\.[0-9] ms'
# }======

echo "== 1. files: statuses, sizes, saved bodies, a 404 is a response"
for WORKERS in 1 2 4; do
	echo "  WEFT_WORKERS=$WORKERS"
	rm -f "$T"/out/*
	run_fetch files 0 -o "$T/out" "$BASE/small.txt" "$BASE/big.bin" \
		"$BASE/empty" "$BASE/missing"
	expect files "^200 $MS 17 bytes $BASE/small.txt\$"
	expect files "^200 $MS 1048576 bytes $BASE/big.bin\$"
	expect files "^200 $MS 0 bytes $BASE/empty\$"
	expect files "^404 $MS [0-9]+ bytes $BASE/missing\$"
	expect files "^total: 4 urls, ok 4, failed 0, $MS\$"
	cmp "$T/out/0" "$T/www/small.txt" || fail "small.txt body differs"
	cmp "$T/out/1" "$T/www/big.bin" || fail "big.bin body differs"
	cmp "$T/out/2" "$T/www/empty" || fail "empty body differs"
	[[ -f $T/out/3 ]] || fail "the 404 body was not saved"
	echo "  ok: statuses, sizes and bodies (cmp) match"
done
WORKERS=2

echo "== 2. -q prints only the total"
run_fetch quiet 0 -q "$BASE/small.txt" "$BASE/missing"
expect_count quiet . 1
expect quiet "^total: 2 urls, ok 2, failed 0"

echo "== 3. 50 URLs through -c 5"
urls=()
for i in $(seq 50); do urls+=("$BASE/small.txt?i=$i"); done
WEFT_WORKERS=$WORKERS timeout 30 "$FETCH" -c 5 "${urls[@]}" \
	>"$T/many.out" 2>"$T/many.err" || fail "many: exit status $?"
expect_count many "^200 $MS 17 bytes " 50
expect many "^total: 50 urls, ok 50, failed 0"
tail -n 1 "$T/many.out" | sed 's/^/    | /'

echo "== 4. a refused port"
run_fetch refused 1 "$REFUSED" "$BASE/small.txt"
expect refused "^ERR refused $MS $REFUSED\$"
expect refused "^200 $MS 17 bytes $BASE/small.txt\$"
expect refused "^total: 2 urls, ok 1, failed 1"

if ((HAVE_PY)); then
	echo "== 5. a server that never answers, -t 0.5"
	run_fetch timeout 1 -t 0.5 "$SILENT/" "$BASE/small.txt" \
		"$BASE/big.bin" "$BASE/missing"
	expect timeout "^ERR timeout $MS $SILENT/\$"
	expect timeout "^200 $MS 17 bytes $BASE/small.txt\$"
	expect timeout "^200 $MS 1048576 bytes $BASE/big.bin\$"
	expect timeout "^404 $MS [0-9]+ bytes $BASE/missing\$"
	expect timeout "^total: 4 urls, ok 3, failed 1"
	t=$(total_ms timeout)
	below "$t" 5000 || fail "timeout: the run took $t ms (default 10 s?)"
	echo "  ok: timed out alone, run took $t ms"

	echo "== 6. chunked and EOF bodies, a malformed response"
	run_fetch parse 1 -o "$T/out" "$CHUNKED/" "$EOFSRV/" "$BAD/"
	expect parse "^200 $MS 12 bytes $CHUNKED/\$"
	expect parse "^200 $MS 14 bytes $EOFSRV/\$"
	expect parse "^ERR bad-response $MS $BAD/\$"
	[[ $(cat "$T/out/0") == "hello, world" ]] || fail "chunked body"
	[[ $(cat "$T/out/1") == "body until EOF" ]] || fail "EOF body"
	[[ ! -e $T/out/2 ]] || fail "a failed body file was left behind"

	echo "== 7. --fail-fast: a refused URL cancels the silent ones"
	rm -f "$T"/out/*
	run_fetch failfast 1 --fail-fast -o "$T/out" "$SILENT/a" "$SILENT/b" \
		"$REFUSED" "$SILENT/c"
	expect failfast "^ERR refused $MS $REFUSED\$"
	expect_count failfast "^ERR cancelled $MS $SILENT/[abc]\$" 3
	expect failfast "^total: 4 urls, ok 0, failed 4"
	t=$(total_ms failfast)
	below "$t" 5000 || fail "failfast: the run took $t ms"
	[[ -z $(ls -A "$T/out") ]] ||
		fail "failfast: cancelled fetches left partial body files"
	echo "  ok: cancelled after $t ms, no partial body file left"
	echo "   (without --fail-fast the same failure stops nothing: see 4 and 5)"

	echo "== 8. -d 0.5: an overall deadline"
	run_fetch deadline 1 -d 0.5 "$SILENT/x" "$BASE/small.txt"
	expect deadline "^ERR deadline $MS $SILENT/x\$"
	expect deadline "^200 $MS 17 bytes $BASE/small.txt\$"
	t=$(total_ms deadline)
	below "$t" 5000 || fail "deadline: the run took $t ms"
fi

echo "== 9. usage errors exit 2 with a message"
for bad in "-t abc" "-t 0" "-d -1" "-c 0" "-c 1x" "ftp://x/"; do
	# shellcheck disable=SC2086 # split on purpose: option and value
	run_fetch usage 2 $bad "$BASE/small.txt"
	[[ -s $T/usage.err ]] || fail "usage ($bad): no message"
done
run_fetch usage 2
[[ -s $T/usage.err ]] || fail "usage (no URL): no message"

if [[ -n $V6_LISTEN ]]; then
	echo "== 10. an IPv6 literal URL"
	run_fetch ipv6 0 "http://[::1]:$PORT/small.txt"
	expect ipv6 "^200 $MS 17 bytes http://\[::1\]:$PORT/small.txt\$"
	run_fetch ipv6bad 2 "http://[::1/small.txt"
else
	echo "NOTE: no IPv6 loopback here: section 10 skipped"
fi

echo "PASS: weft-fetch against nginx"
