// lock_node.js: lock workload on Node.js. T async tasks each acquire and
// release one lock K times, yielding once (setImmediate) while holding it:
// read the counter, yield, write it back plus one, so a broken lock loses
// increments. Main awaits them all and checks the counter.
"use strict";
const { scaled, result, yieldOnce, Lock } = require("./benchutil");

const T = 100, K = scaled(2000), N = T * K;
let counter = 0;

async function work(lock) {
  for (let i = 0; i < K; i++) {
    await lock.acquire();
    const c = counter;
    await yieldOnce();
    counter = c + 1;
    lock.release();
  }
}

async function main() {
  const t0 = process.hrtime.bigint();
  const lock = new Lock(), tasks = [];
  for (let i = 0; i < T; i++) tasks.push(work(lock));
  for (const t of tasks) await t;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (counter !== N) throw new Error(`lock: bad counter ${counter}`);
  result("lock", { rate: dt > 0 ? N / dt : 0, seconds: dt, n: N });
}

main();
