-- Two tasks each add 1 to a shared counter N times, yielding between reading
-- and writing it. Without a lock every update of one round overwrites the
-- other's; with a lock the count is exact; an rlock may be re-acquired by its
-- owner. Ports the counters of reference/threads-processes-asyncio-tour.txt.
local corun = require "corun"

local N = 100000                       -- 1000000 per thread in the reference
local num = 0

local function add_one()               -- a read-modify-write with a switch in
  local v = num                        -- the middle, like num += 1 between
  corun.sleep(0)                       -- two threads
  num = v + 1
end

local function run(step)
  local t1 = corun.spawn(function() for _ = 1, N do step() end end)
  local t2 = corun.spawn(function() for _ = 1, N do step() end end)
  t1:join()
  t2:join()
end

print("-- no lock")
num = 0
run(add_one)
-- Both tasks read the same value, yield, then both write value + 1.
print(num .. " (expected " .. 2 * N .. ")")

print("-- lock")
local lock = corun.lock()
num = 0
run(function()
  local _ <close> = lock:hold()        -- with lock: num += 1
  add_one()
end)
print(num .. " (expected " .. 2 * N .. ")")

print("-- rlock")
local rlock = corun.rlock()
num = 0
run(function()
  rlock:with(function()                -- holding it, take it again:
    rlock:with(add_one)                -- a plain lock would raise here
  end)
end)
rlock:with(function() print(num .. " (expected " .. 2 * N .. ")") end)
