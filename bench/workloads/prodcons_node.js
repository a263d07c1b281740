// prodcons_node.js: producer/consumer workload on Node.js. 4 producers put
// N items in total into one queue of maxsize 64; 4 consumers get them, add
// them up and call taskDone. Main waits for the producers, joins the queue,
// closes it (consumers get undefined and end) and checks the sum.
"use strict";
const { scaled, result, Queue } = require("./benchutil");

const N = scaled(1000000);
const P = 4, C = 4, MAXSIZE = 64;

async function producer(q, lo, hi) {
  for (let i = lo; i <= hi; i++) await q.put(i);
}

async function consumer(q, sums, k) {
  let s = 0;
  for (;;) {
    const item = await q.get();
    if (item === undefined) break;
    s += item;
    sums[k] = s;
    q.taskDone();
  }
}

async function main() {
  const t0 = process.hrtime.bigint();
  const q = new Queue(MAXSIZE), sums = new Array(C).fill(0), consumers = [];
  for (let k = 0; k < C; k++) consumers.push(consumer(q, sums, k));
  const producers = [];
  for (let p = 0; p < P; p++) {
    producers.push(producer(q, Math.floor(p * N / P) + 1,
                            Math.floor((p + 1) * N / P)));
  }
  await Promise.all(producers);
  await q.join();
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  q.close();
  await Promise.all(consumers);
  const sum = sums.reduce((a, b) => a + b, 0);
  if (sum !== N * (N + 1) / 2) throw new Error(`prodcons: bad sum ${sum}`);
  result("prodcons", { rate: dt > 0 ? N / dt : 0, seconds: dt, n: N });
}

main();
