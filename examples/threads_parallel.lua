-- corun.thread runs a function on a new OS thread, in its own Lua state and
-- loop; join returns its results. Ports the Thread examples of
-- reference/threads-processes-asyncio-tour.txt: their endless 1 s loops are
-- three 0.1 s steps, and threads return their logs instead of printing.
local corun = require "corun"

-- The function is copied into the new thread (string.dump), so it may not
-- use upvalues: it requires corun itself. It runs as that thread's main task.
local function count(name, num, steps)
  local corun = require "corun"
  local log = {}
  for step = 1, steps do
    log[#log + 1] = {step = step, line = name .. " " .. num}
    num = num + 1
    corun.sleep(0.1)                   -- time.sleep(1) in the reference
  end
  return log, corun.current().name
end

print("-- one thread")
local t = corun.thread(count, "t", 1, 3)   -- Thread(target=func, args=(1,))
local log, task = t:join()
for _, entry in ipairs(log) do print(entry.line) end
print("it ran as the task named '" .. task .. "' of its own loop")

print("-- five threads at once")
-- Lines printed by parallel threads interleave in any order, so each thread
-- returns its log and the main thread lays the logs side by side.
local t0 = corun.time()
local threads = {}
for i = 1, 5 do threads[i] = corun.thread(count, "thread" .. i, 10 * i, 3) end
local rows = {{}, {}, {}}
for _, th in ipairs(threads) do
  for _, entry in ipairs((th:join())) do
    table.insert(rows[entry.step], entry.line)
  end
end
for step, row in ipairs(rows) do
  print(("step %d: %s"):format(step, table.concat(row, ", ")))
end
-- Rounded down to 0.1 s (sleeps never end early; starting threads on a busy
-- machine adds a little), so that the output does not vary.
print(("5 threads x 3 steps of 0.1 s took about %.1f s, not 1.5 s"):format(
  math.floor((corun.time() - t0) * 10 + 0.2) / 10))

print("-- no shared memory: arguments and results are copies")
local config = {n = 1}
local changed = corun.thread(function(c) c.n = 2 return c end, config):join()
print("the thread's copy: n = " .. changed.n .. "; ours: n = " .. config.n)

local total = 0
local ok, err = pcall(corun.thread, function() total = total + 1 end)
print(ok, err)

print("-- an error in a thread is re-raised by join")
local bad = corun.thread(function() error("no more work", 0) end)
ok, err = pcall(bad.join, bad)
print(ok, (err:match("^[^\n]*")))      -- the first line; a traceback follows
