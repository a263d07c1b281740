// benchutil.js: helpers shared by the Node.js workload scripts: N scaled by
// BENCH_SCALE, the LCG behind the timers' delays, peak RSS, the RESULT line,
// one turn of the event loop, and the small queue and lock the workloads
// need (Node has neither built in). Queue and Lock follow bench/limit.lua
// and asyncio: FIFO waiters, a put finding a parked getter hands its item
// over, release hands the lock to the oldest waiter.
"use strict";
const fs = require("fs");

// n times BENCH_SCALE (default 1), rounded down: BENCH_SCALE=0 gives N=0.
function scaled(n) {
  return Math.floor(n * (Number(process.env.BENCH_SCALE || 1)));
}

// Pseudo-random delays of 0..0.200 s in 1 ms steps (fixed-seed LCG, the
// same sequence as benchutil.lua and bench_util.py). BigInt: the product
// exceeds 2^53.
function delays() {
  let seed = 12345n;
  return () => {
    seed = (seed * 1103515245n + 12345n) % 2147483648n;
    return Number((seed >> 8n) % 201n) / 1000;
  };
}

// Peak RSS of this process in KB (VmHWM), -1 without /proc.
function peakKb() {
  try {
    const m = fs.readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s*(\d+)/);
    return m ? Number(m[1]) : -1;
  } catch (e) {
    return -1;
  }
}

// Print "RESULT name k=v ... peak_kb=K".
function result(name, fields) {
  const words = Object.entries(fields).map(([k, v]) =>
    `${k}=${Number.isInteger(v) ? v : v.toFixed(4)}`);
  process.stdout.write(`RESULT ${name} ${words.join(" ")} peak_kb=${peakKb()}\n`);
}

// One turn of the event loop (as asyncio.sleep(0) and corun.sleep(0)).
function yieldOnce() {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(sec) {
  return new Promise((resolve) => setTimeout(resolve, sec * 1000));
}

// A FIFO of values in a growing array with a moving head.
class Fifo {
  constructor() { this.a = []; this.h = 0; }
  get length() { return this.a.length - this.h; }
  push(v) { this.a.push(v); }
  shift() {
    const v = this.a[this.h];
    this.a[this.h++] = undefined;
    if (this.h > 1024 && this.h * 2 > this.a.length) {
      this.a = this.a.slice(this.h);
      this.h = 0;
    }
    return v;
  }
}

class Queue {
  constructor(maxsize = 0) {
    this.items = new Fifo();
    this.maxsize = maxsize;
    this.getters = new Fifo();   // resolve functions
    this.putters = new Fifo();   // [resolve, item]
    this.joiners = [];
    this.unfinished = 0;
    this.closed = false;
  }

  put(item) {
    if (this.closed) return Promise.resolve(false);
    if (this.maxsize > 0 && this.items.length >= this.maxsize) {
      return new Promise((resolve) => this.putters.push([resolve, item]));
    }
    this.unfinished++;
    if (this.getters.length > 0) this.getters.shift()(item);
    else this.items.push(item);
    return true;
  }

  get() {
    if (this.items.length === 0) {
      if (this.closed) return undefined;
      return new Promise((resolve) => this.getters.push(resolve));
    }
    const item = this.items.shift();
    if (this.putters.length > 0) {
      const [resolve, x] = this.putters.shift();
      this.items.push(x);
      this.unfinished++;
      resolve(true);
    }
    return item;
  }

  taskDone() {
    if (--this.unfinished === 0) {
      const js = this.joiners;
      this.joiners = [];
      for (const resolve of js) resolve(true);
    }
  }

  join() {
    if (this.unfinished === 0) return true;
    return new Promise((resolve) => this.joiners.push(resolve));
  }

  close() {
    this.closed = true;
    while (this.getters.length > 0) this.getters.shift()(undefined);
    while (this.putters.length > 0) this.putters.shift()[0](false);
  }
}

class Lock {
  constructor() { this.locked = false; this.waiters = new Fifo(); }
  acquire() {
    if (!this.locked) {
      this.locked = true;
      return true;
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  release() {
    if (this.waiters.length > 0) this.waiters.shift()(true);
    else this.locked = false;
  }
}

module.exports = { scaled, delays, peakKb, result, yieldOnce, sleep, Queue, Lock };
