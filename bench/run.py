#!/usr/bin/env python3
"""bench/run.py: run corun's benchmark workloads and print a markdown table.

Each workload exists four times in bench/workloads/: NAME_corun.lua (run by
the corun runner), NAME_limit.lua (plain lua5.4 on bench/limit.lua, the
hand-written baseline), NAME_node.js (node) and NAME_asyncio.py (python3).
Rows that have one also show the physical limit: bench/physical.c, built
here against liblua5.4, measures what stock Lua does with no scheduler (a
bare resume/yield pair; create, run and collect a coroutine). Every run is a
separate child process reaped with os.wait4 (its ru_maxrss is the fallback
peak RSS, see peak_rss). Each script prints one line such as
`RESULT spawn rate=812345.6 seconds=0.246 n=200000 peak_kb=61234`.

Server workloads (echo, udp) compare with Node.js instead of the limit: their
row has the columns corun, node, asyncio, and each run is
`python3 NAME_driver.py IMPL`, which starts the server NAME_corun.lua,
NAME_node.js or NAME_asyncio.py as its own process, runs the shared load
generator against it and prints the RESULT line (peak_kb is the server's).

The implementations take turns: run 1 of each, then run 2 of each, ... so
that every ratio compares runs made under the same machine load. Cells show
the median of the runs and their range (min-max); ratios are the median and
range of the per-turn ratios.

Usage: python3 bench/run.py [--runs 3] [--only spawn,timers] [--scale 0.1]
                            [--impls corun,limit] [--check] [-v]
Environment: CORUN (runner; default build/corun, else build/bin/corun),
LUA (default lua5.4), PYTHON (default python3), NODE (default node), CC
(default cc; builds the echo and udp clients and bench/physical.c), BENCH_SCALE (multiplier for every N,
default 1).

To add a workload: write the three scripts and append a Workload to
WORKLOADS below.
"""

import argparse
import hashlib
import os
import statistics
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "bench" / "workloads"
IMPLS = ("corun", "limit", "node", "asyncio", "physical")


@dataclass
class Workload:
    """One benchmark row. metric is the RESULT field shown in the table;
    higher says whether bigger is better (rates) or smaller (times).
    per_task: also run an N=0 baseline (BENCH_SCALE=0) and report peak RSS
    per task in KB. checks: Check targets, tested against the Row.
    baseline: the middle column, "limit" (NAME_limit.lua) or "node" (a
    server workload run through NAME_driver.py, see the module doc).
    details: (label, RESULT field, format) of corun's best run, printed
    under the table (for corun-only rows such as channel and pool).
    physical: the field of bench/physical.c's RESULT line that is the
    physical limit of this workload (None: no such column).
    driver: a server row sharing another row's scripts (the http rows):
    that row's name; its NAME_driver.py gets this row's name as a second
    argument."""
    name: str
    metric: str
    unit: str
    higher: bool = True
    per_task: bool = False
    checks: list = field(default_factory=list)
    baseline: str = "limit"
    details: list = field(default_factory=list)
    physical: str = None
    driver: str = None

    @property
    def impls(self):
        if self.baseline == "node":
            return ("corun", "node", "asyncio")
        return ("corun", "limit", "node", "asyncio", "physical")


@dataclass
class Check:
    """A target: measure(row) compared with bound (>= if at_least)."""
    label: str
    measure: object
    bound: float
    at_least: bool
    fmt: str

    def judge(self, row):
        """(hit, shown value); hit is False when there is no value."""
        v = self.measure(row)
        if v is None:
            return False, "no result"
        hit = v >= self.bound if self.at_least else v <= self.bound
        return hit, self.fmt.format(v)


def ratio_at_least(other, x):
    return Check(f"corun >= {x}x {other}", lambda row: row.ratio(other),
                 x, True, "{:.2f}x")


def corun_at_least(what, key, bound, fmt):
    return Check(f"corun {what} >= {fmt.format(bound)}",
                 lambda row: row.corun_value(key), bound, True, fmt)


def corun_at_most(what, key, bound, unit):
    return Check(f"corun {what} <= {bound} {unit}",
                 lambda row: row.corun_value(key), bound, False,
                 "{:.3f} " + unit)


