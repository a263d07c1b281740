-- corun.pool(n) keeps n worker threads; pool:map(fn, list) returns fn of
-- every item, in list order. Port of ThreadPoolExecutor(3).map(func,
-- range(10)) in reference/threads-processes-asyncio-tour.txt: its 1 s sleep
-- is 0.1 s, and jobs return their lines instead of printing them.
local corun = require "corun"

local function func(num)               -- copied to the workers: no upvalues
  local corun = require "corun"
  corun.sleep(0.1)                     -- time.sleep(1)
  return "--- " .. num
end

local list = {}
for i = 0, 9 do list[#list + 1] = i end    -- range(10)

local pool = corun.pool(3)             -- ThreadPoolExecutor(3)
local t0 = corun.time()
for _, line in ipairs(pool:map(func, list)) do print(line) end
-- 10 jobs on 3 workers: 4 rounds of 0.1 s.
print(("map took about %.1f s"):format(   -- rounded down to 0.1 s
  math.floor((corun.time() - t0) * 10 + 0.2) / 10))

-- submit returns a future; wait parks only the calling task.
local f = pool:submit(function(a, b) return a + b, a * b end, 6, 7)
print("submit:", f:wait())

-- map re-raises the first error (in list order).
local ok, err = pcall(pool.map, pool, function(n)
  if n % 2 == 0 then error("even number " .. n, 0) end
  return n
end, {1, 2, 3, 4})
print("map:", ok, (err:match("^[^\n]*")))

pool:close()                           -- queued jobs still run; no new ones
pool:join()                            -- until every worker has exited
print("submit after close:", pcall(pool.submit, pool, func, 1))

-- A worker keeps one Lua state for all its jobs: on a one-worker pool the
-- jobs see the globals set by the ones before.
local solo = corun.pool(1)
local calls = solo:map(function()
  calls_so_far = (calls_so_far or 0) + 1
  return calls_so_far
end, {"a", "b", "c"})
print("one worker, globals kept:", table.concat(calls, " "))
solo:close()

-- corun.to_thread runs one call on a default pool (asyncio.to_thread).
print("to_thread:", corun.to_thread(function(n)
  local s = 0
  for i = 1, n do s = s + i end
  return s
end, 1000000))
