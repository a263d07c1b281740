// http_client_node.js: the http_client workload on Node's global fetch
// (undici, keep-alive): 64 async workers share 10,000 GETs (N scaled by
// BENCH_SCALE) of http://127.0.0.1:$HTTP_PORT/, each taking the next
// request number until none is left; every answer is checked. As
// http_client_corun.lua; http_driver.py runs both against http_node.js.
"use strict";
const { scaled, result } = require("./benchutil");

const N = scaled(10000), TASKS = 64;
const url = `http://127.0.0.1:${process.env.HTTP_PORT}/`;

async function main() {
  let left = N, ok = 0;
  async function worker() {
    while (left > 0) {
      left--;
      const r = await fetch(url);
      const body = await r.text();
      if (r.status !== 200 || body !== "hello world\n") throw new Error("bad answer");
      ok++;
    }
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: TASKS }, worker));
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (ok !== N) throw new Error("lost requests");
  result("http_client", { rate: N / dt, seconds: dt, n: N, tasks: TASKS });
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
