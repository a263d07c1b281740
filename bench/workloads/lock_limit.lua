-- lock_limit.lua: lock workload on the limit scheduler. T tasks each
-- acquire and release one lock K times, yielding once (limit.yield) while
-- holding it: they read the shared counter, yield, then write it back plus
-- one, so a broken lock loses increments. Main joins them all and checks
-- the counter. Reports acquisitions per second. Times with os.clock (CPU
-- time = wall time here).
local dir = arg[0]:match("^(.-)[^/]*$")
package.path = dir .. "?.lua;" .. dir .. "../?.lua;" .. package.path
local util = require "benchutil"
local limit = require "limit"

local T, K = 100, util.scaled(2000)
local N = T * K
local yield = limit.yield
local counter = 0

local function work(lock)
  for _ = 1, K do
    lock:acquire()
    local c = counter
    yield()
    counter = c + 1
    lock:release()
  end
end

local function main()
  local t0 = os.clock()
  local lock, tasks = limit.lock(), {}
  for i = 1, T do tasks[i] = limit.spawn(work, lock) end
  for i = 1, T do limit.join(tasks[i]) end
  local dt = os.clock() - t0

  assert(counter == N, "lock: bad counter " .. counter)
  util.result("lock", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
end

limit.run(main)