WORKLOADS = [
    Workload("spawn", "rate", "tasks/s", physical="batch",
             checks=[ratio_at_least("limit", 1.5),
                     ratio_at_least("node", 1.5),
                     corun_at_least("spawn rate", "rate", 2e6,
                                    "{:,.0f} tasks/s"),
                     ratio_at_least("asyncio", 8.0)],
             details=[("physical limit, one coroutine at a time "
                       "(create, run, collect)", "physical_task",
                       "{:,.0f} tasks/s"),
                      ("physical limit with corun's objects (a task "
                       "userdata owning each coroutine), no scheduler",
                       "physical_object", "{:,.0f} tasks/s"),
                      ("corun / physical with corun's objects", "object_ratio",
                       "{:.2f}x")]),
    Workload("timers", "extra", "s beyond floor", higher=False,
             per_task=True,
             checks=[corun_at_most("peak RSS per sleeping task", "kb_task",
                                   1.35, "KB"),
                     Check("corun KB per sleeping task <= limit's",
                           lambda row: row.kb_ratio("limit"), 1.0, False,
                           "{:.2f}x the limit's"),
                     corun_at_most("wall time beyond the 200 ms floor",
                                   "extra", 0.12, "s")]),
    Workload("prodcons", "rate", "items/s",
             checks=[ratio_at_least("limit", 1.5),
                     ratio_at_least("node", 1.3),
                     corun_at_least("prodcons rate", "rate", 12e6,
                                    "{:,.0f} items/s"),
                     ratio_at_least("asyncio", 4.0)]),
    Workload("pingpong", "rate", "switches/s", physical="pair",
             checks=[ratio_at_least("limit", 4.0),
                     corun_at_least("pingpong rate", "rate", 12e6,
                                    "{:,.0f} switches/s"),
                     ratio_at_least("asyncio", 10.0)]),
    Workload("lock", "rate", "acquisitions/s",
             checks=[ratio_at_least("limit", 3.0),
                     ratio_at_least("asyncio", 10.0)]),
    Workload("echo", "rate", "round trips/s", baseline="node",
             checks=[ratio_at_least("node", 1.0)]),
    # UDP: corun.udp against Node's dgram, one C load generator for both
    # (no asyncio script: n/a).
    Workload("udp", "rate", "round trips/s", baseline="node",
             checks=[ratio_at_least("node", 1.0)]),
    # HTTP (bench/workloads/http_driver.py, no asyncio scripts: n/a): the
    # server under wrk, the KB an idle keep-alive connection costs it, and
    # the client (64 tasks, 10,000 GETs) against Node's fetch.
    Workload("http", "rate", "requests/s", baseline="node",
             checks=[ratio_at_least("node", 1.0),
                     Check("corun >= 1.5x node (moonshot)",
                           lambda row: row.ratio("node"), 1.5, True,
                           "{:.2f}x")]),
    Workload("http_idle", "kb_conn", "KB per idle connection", higher=False,
             baseline="node", driver="http",
             checks=[corun_at_most("KB per idle keep-alive connection",
                                   "kb_conn", 16, "KB")]),
    Workload("http_client", "rate", "requests/s", baseline="node",
             driver="http", checks=[ratio_at_least("node", 1.0)]),
    # LuaSocket's socket.http on corun.socket against corun.http, same
    # fetches from a local corun.http server (corun only: n/a elsewhere).
    Workload("sockethttp", "rate", "requests/s",
             details=[("socket.http on corun.socket", "rate",
                       "{:,.0f} requests/s"),
                      ("corun.http.get, keep-alive", "http_rate",
                       "{:,.0f} requests/s"),
                      ("socket.http / corun.http", "ratio", "{:.2f}x"),
                      ("corun.http.get, Connection: close", "close_rate",
                       "{:,.0f} requests/s"),
                      ("socket.http / corun.http (both closing)",
                       "close_ratio", "{:.2f}x")]),
    # Threads: corun only (no limit or asyncio scripts, so those show n/a).
    Workload("channel", "rate", "messages/s",
             checks=[corun_at_least("channel rate", "rate", 4e6,
                                    "{:,.0f} messages/s")],
             details=[("in-thread corun.queue, same items", "queue_rate",
                       "{:,.0f} items/s"),
                      ("channel/queue", "ratio", "{:.2f}x")]),
    Workload("pool", "rate", "items/s",
             checks=[corun_at_least("pool speed-up over one thread",
                                    "speedup", 1.8, "{:.2f}x")],
             details=[("workers", "workers", "{:.0f}"),
                      ("pool:map time", "seconds", "{:.3f} s"),
                      ("one thread", "serial_seconds", "{:.3f} s"),
                      ("speed-up", "speedup", "{:.2f}x")]),
    # Redis: corun only (no limit or asyncio scripts: n/a). The script
    # starts its own redis-server: 1 producer process, 2 consumer
    # processes x 4 tasks, against a bare LPUSH + BRPOP list in the same
    # process shape, and redis-benchmark on the same server.
    Workload("redis", "rate", "items/s",
             checks=[corun_at_least("redis queue / bare list", "ratio",
                                    0.8, "{:.2f}x")],
             details=[("consumer processes (x 4 tasks each)", "consumers",
                       "{:.0f}"),
                      ("bare list, LPUSH + BRPOP, same processes",
                       "list_rate", "{:,.0f} items/s"),
                      ("corun.redis.queue / bare list", "ratio",
                       "{:.2f}x"),
                      ("redis-benchmark LPUSH, same server", "lpush",
                       "{:,.0f} requests/s"),
                      ("redis-benchmark LPOP, same server", "lpop",
                       "{:,.0f} requests/s"),
                      ("redis-benchmark list (1 / (1/LPUSH + 1/LPOP))",
                       "rb_rate", "{:,.0f} items/s"),
                      ("corun.redis.queue / redis-benchmark list",
                       "rb_ratio", "{:.2f}x")]),
]


