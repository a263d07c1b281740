"""producer/consumer workload on asyncio: 4 producers put N items in total
into one Queue(maxsize=64); 4 consumers get them, add them up and call
task_done. Main waits for the producers, joins the queue, cancels the
consumers and checks the sum."""
import asyncio
import time

from bench_util import result, scaled

N = scaled(1000000)
P, C, MAXSIZE = 4, 4, 64


async def producer(q, lo, hi):
    for i in range(lo, hi + 1):
        await q.put(i)


async def consumer(q, sums, k):
    while True:
        item = await q.get()
        sums[k] += item
        q.task_done()


async def main():
    t0 = time.perf_counter()
    q, sums = asyncio.Queue(MAXSIZE), [0] * C
    consumers = [asyncio.create_task(consumer(q, sums, k)) for k in range(C)]
    await asyncio.gather(*(producer(q, p * N // P + 1, (p + 1) * N // P)
                           for p in range(P)))
    await q.join()
    dt = time.perf_counter() - t0
    for c in consumers:
        c.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    assert sum(sums) == N * (N + 1) // 2, "prodcons: bad sum"
    result("prodcons", rate=N / dt if dt else 0.0, seconds=dt, n=N)


asyncio.run(main())
