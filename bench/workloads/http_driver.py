#!/usr/bin/env python3
"""http_driver.py: run one of the http rows against one implementation.

Usage: python3 bench/workloads/http_driver.py corun|node [ROW]

ROW (default http) is one of:

- http: the server under wrk. Starts that server (http_corun.lua on the
  corun runner, http_node.js on node: the same tiny response) as its own
  process on 127.0.0.1, port 0, and reads the "PORT n" line it prints;
  then `wrk -t1 -c50` (Debian's wrk; HTTP/1.1 keep-alive) for 1 s of
  warm-up and D=5 s measured (D scaled by BENCH_SCALE, at least 1 s).
  Prints requests/s, with the server's own peak RSS (VmHWM) as peak_kb.
- http_idle: the memory an idle keep-alive connection costs that server.
  Opens 10 connections that each make one request (warm-up), reads the
  server's VmRSS, opens C=1000 more connections (scaled by BENCH_SCALE)
  that each make one request and then stay open and idle, waits 0.5 s
  and reads VmRSS again: kb_conn = (after - before) / C.
- http_client: the client. Starts http_node.js as the server (the same for
  both clients) and runs http_client_corun.lua (corun) or
  http_client_node.js (node, fetch) against it with HTTP_PORT set; prints
  the client's RESULT line (requests/s, the client's peak RSS).

Environment: CORUN (runner; default build/corun if that is a file, else
build/bin/corun), NODE (default node), WRK (default wrk), BENCH_SCALE.
"""
import os
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench_util import scaled
from echo_driver import corun_runner, serve

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONNS = 50                                  # wrk's connections
DURATION = max(1, scaled(5))                # s of wrk measured
IDLE = max(10, scaled(1000))                # idle connections opened
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"hello world\n"


def node():
    return os.environ.get("NODE") or "node"


def script_argv(impl, name):
    """argv running bench/workloads/NAME_corun.lua or NAME_node.js."""
    if impl == "corun":
        return [str(corun_runner("http_driver")), str(HERE / f"{name}_corun.lua")]
    if impl == "node":
        return [node(), str(HERE / f"{name}_node.js")]
    sys.exit(f"http_driver: unknown implementation {impl!r} (corun, node)")


def status_kb(pid, key):
    """A KB field (VmHWM, VmRSS) of /proc/PID/status, or -1."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def wrk(port, seconds):
    """wrk's requests/s and request count over 'seconds'."""
    exe = os.environ.get("WRK") or "wrk"
    try:
        out = subprocess.run([exe, "-t1", f"-c{CONNS}", f"-d{seconds}s",
                              f"http://127.0.0.1:{port}/"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=seconds + 60)
    except FileNotFoundError:
        sys.exit(f"http_driver: no {exe} (Debian's wrk; make bench-deps)")
    text = out.stdout.decode(errors="replace")
    rate = re.search(r"Requests/sec:\s*([\d.]+)", text)
    count = re.search(r"(\d+) requests in", text)
    if out.returncode != 0 or not rate or not count:
        sys.exit(f"http_driver: wrk failed (exit {out.returncode}): {text[-300:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if bad:
        sys.exit(f"http_driver: {bad.group(1)} answers were not 200")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), "
                       r"write (\d+), timeout (\d+)", text)
    nerr = sum(int(x) for x in errors.groups()) if errors else 0
    return float(rate.group(1)), int(count.group(1)), nerr


def one_request(port):
    """A connection that has made one request and read its answer."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(REQUEST)
    data = b""
    while not (b"\r\n\r\n" in data and data.endswith(BODY)):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("http_driver: the server closed an idle connection")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        sys.exit(f"http_driver: bad answer {data[:40]!r}")
    return s


def run_server(impl, name, body):
    """Start server NAME (corun or node), call body(proc, port), stop it."""
    return serve(script_argv(impl, name), body, "http_driver")


def row_http(impl):
    def body(server, port):
        wrk(port, 1)  # warm-up (node's JIT, corun's allocations)
        rate, n, nerr = wrk(port, DURATION)
        return (f"RESULT http rate={rate:.1f} seconds={DURATION} n={n} "
                f"conns={CONNS} errors={nerr} server={impl} "
                f"peak_kb={status_kb(server.pid, 'VmHWM')}")
    print(run_server(impl, "http", body), flush=True)


def row_idle(impl):
    # 1,010 sockets here and as many in the server: raise the soft limit
    # (the server inherits it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + 200
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))

    def body(server, port):
        warm = [one_request(port) for _ in range(10)]
        time.sleep(0.3)
        before = status_kb(server.pid, "VmRSS")
        idle = [one_request(port) for _ in range(IDLE)]
        time.sleep(0.5)
        after = status_kb(server.pid, "VmRSS")
        # still open: each answers one more request
        for s in idle[:: max(1, IDLE // 10)]:
            s.sendall(REQUEST)
            if not s.recv(4096).startswith(b"HTTP/1.1 200 "):
                sys.exit("http_driver: an idle connection stopped answering")
        for s in warm + idle:
            s.close()
        kb = (after - before) / IDLE
        return (f"RESULT http_idle kb_conn={kb:.3f} conns={IDLE} "
                f"rss_before_kb={before} rss_after_kb={after} server={impl} "
                f"peak_kb={status_kb(server.pid, 'VmHWM')}")
    print(run_server(impl, "http", body), flush=True)


def row_client(impl):
    def body(server, port):
        env = dict(os.environ, HTTP_PORT=str(port))
        out = subprocess.run(script_argv(impl, "http_client"), env=env,
                             stdout=subprocess.PIPE, timeout=600, cwd=ROOT)
        result = out.stdout.decode().strip().splitlines()
        result = result[-1] if result else ""
        if out.returncode != 0 or not result.startswith("RESULT "):
            sys.exit(f"http_driver: client failed (exit {out.returncode})")
        return f"{result} server=node"
    print(run_server("node", "http", body), flush=True)


def main():
    impl = sys.argv[1] if len(sys.argv) > 1 else "corun"
    row = sys.argv[2] if len(sys.argv) > 2 else "http"
    rows = {"http": row_http, "http_idle": row_idle, "http_client": row_client}
    if row not in rows:
        sys.exit(f"http_driver: unknown row {row!r} ({', '.join(rows)})")
    rows[row](impl)


if __name__ == "__main__":
    main()
