-- spawn_limit.lua: spawn workload on the limit scheduler (bench/limit.lua).
-- N tasks each yield once and return their index; main gathers them and
-- checks the sum. Times with os.clock (CPU time = wall time here).
-- Run: lua5.4 bench/workloads/spawn_limit.lua
local dir = arg[0]:match("^(.-)[^/]*$")
package.path = dir .. "?.lua;" .. dir .. "../?.lua;" .. package.path
local util = require "benchutil"
local limit = require "limit"

local N = util.scaled(200000)

local function work(i)
  limit.yield()
  return i
end

local function main()
  local t0 = os.clock()
  local tasks = {}
  for i = 1, N do tasks[i] = limit.spawn(work, i) end
  local res = limit.gather(tasks)
  local dt = os.clock() - t0

  local sum = 0
  for i = 1, N do sum = sum + res[i] end
  assert(sum == N * (N + 1) // 2, "spawn: bad sum " .. sum)
  util.result("spawn", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
end

limit.run(main)
