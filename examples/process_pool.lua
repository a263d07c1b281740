-- A pool of worker processes, master-worker style: submit many jobs at
-- once (multiprocessing's Pool.apply_async), keep the futures, then collect
-- the results in submission order whatever order they finish in. A job
-- that kills its worker process fails alone: its future raises "worker
-- died", the pool starts a new worker and the other jobs are unaffected.
-- Port of the Pool example and the master-worker notes of
-- reference/threads-processes-asyncio-tour.txt.
-- Run: corun examples/process_pool.lua
local corun = require "corun"

-- A job runs in a worker process: it is copied there, so it may use no
-- upvalues (require what it needs inside). Small n work longest, so the
-- early jobs tend to finish last.
local function work(n)
  local sum = 0
  for i = 1, (10 - n) * 200000 do sum = sum + i % 7 end
  return n, sum
end

local pool = corun.process.pool(3)
print("pool of " .. pool:size() .. " worker processes")

local futures = {}
for n = 1, 8 do futures[n] = pool:submit(work, n) end   -- apply_async
local crash = pool:submit(function() os.exit(3) end)      -- the worker dies
local bad = pool:submit(function() error("bad input", 0) end)
local after = pool:submit(work, 9)                        -- queued behind

for n, f in ipairs(futures) do                            -- in order
  local m, sum = f:wait()
  print(("job %d: n=%d sum=%d"):format(n, m, sum))
end
local function first_line(s) return (tostring(s):match("^[^\n]*")) end
print("crash:", first_line(select(2, pcall(crash.wait, crash))))
print("error:", first_line(select(2, pcall(bad.wait, bad))))  -- + traceback
print("after:", after:wait())

-- Jobs run in other processes, with their own memory.
local pid = pool:submit(function()
  return tonumber(io.open("/proc/self/stat"):read("a"):match("^%d+"))
end):wait()
local mine = tonumber(io.open("/proc/self/stat"):read("a"):match("^%d+"))
print("job ran in another process:", pid ~= mine)

-- Only values the codec copies can travel: no files, sockets, tasks.
local ok, err = pcall(pool.submit, pool, function(x) return x end, io.stdout)
print(ok, (err:gsub("^.-:%d+: ", "")))

pool:close()                                              -- p.close()
pool:join()                                               -- p.join()
print("pool closed")
