const url = "http://127.0.0.1:35789/";
const t0 = performance.now();
let left = 10000;
async function worker() { while (left-- > 0) { const r = await fetch(url); await r.text(); } }
await Promise.all(Array.from({length: 64}, worker));
console.log("node fetch: " + Math.round(10000 / ((performance.now() - t0) / 1000)) + " req/s");
