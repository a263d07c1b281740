-- timers_limit.lua: timers workload on the limit scheduler. N tasks each
-- sleep a pseudo-random 0-200 ms (fixed LCG seed); main joins them all.
-- The limit busy-waits on os.clock between timers (see bench/limit.lua), so
-- os.clock tracks wall time. BENCH_SCALE=0 gives the N=0 baseline.
local dir = arg[0]:match("^(.-)[^/]*$")
package.path = dir .. "?.lua;" .. dir .. "../?.lua;" .. package.path
local util = require "benchutil"
local limit = require "limit"

local N = util.scaled(100000)

local function work(d)
  limit.sleep(d)
end

local function main()
  local t0 = os.clock()
  local delay, tasks, floor = util.delays(), {}, 0
  for i = 1, N do
    local d = delay()
    if d > floor then floor = d end
    tasks[i] = limit.spawn(work, d)
  end
  for i = 1, N do limit.join(tasks[i]) end
  local dt = os.clock() - t0
  util.result("timers", "extra=%.4f seconds=%.4f floor=%.3f n=%d",
    dt - floor, dt, floor, N)
end

limit.run(main)
