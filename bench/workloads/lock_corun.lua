-- lock_corun.lua: lock workload on corun. T tasks each acquire and release
-- one lock K times, yielding once (sleep(0)) while holding it: they read
-- the shared counter, yield, then write it back plus one, so a broken lock
-- loses increments. Main joins them all and checks the counter. Reports
-- acquisitions per second.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local T, K = 100, util.scaled(2000)
local N = T * K
local sleep = corun.sleep
local counter = 0

local function work(lock)
  for _ = 1, K do
    lock:acquire()
    local c = counter
    sleep(0)
    counter = c + 1
    lock:release()
  end
end

local t0 = corun.time()
local lock, tasks = corun.lock(), {}
for i = 1, T do tasks[i] = corun.spawn(work, lock) end
for i = 1, T do tasks[i]:join() end
local dt = corun.time() - t0

assert(counter == N, "lock: bad counter " .. counter)
util.result("lock", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
