-- A semaphore(3) lets at most three of nine jobs run at once; each release
-- hands the permit to the longest-waiting job. Port of the Semaphore demo in
-- reference/threads-processes-asyncio-tour.txt: its endless 2 s jobs become
-- one 0.2-0.4 s run each, of different lengths so the output order is fixed.
local corun = require "corun"

local DURATION = {0.35, 0.40, 0.20, 0.25, 0.30, 0.40, 0.25, 0.30, 0.20}

local sem = corun.semaphore(3)
local running, most = 0, 0

local function job(i)
  local _ <close> = sem:hold()         -- with sem: (waits for a permit)
  running = running + 1
  most = math.max(most, running)
  print(("job %d starts: %d running, free permits: %d"):format(
    i, running, sem:value()))
  corun.sleep(DURATION[i])             -- the work
  running = running - 1
  print(("job %d done"):format(i))
end                                    -- the permit is released here

local jobs = {}
for i = 1, 9 do jobs[i] = corun.spawn(job, i) end
corun.sleep(0)                         -- all nine have run up to the semaphore
print(("%d running, %d waiting"):format(running, 9 - running))
corun.wait(jobs)
print(("all done; at most %d ran at once"):format(most))
