// pingpong_node.js: pingpong workload on Node.js. Two async tasks pass a
// counter through two unbounded queues N times (A puts n on q1, B gets it
// and puts n+1 on q2, A gets that); main awaits both and checks the count.
// Reports context switches per second (2 per round trip).
"use strict";
const { scaled, result, Queue } = require("./benchutil");

const N = scaled(500000);

async function ping(q1, q2) {
  let n = 0;
  for (let i = 0; i < N; i++) {
    q1.put(n);
    n = await q2.get();
  }
  return n;
}

async function pong(q1, q2) {
  for (let i = 0; i < N; i++) q2.put((await q1.get()) + 1);
}

async function main() {
  const t0 = process.hrtime.bigint();
  const q1 = new Queue(), q2 = new Queue();
  const [n] = await Promise.all([ping(q1, q2), pong(q1, q2)]);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (n !== N) throw new Error(`pingpong: bad count ${n}`);
  result("pingpong", { rate: dt > 0 ? 2 * N / dt : 0, seconds: dt, n: N });
}

main();
