"""Helpers shared by the asyncio workload scripts: N scaled by BENCH_SCALE,
the LCG behind the timers' delays, peak RSS and the RESULT line."""
import os


def scaled(n):
    """n times BENCH_SCALE (default 1), rounded down."""
    return int(n * float(os.environ.get("BENCH_SCALE") or 1))


def delays():
    """Pseudo-random delays of 0..0.200 s in 1 ms steps (fixed-seed LCG,
    the same sequence as benchutil.delays in the Lua scripts)."""
    seed = 12345
    while True:
        seed = (seed * 1103515245 + 12345) % 2147483648
        yield ((seed >> 8) % 201) / 1000


def peak_kb():
    """Peak RSS of this process in KB (VmHWM), -1 without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def result(name, **fields):
    """Print "RESULT name k=v ... peak_kb=K"."""
    words = " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in fields.items())
    print(f"RESULT {name} {words} peak_kb={peak_kb()}")
