"""pingpong workload on asyncio: two tasks pass a counter through two
unbounded Queues N times (A puts n on q1, B gets it and puts n+1 on q2, A
gets that); main awaits both and checks the count. Reports context
switches per second (2 per round trip)."""
import asyncio
import time

from bench_util import result, scaled

N = scaled(500000)


async def ping(q1, q2):
    n = 0
    for _ in range(N):
        await q1.put(n)
        n = await q2.get()
    return n


async def pong(q1, q2):
    for _ in range(N):
        await q2.put(await q1.get() + 1)


async def main():
    t0 = time.perf_counter()
    q1, q2 = asyncio.Queue(), asyncio.Queue()
    n, _ = await asyncio.gather(ping(q1, q2), pong(q1, q2))
    dt = time.perf_counter() - t0
    assert n == N, "pingpong: bad count"
    result("pingpong", rate=2 * N / dt if dt else 0.0, seconds=dt, n=N)


asyncio.run(main())
