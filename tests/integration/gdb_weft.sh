#!/usr/bin/env bash
# tools/gdb/weft.py against a live process and a core file.
#
#   gdb_weft.sh PARKED WEFT_PY [GDB]
#
# PARKED is tests/gdb/parked.c built: a runtime with "gdb-waiter" parked
# on an event in gdb_test_wait_here and "gdb-sleeper" in a long sleep in
# gdb_test_sleep_here, then a SIGSTOP.  gdb starts it (no ptrace attach,
# so no ptrace_scope setting is needed), and at the stop runs `weft tasks`
# and `weft bt` by name, then writes a core file (gdb's gcore); a second
# gdb opens the core and runs `weft tasks` and `weft bt` by the id the
# first listing gave.  Each check names the task and shows the known
# function in the backtrace.  Bounded in time; needs debug information
# (registered for the plain RelWithDebInfo tree only).
set -u
parked=$1
weft_py=$2
gdb=${3:-gdb}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-gdb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "gdb_weft: FAIL: $*" >&2
	exit 1
}

expect() { # file regex what
	grep -Eq -- "$2" "$1" || {
		sed 's/^/  | /' "$1" >&2
		fail "$3"
	}
}

# The bt section of task $2 in file $1 (from its "task" line to the next).
section() {
	awk -v name="$2" '
		/^task [0-9]+ "/ { on = index($0, "\"" name "\"") > 0 }
		on' "$1"
}

# ---- live process ----
timeout 120 "$gdb" -nx -batch \
	-ex 'set pagination off' \
	-ex run \
	-x "$weft_py" \
	-ex 'weft tasks' \
	-ex 'weft bt gdb-waiter' \
	-ex 'weft bt gdb-sleeper' \
	-ex "generate-core-file $tmp/core" \
	-ex kill \
	--args "$parked" >"$tmp/live" 2>&1
expect "$tmp/live" 'parked: ready' "the program did not reach its stop"
expect "$tmp/live" '^[0-9]+ +gdb-waiter +parked +event ' \
	"weft tasks (live) does not list gdb-waiter parked on its event"
expect "$tmp/live" '^[0-9]+ +gdb-sleeper +parked +sleep ' \
	"weft tasks (live) does not list gdb-sleeper parked in its sleep"
expect "$tmp/live" '^[0-9]+ +main +running ' \
	"weft tasks (live) does not list the running root"
section "$tmp/live" gdb-waiter >"$tmp/live-waiter"
expect "$tmp/live-waiter" ' in gdb_test_wait_here ' \
	"weft bt (live) of gdb-waiter does not show gdb_test_wait_here"
expect "$tmp/live-waiter" ' in weft_event_wait ' \
	"weft bt (live) of gdb-waiter does not show weft_event_wait"
section "$tmp/live" gdb-sleeper >"$tmp/live-sleeper"
expect "$tmp/live-sleeper" ' in gdb_test_sleep_here ' \
	"weft bt (live) of gdb-sleeper does not show gdb_test_sleep_here"
[[ -s $tmp/core ]] || fail "gdb wrote no core file"

# ---- core file, bt by id ----
id=$(awk '$2 == "gdb-waiter" { print $1; exit }' "$tmp/live")
[[ $id =~ ^[0-9]+$ ]] || fail "no id for gdb-waiter in the listing"
timeout 120 "$gdb" -nx -batch \
	-x "$weft_py" \
	-ex 'weft tasks' \
	-ex "weft bt $id" \
	"$parked" "$tmp/core" >"$tmp/core.out" 2>&1
expect "$tmp/core.out" "^$id +gdb-waiter +parked +event " \
	"weft tasks (core) does not list gdb-waiter with the same id"
expect "$tmp/core.out" '^[0-9]+ +gdb-sleeper +parked +sleep ' \
	"weft tasks (core) does not list gdb-sleeper"
section "$tmp/core.out" gdb-waiter >"$tmp/core-waiter"
expect "$tmp/core-waiter" ' in gdb_test_wait_here ' \
	"weft bt $id (core) does not show gdb_test_wait_here"
echo "gdb_weft: ok (live process and core file)"
