// timers_node.js: timers workload on Node.js. N async tasks each sleep a
// pseudo-random 0-200 ms (fixed LCG seed, setTimeout); main awaits each in
// turn. BENCH_SCALE=0 gives the N=0 baseline.
"use strict";
const { scaled, result, delays, sleep } = require("./benchutil");

const N = scaled(100000);

async function work(d) {
  await sleep(d);
}

async function main() {
  const t0 = process.hrtime.bigint();
  const delay = delays(), tasks = [];
  let floor = 0;
  for (let i = 0; i < N; i++) {
    const d = delay();
    if (d > floor) floor = d;
    tasks.push(work(d));
  }
  for (const t of tasks) await t;
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  result("timers", { extra: dt - floor, seconds: dt, floor: floor, n: N });
}

main();
