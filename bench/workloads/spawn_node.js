// spawn_node.js: spawn workload on Node.js. N async tasks each yield once
// (one event-loop turn, setImmediate) and return their index; main awaits
// them all (Promise.all) and checks the sum.
"use strict";
const { scaled, result, yieldOnce } = require("./benchutil");

const N = scaled(200000);

async function work(i) {
  await yieldOnce();
  return i;
}

async function main() {
  const t0 = process.hrtime.bigint();
  const tasks = [];
  for (let i = 1; i <= N; i++) tasks.push(work(i));
  const res = await Promise.all(tasks);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  let sum = 0;
  for (const r of res) sum += r;
  if (sum !== N * (N + 1) / 2) throw new Error(`spawn: bad sum ${sum}`);
  result("spawn", { rate: dt > 0 ? N / dt : 0, seconds: dt, n: N });
}

main();
