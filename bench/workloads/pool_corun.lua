-- pool_corun.lua: pool workload (corun only). A CPU-bound Lua function
-- (1,000,000 loop steps of 3 arithmetic operations) is called for 64 items,
-- once with pool:map on a corun.pool() (one worker per CPU) and once as 64
-- plain calls on the main thread (best of two rounds each). rate = items/s
-- on the pool; speedup = the time on one thread / the time on the pool.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local ITEMS = util.scaled(64)

local function work(k)                 -- copied to the workers: no upvalues
  local s = k
  for i = 1, 1000000 do s = (s + i * i) % 1000003 end
  return s
end

local pool = corun.pool()
local workers = pool:size()
-- Start every worker (thread and Lua state) before timing.
local warm = {}
for i = 1, workers do warm[i] = pool:submit(function() return true end) end
for i = 1, workers do warm[i]:wait() end

local items = {}
for i = 1, ITEMS do items[i] = i end

-- Two rounds, each timing the pool then one thread; the best time of each
-- counts, so that a burst of load from other processes spoils less.
local dt, sdt = math.huge, math.huge
local parallel, serial
for _ = 1, 2 do
  local t0 = corun.time()
  parallel = pool:map(work, items)
  dt = math.min(dt, corun.time() - t0)

  t0 = corun.time()
  serial = {}
  for i = 1, ITEMS do serial[i] = work(i) end
  sdt = math.min(sdt, corun.time() - t0)
end
pool:close()
pool:join()

for i = 1, ITEMS do
  assert(parallel[i] == serial[i], "pool: wrong result for item " .. i)
end
util.result("pool",
  "rate=%.1f seconds=%.4f n=%d workers=%d serial_seconds=%.4f speedup=%.4f",
  ITEMS > 0 and ITEMS / dt or 0, dt, ITEMS, workers, sdt,
  ITEMS > 0 and sdt / dt or 0)
