#!/usr/bin/env python3
"""udp_driver.py: run the udp workload against one server.

Usage: python3 bench/workloads/udp_driver.py corun|node

Starts that server (udp_corun.lua on the corun runner, udp_node.js on
node) as its own process on 127.0.0.1, port 0; reads the "PORT n" line it
prints; then runs the load generator, udp_client.c (compiled once with $CC,
default cc, into the temp dir): C=50 sockets, each doing R=2000 datagram
round trips (64 bytes), R scaled by BENCH_SCALE. The client is the same
program for every server, so only the server differs. Prints the client's
RESULT line (round trips per second) with the server's own peak RSS
(VmHWM from /proc) as peak_kb, then stops the server. (Structured as
udp_driver.py.)

Environment: CORUN (runner; default build/corun if that is a file, else
build/bin/corun), NODE (default node), PYTHON (default python3), CC
(default cc), BENCH_SCALE.
"""
import hashlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_util import scaled

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONNS, ROUNDS, LINE = 50, scaled(2000), 64   # sockets, round trips, bytes


def corun_runner():
    if os.environ.get("CORUN"):
        runner = Path(os.environ["CORUN"])
        return runner if runner.is_absolute() else ROOT / runner
    for runner in (ROOT / "build" / "corun", ROOT / "build" / "bin" / "corun"):
        if runner.is_file():
            return runner
    sys.exit("udp_driver: no corun runner (set CORUN)")


def server_argv(impl):
    if impl == "corun":
        return [str(corun_runner()), str(HERE / "udp_corun.lua")]
    if impl == "node":
        return [os.environ.get("NODE") or "node", str(HERE / "udp_node.js")]
    sys.exit(f"udp_driver: unknown server {impl!r} (corun, node)")


def client():
    """Path of the compiled udp_client, building it if needed."""
    src = HERE / "udp_client.c"
    tag = hashlib.sha1(src.read_bytes()).hexdigest()[:12]
    exe = Path(tempfile.gettempdir()) / f"corun-udp-client-{tag}"
    if not exe.is_file():
        cc = os.environ.get("CC") or "cc"
        if shutil.which(cc) is None:
            sys.exit(f"udp_driver: no C compiler ({cc}) for udp_client.c")
        tmp = exe.with_name(f"{exe.name}.{os.getpid()}")
        subprocess.run([cc, "-O2", "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, exe)
    return exe


def read_port(proc, errfile, timeout=20):
    """The port from the server's first line ("PORT n")."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait()
        errfile.seek(0)
        err = errfile.read().decode(errors="replace").strip()
        sys.exit(f"udp_driver: server did not start: {line!r} {err}")
    return int(line.split()[1])


def peak_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def main():
    impl = sys.argv[1] if len(sys.argv) > 1 else "corun"
    exe = client()
    errfile = tempfile.TemporaryFile()  # the server's stderr, never a full pipe
    server = subprocess.Popen(server_argv(impl), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=errfile,
                              cwd=ROOT)
    try:
        port = read_port(server, errfile)
        out = subprocess.run([str(exe), "127.0.0.1", str(port), str(CONNS),
                              str(ROUNDS), str(LINE)],
                             stdout=subprocess.PIPE, timeout=600)
        result = out.stdout.decode().strip()
        if out.returncode != 0 or not result.startswith("RESULT "):
            sys.exit(f"udp_driver: client failed (exit {out.returncode})")
        if server.poll() is not None:
            sys.exit(f"udp_driver: server exited ({server.returncode})")
        print(f"{result} socks={CONNS} rounds={ROUNDS} server={impl} "
              f"peak_kb={peak_kb(server.pid)}", flush=True)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        errfile.close()


if __name__ == "__main__":
    main()
