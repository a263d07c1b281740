"""spawn workload on asyncio: N tasks each yield once (asyncio.sleep(0)) and
return their index; main gathers them and checks the sum."""
import asyncio
import time

from bench_util import result, scaled

N = scaled(200000)


async def work(i):
    await asyncio.sleep(0)
    return i


async def main():
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(work(i)) for i in range(1, N + 1)]
    res = await asyncio.gather(*tasks)
    dt = time.perf_counter() - t0
    assert sum(res) == N * (N + 1) // 2, "spawn: bad sum"
    result("spawn", rate=N / dt if dt else 0.0, seconds=dt, n=N)


asyncio.run(main())