# ---------------------------------------------------------------- running

def find_runner():
    """$CORUN (relative to the repo root unless absolute), else the build
    tree's runner: build/corun if that is a file, else build/bin/corun (the
    runner sets package.path to the source tree's lua/ itself)."""
    if os.environ.get("CORUN"):
        runner = Path(os.environ["CORUN"])
        runner = runner if runner.is_absolute() else ROOT / runner
        return runner if runner.is_file() else None
    for runner in (ROOT / "build" / "corun", ROOT / "build" / "bin" / "corun"):
        if runner.is_file():
            return runner
    return None


SERVER_SCRIPTS = {"corun": "{}_corun.lua", "node": "{}_node.js",
                  "asyncio": "{}_asyncio.py"}


def command(impl, name, baseline="limit", shared=None):
    """argv and extra environment for one implementation, or None if the
    script (or the corun runner) is missing."""
    if baseline == "node":  # a server workload: its driver runs the server
        driver = SCRIPTS / f"{shared or name}_driver.py"
        server = SCRIPTS / SERVER_SCRIPTS[impl].format(shared or name)
        if not driver.is_file() or not server.is_file():
            return None
        if impl == "corun" and find_runner() is None:
            return None
        python = os.environ.get("PYTHON") or "python3"
        return [python, str(driver), impl] + ([name] if shared else []), {}
    if impl == "corun":
        script = SCRIPTS / f"{name}_corun.lua"
        runner = find_runner()
        if runner is None or not script.is_file():
            return None
        return [str(runner), str(script)], {}
    if impl == "limit":
        script = SCRIPTS / f"{name}_limit.lua"
        lua = os.environ.get("LUA") or "lua5.4"
        return ([lua, str(script)], {}) if script.is_file() else None
    if impl == "node":
        script = SCRIPTS / f"{name}_node.js"
        node = os.environ.get("NODE") or "node"
        return ([node, str(script)], {}) if script.is_file() else None
    if impl == "physical":
        exe = physical_exe()
        return ([str(exe)], {}) if exe is not None else None
    script = SCRIPTS / f"{name}_asyncio.py"
    python = os.environ.get("PYTHON") or "python3"
    return ([python, str(script)], {}) if script.is_file() else None


_physical = {}


def physical_exe():
    """bench/physical.c compiled once ($CC -O2, cached in the temp dir by
    the source's hash) against liblua5.4: statically when liblua5.4.a is
    there (as the corun runner and Debian's lua5.4 are), else the shared
    library. None (column n/a) without a compiler or Lua's headers."""
    if "exe" in _physical:
        return _physical["exe"]
    src = ROOT / "bench" / "physical.c"
    tag = hashlib.sha1(src.read_bytes()).hexdigest()[:12]
    exe = Path(tempfile.gettempdir()) / f"corun-physical-{tag}"
    _physical["exe"] = exe if exe.is_file() else None
    if exe.is_file():
        return exe
    cc = os.environ.get("CC") or "cc"
    try:
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "lua5.4"],
                               capture_output=True, text=True, check=True)
        flags = flags.stdout.split()
    except (OSError, subprocess.CalledProcessError):
        flags = ["-I/usr/include/lua5.4", "-llua5.4"]
    static = [f if f != "-llua5.4" else "-l:liblua5.4.a" for f in flags]
    tmp = exe.with_name(f"{exe.name}.{os.getpid()}")
    for libs in (static, flags):
        try:
            r = subprocess.run([cc, "-O2", "-o", str(tmp), str(src)] + libs
                               + ["-lm", "-ldl"], capture_output=True)
        except OSError:
            break
        if r.returncode == 0:
            os.replace(tmp, exe)
            _physical["exe"] = exe
            return exe
    print(f"run.py: cannot build bench/physical.c with {cc}", file=sys.stderr)
    return None


