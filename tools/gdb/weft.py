# gdb extension for weft: list the tasks of a stopped process or a core
# file and show a parked task's backtrace.
#
#   gdb -x tools/gdb/weft.py -p PID        (or: gdb -x ... PROGRAM CORE)
#   (gdb) weft tasks                       id, name, state, parked on, worker
#   (gdb) weft bt ID                       a parked task's stack (ID or name)
#
# Needs the debug information of libweft (any build with -g: RelWithDebInfo,
# Debug; tools/run's plain tree).  x86_64 only (the saved-register layout
# below is runtime/core/fiber.h's).
#
# Finding the runtimes: weft keeps no process-wide list of runtimes, so
# every thread is asked for its worker (the thread-local `worker_tls` of
# runtime/core/sched.c, set for the life of each worker thread); each
# worker points at its runtime.  gdb reads the thread-local through
# libthread_db; where that is missing, through the thread pointer ($fs_base)
# and the offset sched.c records in weft__sched_tls_off.
#
# Listing: exactly what runtime/core/inspect.c does: every task record the
# runtime ever allocated is in one of the chunks on the list
# rt->tasks.chunks (linked by next; c->nrec records from c->recs); a record
# is a live task when insp_id != 0.  The process
# is stopped (or is a core file), so plain reads are consistent.
#
# Backtraces: a parked task's fiber saved its callee-saved registers and
# resume address on its own stack, at t->cont.sp (fiber_x86_64.S).  A core
# file's registers cannot be written, so instead of setting $rsp/$pc this
# installs a gdb unwinder that, for the newest frame of the selected
# thread only and only while `weft bt` runs, says that the caller's
# registers are the saved ones: frame #1 onwards is then the task's stack,
# which `weft bt` prints.  The same works on a live process and on a core
# file, and no register of the process is ever changed.

import struct

import gdb
import gdb.unwinder

# runtime/core/fiber.h: byte offsets of the saved frame from the saved sp.
_FRAME = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbx": 32, "rbp": 40}
_PC = 48
_FRAME_SIZE = 56
# runtime/core/task.h: WEFT__PARK_PARKED, the park word's "switched out".
_PARK_PARKED = 2


def _runtimes():
    """The distinct runtimes whose workers are threads of the inferior."""
    found = []
    inf = gdb.selected_inferior()
    old = gdb.selected_thread()
    try:
        for th in inf.threads():
            th.switch()
            w = _thread_worker()
            if w is None or int(w) == 0:
                continue
            rt = w["rt"]
            if int(rt) not in [int(r) for r in found]:
                found.append(rt)
    finally:
        if old is not None:
            old.switch()
    return found


def _thread_worker():
    """The selected thread's weft worker (a weft__worker_t *), or None."""
    try:
        return gdb.parse_and_eval("worker_tls")
    except gdb.error:
        pass
    try:
        off = int(gdb.parse_and_eval("weft__sched_tls_off"))
        fs = int(gdb.parse_and_eval("$fs_base"))
        wt = gdb.lookup_type("weft__worker_t").pointer()
        return gdb.Value(fs + off).cast(wt.pointer()).dereference()
    except gdb.error:
        return None


def _string(v):
    try:
        return v.string()
    except (gdb.error, UnicodeDecodeError):
        return "?"


def _running(rt, t):
    """Index of the worker running t now, or -1."""
    for i in range(int(rt["nworkers"])):
        if int(rt["workers"][i]["current"]) == int(t):
            return i
    return -1


def _tasks():
    """(runtime, task pointer) for every live task of every runtime."""
    out = []
    for rt in _runtimes():
        c = rt["tasks"]["chunks"]
        while int(c) != 0:
            recs = c["recs"]
            for i in range(int(c["nrec"])):
                t = recs + i
                if int(t["insp_id"]) != 0:
                    out.append((rt, t))
            c = c["next"]
    return out


def _state(rt, t):
    w = _running(rt, t)
    if w >= 0:
        return "running"
    if int(t["insp_wait"]) != 0:
        if int(t["park"]) & _PARK_PARKED:
            return "parked"
        return "parking"
    return "runnable"


