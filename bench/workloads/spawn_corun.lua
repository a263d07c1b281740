-- spawn_corun.lua: spawn workload on corun. N tasks each yield once
-- (sleep(0)) and return their index; main gathers them and checks the sum.
-- Run: build/corun bench/workloads/spawn_corun.lua (BENCH_SCALE=0.1: smoke)
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(200000)

local function work(i)
  corun.sleep(0)
  return i
end

local t0 = corun.time()
local tasks = {}
for i = 1, N do tasks[i] = corun.spawn(work, i) end
local res = corun.gather(tasks)
local dt = corun.time() - t0

local sum = 0
for i = 1, N do sum = sum + res[i] end
assert(sum == N * (N + 1) // 2, "spawn: bad sum " .. sum)
util.result("spawn", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