@dataclass
class Run:
    ok: bool
    fields: dict
    rss_kb: int
    error: str = ""
    ru_maxrss: int = 0


def parse_result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            fields = {}
            for word in line.split()[2:]:
                key, _, value = word.partition("=")
                try:
                    fields[key] = float(value)
                except ValueError:
                    fields[key] = value
            return fields
    return None


def peak_rss(fields, ru_maxrss):
    """Peak RSS in KB. ru_maxrss from wait4 cannot go below run.py's own
    high-water mark (Linux carries the pre-exec mark across exec, and
    subprocess uses vfork), which swamps small processes such as the N=0
    baselines. So a script's own VmHWM (peak_kb=, read from /proc just
    before it prints RESULT) wins; ru_maxrss is the fallback."""
    own = (fields or {}).get("peak_kb")
    if isinstance(own, float) and own > 0:
        return int(own)
    return ru_maxrss  # KB on Linux


def run_once(argv, extra_env, scale, timeout):
    """Run one child; returns a Run with its RESULT fields and peak RSS."""
    env = dict(os.environ)
    for key, value in extra_env.items():
        env.setdefault(key, value)
    env["BENCH_SCALE"] = str(scale)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in bench/
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env,
                                cwd=ROOT)
        state = {"reaped": False, "killed": False}
        lock = threading.Lock()

        def kill():
            with lock:
                if not state["reaped"]:
                    state["killed"] = True
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        with lock:
            state["reaped"] = True
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    fields = parse_result(stdout)
    rss = peak_rss(fields, usage.ru_maxrss)
    run = run_result(proc.returncode, fields, rss, stdout, stderr,
                     state["killed"] and timeout)
    run.ru_maxrss = usage.ru_maxrss
    return run


def run_result(code, fields, rss, stdout, stderr, timed_out):
    if timed_out:
        return Run(False, {}, rss, f"timed out after {timed_out}s")
    if code != 0 or fields is None:
        msg = stderr.strip() or stdout.strip() or "no RESULT line"
        return Run(False, fields or {}, rss,
                   f"exit {code}: {msg.splitlines()[-1][:200]}")
    return Run(True, fields, rss)


@dataclass
class Cell:
    """The runs of one workload on one implementation."""
    value: float = None      # headline metric: median of the runs
    fields: dict = None      # RESULT fields of the median run
    rss_kb: int = None       # smallest peak RSS over the runs
    kb_task: float = None    # per_task workloads: (rss - baseline) / n
    base_kb: int = None
    note: str = ""           # why there is no value
    values: list = None      # the metric of each run, None where it failed
    kb_tasks: list = None    # per_task workloads: KB per task of each run


def metric_of(workload, impl, run):
    """The headline value of a run: physical's field for this row, or the
    workload's metric."""
    key = workload.physical if impl == "physical" else workload.metric
    value = run.fields.get(key)
    return value if isinstance(value, float) else None


