"""timers workload on asyncio: N tasks each sleep a pseudo-random 0-200 ms
(fixed LCG seed); main awaits them all. BENCH_SCALE=0 is the N=0 baseline."""
import asyncio
import time

from bench_util import delays, result, scaled

N = scaled(100000)


async def work(d):
    await asyncio.sleep(d)


async def main():
    t0 = time.perf_counter()
    tasks, floor = [], 0.0
    for _, d in zip(range(N), delays()):
        floor = max(floor, d)
        tasks.append(asyncio.create_task(work(d)))
    for t in tasks:
        await t
    dt = time.perf_counter() - t0
    result("timers", extra=dt - floor, seconds=dt, floor=floor, n=N)


asyncio.run(main())
