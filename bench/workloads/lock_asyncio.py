"""lock workload on asyncio: T tasks each acquire and release one
asyncio.Lock K times, yielding once (asyncio.sleep(0)) while holding it:
they read the shared counter, yield, then write it back plus one, so a
broken lock loses increments. Main gathers them and checks the counter.
Reports acquisitions per second."""
import asyncio
import time

from bench_util import result, scaled

T, K = 100, scaled(2000)
N = T * K
counter = 0


async def work(lock):
    global counter
    for _ in range(K):
        await lock.acquire()
        c = counter
        await asyncio.sleep(0)
        counter = c + 1
        lock.release()


async def main():
    t0 = time.perf_counter()
    lock = asyncio.Lock()
    await asyncio.gather(*(work(lock) for _ in range(T)))
    dt = time.perf_counter() - t0
    assert counter == N, f"lock: bad counter {counter}"
    result("lock", rate=N / dt if dt else 0.0, seconds=dt, n=N)


asyncio.run(main())
