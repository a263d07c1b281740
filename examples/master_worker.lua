-- Master-worker with threads: the master sends jobs to 3 worker threads over
-- one channel and collects results over another, with corun.select doing
-- both at once; closing the jobs channel stops the workers. The pattern of
-- reference/threads-processes-asyncio-tour.txt (processes there).
local corun = require "corun"

local WORKERS, JOBS = 3, 12

-- A worker takes jobs until the channel is closed and drained, sends one
-- result per job and returns how many it did.
local function worker(id, jobs, results)
  local corun = require "corun"
  local count = 0
  for n in jobs:iter() do              -- ends on close
    local sum = 0
    for i = 1, n * 1000 do sum = sum + i end
    corun.sleep(0.01)                  -- some waiting too
    results:send({job = n, sum = sum, worker = id})
    count = count + 1
  end
  return count
end

local jobs = corun.channel(2)          -- small: the master waits for room
local results = corun.channel()
local workers = {}
for id = 1, WORKERS do workers[id] = corun.thread(worker, id, jobs, results) end

-- The master: offer the next job while there is one, and take results as
-- they come, whichever is ready first.
local got, nextjob = {}, 1
while #got < JOBS do
  local cases = {{results, "recv"}}
  if nextjob <= JOBS then cases[2] = {jobs, "send", nextjob} end
  local i, value = corun.select(table.unpack(cases))
  if i == 1 then
    got[#got + 1] = value
  else
    nextjob = nextjob + 1
  end
  if nextjob > JOBS and not jobs:closed() then
    jobs:close()                       -- no more jobs: workers finish up
  end
end

table.sort(got, function(a, b) return a.job < b.job end)
for _, r in ipairs(got) do
  print(("job %2d: sum 1..%d = %d"):format(r.job, r.job * 1000, r.sum))
end

local total = 0
for _, th in ipairs(workers) do total = total + th:join() end
print(("%d workers did %d jobs; every worker has exited"):format(
  WORKERS, total))
print("a closed channel:", jobs:send(99))
