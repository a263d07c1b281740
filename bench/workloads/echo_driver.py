#!/usr/bin/env python3
"""echo_driver.py: run the echo workload (TCP) against one server; also the
driver of the udp workload (udp_driver.py calls main("udp")).

Usage: python3 bench/workloads/echo_driver.py corun|node|asyncio

Starts that server (NAME_corun.lua on the corun runner, NAME_node.js on
node, NAME_asyncio.py on python3, NAME being echo or udp) as its own
process on 127.0.0.1, port 0;
reads the "PORT n" line it prints; then runs the load generator,
NAME_client.c (compiled once with $CC, default cc, into the temp dir): C=50
connections (udp: sockets), each doing R=2000 round trips of a 64-byte line
(udp: datagram), R scaled by BENCH_SCALE. The client is the same program for every server, so only
the server differs. Prints the client's RESULT line (round trips per
second) with the server's own peak RSS (VmHWM from /proc) as peak_kb, then
stops the server.

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
CONNS, ROUNDS, LINE = 50, scaled(2000), 64   # connections, round trips, bytes
NAME = "echo"                                # the workload: echo or udp


def corun_runner(who=None):
    """The corun runner: $CORUN, else the build's; 'who' names the driver
    in the error (default NAME_driver)."""
    if os.environ.get("CORUN"):
        runner = Path(os.environ["CORUN"])
        return runner if runner.is_absolute() else ROOT / runner
    for runner in (ROOT / "build" / "corun", ROOT / "build" / "bin" / "corun"):
        if runner.is_file():
            return runner
    sys.exit(f"{who or NAME + '_driver'}: no corun runner (set CORUN)")


def server_argv(impl):
    if impl == "corun":
        return [str(corun_runner()), str(HERE / f"{NAME}_corun.lua")]
    if impl == "node":
        return [os.environ.get("NODE") or "node", str(HERE / f"{NAME}_node.js")]
    if impl == "asyncio" and (HERE / f"{NAME}_asyncio.py").is_file():
        return [os.environ.get("PYTHON") or "python3",
                str(HERE / f"{NAME}_asyncio.py")]
    sys.exit(f"{NAME}_driver: unknown server {impl!r}")


def client():
    """Path of the compiled NAME_client, building it if needed."""
    src = HERE / f"{NAME}_client.c"
    tag = hashlib.sha1(src.read_bytes()).hexdigest()[:12]
    exe = Path(tempfile.gettempdir()) / f"corun-{NAME}-client-{tag}"
    if not exe.is_file():
        cc = os.environ.get("CC") or "cc"
        if shutil.which(cc) is None:
            sys.exit(f"{NAME}_driver: no C compiler ({cc}) for {src.name}")
        tmp = exe.with_name(f"{exe.name}.{os.getpid()}")
        subprocess.run([cc, "-O2", "-o", str(tmp), str(src)], check=True)
        os.replace(tmp, exe)
    return exe


def read_port(proc, errfile, timeout=20, who=None):
    """The port from the server's first line ("PORT n"); 'who' names the
    driver in the error (default NAME_driver)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        proc.wait()
        errfile.seek(0)
        err = errfile.read().decode(errors="replace").strip()
        sys.exit(f"{who or NAME + '_driver'}: server did not start: {line!r} {err}")
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


def serve(argv, body, who):
    """Start the server 'argv', call body(proc, port) once it has printed
    its port, then stop it; returns body's result. 'who' names the driver
    in errors."""
    errfile = tempfile.TemporaryFile()  # the server's stderr, never a full pipe
    server = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=errfile,
                              cwd=ROOT)
    try:
        port = read_port(server, errfile, who=who)
        result = body(server, port)
        if server.poll() is not None:
            sys.exit(f"{who}: server exited ({server.returncode})")
        return result
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        errfile.close()


def main(name="echo"):
    global NAME
    NAME = name
    impl = sys.argv[1] if len(sys.argv) > 1 else "corun"
    exe = client()

    def body(server, port):
        out = subprocess.run([str(exe), "127.0.0.1", str(port), str(CONNS),
                              str(ROUNDS), str(LINE)],
                             stdout=subprocess.PIPE, timeout=600)
        result = out.stdout.decode().strip()
        if out.returncode != 0 or not result.startswith("RESULT "):
            sys.exit(f"{NAME}_driver: client failed (exit {out.returncode})")
        return (f"{result} {'socks' if NAME == 'udp' else 'conns'}={CONNS} "
                f"rounds={ROUNDS} server={impl} peak_kb={peak_kb(server.pid)}")

    print(serve(server_argv(impl), body, f"{NAME}_driver"), flush=True)


if __name__ == "__main__":
    main()
