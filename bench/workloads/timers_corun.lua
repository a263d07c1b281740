-- timers_corun.lua: timers workload on corun. N tasks each sleep a
-- pseudo-random 0-200 ms (fixed LCG seed); main joins them all. Prints the
-- wall time and how far it went beyond the longest sleep (the floor).
-- BENCH_SCALE=0 gives the N=0 baseline run.py uses for peak RSS per task.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(100000)

local function work(d)
  corun.sleep(d)
end

local t0 = corun.time()
local delay, tasks, floor = util.delays(), {}, 0
for i = 1, N do
  local d = delay()
  if d > floor then floor = d end
  tasks[i] = corun.spawn(work, d)
end
for i = 1, N do tasks[i]:join() end
local dt = corun.time() - t0
util.result("timers", "extra=%.4f seconds=%.4f floor=%.3f n=%d",
  dt - floor, dt, floor, N)