class _WeftPrefix(gdb.Command):
    """weft: look at the tasks of a weft program (tasks, bt ID)."""

    def __init__(self):
        super().__init__("weft", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class _WeftTasks(gdb.Command):
    """weft tasks: every live task of every weft runtime of the process:
id, name, state (running, parked, parking, runnable), what it is parked
on, the worker it runs on or last ran on, and its runtime."""

    def __init__(self):
        super().__init__("weft tasks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        tasks = _tasks()
        if not tasks:
            print("weft: no runtime found (no thread has a weft worker)")
            return
        print("%-8s %-24s %-9s %-16s %-6s %s"
              % ("ID", "NAME", "STATE", "PARKED ON", "WORKER", "RUNTIME"))
        for rt, t in tasks:
            wait = t["insp_wait"]
            print("%-8d %-24s %-9s %-16s %-6d 0x%x"
                  % (int(t["insp_id"]), _string(t["name"]), _state(rt, t),
                     _string(wait) if int(wait) != 0 else "-",
                     int(t["insp_worker"]), int(rt)))


class _FiberUnwinder(gdb.unwinder.Unwinder):
    """Makes the saved registers of one fiber the caller of frame #0."""

    def __init__(self):
        super().__init__("weft-fiber")
        self.regs = None  # {register: value} while `weft bt` runs

    def __call__(self, pending):
        if self.regs is None or pending.level() != 0:
            return None
        sp = pending.read_register("rsp")
        pc = pending.read_register("rip")
        info = pending.create_unwind_info(_FrameId(sp, pc))
        for name, value in self.regs.items():
            info.add_saved_register(name, value)
        return info


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


_unwinder = _FiberUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)


def _print_frames(limit):
    f = gdb.newest_frame().older()
    n = 0
    while f is not None and n < limit:
        sal = f.find_sal()
        where = ""
        if sal.symtab is not None:
            where = " at %s:%d" % (sal.symtab.filename, sal.line)
        name = f.name() or "??"
        print("#%-3d 0x%016x in %s%s" % (n, f.pc(), name, where))
        n += 1
        f = f.older()


class _WeftBt(gdb.Command):
    """weft bt ID|NAME [LIMIT]: the backtrace of a parked (or runnable,
switched-out) task, from the registers its fiber saved when it switched
out.  A running task's stack is its worker thread's: use `thread` and
`bt`.  Works on a live stopped process and on a core file; changes no
register."""

    def __init__(self):
        super().__init__("weft bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv:
            raise gdb.GdbError("usage: weft bt ID|NAME [LIMIT]")
        limit = int(argv[1]) if len(argv) > 1 else 64
        match = [(rt, t) for rt, t in _tasks()
                 if str(int(t["insp_id"])) == argv[0]
                 or _string(t["name"]) == argv[0]]
        if not match:
            raise gdb.GdbError("weft: no live task %s" % argv[0])
        rt, t = match[0]
        state = _state(rt, t)
        print("task %d \"%s\" %s" % (int(t["insp_id"]), _string(t["name"]),
                                     state))
        if state == "running":
            raise gdb.GdbError(
                "weft: it runs on worker %d: its stack is that thread's"
                " (info threads, thread N, bt)" % _running(rt, t))
        if state == "parking":
            raise gdb.GdbError("weft: it is switching out: no saved stack")
        if state == "runnable" and int(t["insp_worker"]) < 0:
            raise gdb.GdbError("weft: it has not run yet: no stack")
        sp = int(t["cont"]["sp"])
        mem = gdb.selected_inferior().read_memory(sp, _FRAME_SIZE)
        words = struct.unpack("<7Q", bytes(mem))
        ptr = gdb.lookup_type("void").pointer()
        regs = {r: gdb.Value(words[o // 8]).cast(ptr)
                for r, o in _FRAME.items()}
        regs["rip"] = gdb.Value(words[_PC // 8]).cast(ptr)
        regs["rsp"] = gdb.Value(sp + _FRAME_SIZE).cast(ptr)
        _unwinder.regs = regs
        gdb.invalidate_cached_frames()
        try:
            _print_frames(limit)
        finally:
            _unwinder.regs = None
            gdb.invalidate_cached_frames()


_WeftPrefix()
_WeftTasks()
_WeftBt()