def measure_row(workload, impls, runs, scale, timeout, log):
    """Run every implementation of 'workload' in turns (run i of each, then
    run i+1 of each), so that the runs compared sit close in time."""
    cmds, good, cells = {}, {}, {}
    for impl in workload.impls:
        if impl not in impls:
            cells[impl] = Cell(note="skipped")
        elif impl == "physical" and workload.physical is None:
            cells[impl] = Cell(note="—")
        else:
            cmds[impl] = command(impl, workload.name, workload.baseline,
                                 workload.driver)
            if cmds[impl] is None:
                cells[impl] = Cell(note="n/a")
        good[impl] = [None] * runs
    live = [i for i in workload.impls if i not in cells]
    for i in range(runs):
        for impl in live:
            if i == 0:
                print(f"running {workload.name} on {impl}...",
                      file=sys.stderr, flush=True)
            argv, extra_env = cmds[impl]
            run = run_once(argv, extra_env, scale, timeout)
            log(f"{workload.name:9} {impl:8} run {i + 1}: "
                + (" ".join(f"{k}={v}" for k, v in run.fields.items())
                   + f" wait4.ru_maxrss={run.ru_maxrss}KB"
                   if run.ok else run.error))
            if run.ok and metric_of(workload, impl, run) is not None:
                good[impl][i] = run
    for impl in live:
        runs_ok = [r for r in good[impl] if r is not None]
        if not runs_ok:
            cells[impl] = Cell(note="FAIL")
            continue
        ordered = sorted(runs_ok, key=lambda r: metric_of(workload, impl, r))
        mid = ordered[(len(ordered) - 1) // 2] if workload.higher else \
            ordered[len(ordered) // 2]
        cell = Cell(metric_of(workload, impl, mid), mid.fields,
                    min(r.rss_kb for r in runs_ok))
        cell.values = [None if r is None else metric_of(workload, impl, r)
                       for r in good[impl]]
        if workload.per_task:
            add_per_task(cell, workload, cmds[impl], good[impl], runs,
                         timeout, log)
        cells[impl] = cell
    if workload.physical and cells.get("physical") and \
            cells["physical"].fields and cells["corun"].fields is not None:
        extra = {}
        for key in ("task", "object"):
            value = cells["physical"].fields.get(key)
            if isinstance(value, float):
                extra["physical_" + key] = value
        rate = cells["corun"].fields.get(workload.metric)
        if extra.get("physical_object") and isinstance(rate, float):
            extra["object_ratio"] = rate / extra["physical_object"]
        cells["corun"].fields = dict(cells["corun"].fields, **extra)
    return cells


def add_per_task(cell, workload, cmd, runs_list, runs, timeout, log):
    argv, extra_env = cmd
    base = [run_once(argv, extra_env, 0, timeout) for _ in range(runs)]
    base = [r.rss_kb for r in base if r.ok]
    log(f"{workload.name:9} baseline N=0 peak_kb={base}")
    n = cell.fields.get("n") or 0
    if base and n > 0:
        cell.base_kb = min(base)
        cell.kb_task = (cell.rss_kb - cell.base_kb) / n
        cell.kb_tasks = [None if r is None else (r.rss_kb - cell.base_kb) / n
                         for r in runs_list]


# ---------------------------------------------------------------- report

@dataclass
class Row:
    workload: Workload
    cells: dict

    def ratios(self, other):
        """corun's advantage over other in each turn: > 1 means corun is
        better."""
        a, b = self.cells["corun"].values, self.cells[other].values
        if not a or not b:
            return []
        out = []
        for x, y in zip(a, b):
            if x is not None and y is not None and x > 0 and y > 0:
                out.append(x / y if self.workload.higher else y / x)
        return out

    def ratio(self, other):
        """The median of the per-turn ratios."""
        r = self.ratios(other)
        return statistics.median(r) if r else None

    def kb_ratio(self, other):
        """corun's KB per task over other's (< 1: corun uses less)."""
        a, b = self.cells["corun"].kb_task, self.cells[other].kb_task
        if a is None or b is None or b <= 0:
            return None
        return a / b

    def corun_value(self, key):
        cell = self.cells["corun"]
        if key == "kb_task":
            return cell.kb_task
        return (cell.fields or {}).get(key)


def fmt_value(value, unit_higher):
    if value is None:
        return None
    if unit_higher:
        return f"{value:,.0f}"
    return f"{value:.3f}"


def fmt_short(value, higher):
    """A compact value for ranges: 1.23M, 456k, 0.123."""
    if not higher:
        return f"{value:.3f}"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def fmt_cell(cell, higher):
    if cell.value is None:
        return cell.note or "—"
    vals = [v for v in (cell.values or []) if v is not None]
    text = fmt_short(cell.value, higher)
    if len(vals) > 1:
        text += f" ({fmt_short(min(vals), higher)}–{fmt_short(max(vals), higher)})"
    return text


def fmt_ratio(r, rs=None):
    if r is None:
        return "—"
    text = f"{r:.2f}x"
    if rs and len(rs) > 1:
        text += f" ({min(rs):.2f}–{max(rs):.2f})"
    return text


def fmt_mb(kb):
    return "—" if kb is None else f"{kb / 1024:.1f} MB"


def main_table(rows, baseline="limit"):
    """The rows whose second column is baseline ("limit": with node,
    asyncio and physical; "node": the server rows)."""
    impls = rows[0].workload.impls
    others = impls[1:]
    out = ["| workload | " + " | ".join(impls) + " | "
           + " | ".join(f"corun/{o}" for o in others)
           + " | peak RSS (corun) |",
           "|---|" + "---:|" * (2 * len(impls)) ]
    for row in rows:
        w, c = row.workload, row.cells
        out.append(f"| {w.name} ({w.unit}) | "
                   + " | ".join(fmt_cell(c[i], w.higher) for i in w.impls)
                   + " | "
                   + " | ".join(fmt_ratio(row.ratio(o), row.ratios(o))
                                for o in others)
                   + f" | {fmt_mb(c['corun'].rss_kb)} |")
    return out


def per_task_table(row):
    w = row.workload
    out = ["", f"{w.name}: peak RSS per task = (peak RSS with N tasks - "
           "peak RSS with N=0) / N", "",
           "| impl | extra (s) | total (s) | peak RSS | baseline (N=0) "
           "| KB per sleeping task |",
           "|---|---:|---:|---:|---:|---:|"]
    for impl in w.impls:
        if impl == "physical":
            continue
        c = row.cells[impl]
        f = c.fields or {}
        total = f.get("seconds")
        kbs = [k for k in (c.kb_tasks or []) if k is not None]
        kb = "—" if c.kb_task is None else f"{c.kb_task:.3f}"
        if c.kb_task is not None and len(kbs) > 1:
            kb += f" ({min(kbs):.3f}–{max(kbs):.3f})"
        out.append(f"| {impl} | {fmt_cell(c, False)} | "
                   + ("—" if total is None else f"{total:.3f}")
                   + f" | {fmt_mb(c.rss_kb)} | {fmt_mb(c.base_kb)} | "
                   + kb + " |")
    return out


def targets(rows):
    out, missed = ["", "Targets:", ""], 0
    for row in rows:
        for check in row.workload.checks:
            hit, shown = check.judge(row)
            missed += not hit
            out.append(f"- [{'x' if hit else ' '}] {row.workload.name}: "
                       f"{check.label} ({shown})")
    return out, missed


def details(rows):
    """Extra RESULT fields of corun's best run, for rows that list some."""
    out = []
    for row in rows:
        fields = row.cells["corun"].fields or {}
        for label, key, fmt in row.workload.details:
            value = fields.get(key)
            if isinstance(value, float):
                out.append(f"- {row.workload.name}: {label}: "
                           + fmt.format(value))
    return (["", "Details (corun, median run):", ""] + out) if out else []


def report(rows, scale, runs):
    lines = [f"corun benchmarks (median and range of {runs} runs taken in "
             f"turns; BENCH_SCALE={scale:g}; ratios: median and range of the "
             "per-turn ratios, > 1 means corun is better)", ""]
    for baseline in ("limit", "node"):
        group = [r for r in rows if r.workload.baseline == baseline]
        if group:
            lines += ([""] if len(lines) > 2 else []) + main_table(group,
                                                                   baseline)
    for row in rows:
        if row.workload.per_task:
            lines += per_task_table(row)
    lines += details(rows)
    check_lines, missed = targets(rows)
    lines += check_lines
    return "\n".join(lines), missed


# ---------------------------------------------------------------- main

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per cell (3)")
    p.add_argument("--only", help="comma-separated workload names")
    p.add_argument("--impls", default=",".join(IMPLS),
                   help="comma-separated subset of corun,limit,node,asyncio")
    p.add_argument("--scale", type=float,
                   default=float(os.environ.get("BENCH_SCALE") or 1),
                   help="multiplier for every N (env BENCH_SCALE)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds before a run is killed")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a target is missed")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every run on stderr")
    return p.parse_args()


def main():
    args = parse_args()
    chosen = WORKLOADS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {w.name for w in WORKLOADS}
        if unknown:
            sys.exit(f"run.py: unknown workload(s): {', '.join(unknown)}")
        chosen = [w for w in WORKLOADS if w.name in names]
    impls = args.impls.split(",")

    def log(msg):
        if args.verbose:
            print(msg, file=sys.stderr, flush=True)

    rows, failed = [], False
    for w in chosen:
        cells = measure_row(w, impls, args.runs, args.scale, args.timeout,
                            log)
        failed = failed or any(c.note == "FAIL" for c in cells.values())
        rows.append(Row(w, cells))
    text, missed = report(rows, args.scale, args.runs)
    print(text)
    if failed or (args.check and missed):
        sys.exit(1)


if __name__ == "__main__":
    main()
