-- A loop in a background thread, fed from the main thread: callbacks with
-- call_soon_threadsafe, tasks with submit (run_coroutine_threadsafe). Port
-- of reference/asyncio-background-loop-redis-queue.txt (Redis part left
-- out); its 6 s and 3 s jobs take 0.6 s and 0.3 s here.
local corun = require "corun"

-- The background thread hands us its loop, then sleeps until we stop it:
-- a loop only runs while something keeps it alive (loop.run_forever()).
local ready = corun.channel(1)
local background = corun.thread(function(ready)
  local corun = require "corun"
  ready:send(corun.loop())
  corun.sleep(math.huge)
end, ready)
local loop = ready:recv()

-- Finished jobs report on this channel (the queue.Queue of the reference).
local done = corun.channel()

-- A task body for the background loop. Like everything sent to another
-- thread it is copied, so it has no upvalues.
local function do_sleep(x, done, msg)
  local corun = require "corun"
  corun.sleep(x)                       -- await asyncio.sleep(x)
  done:send(msg)
  return x
end

print("-- call_soon_threadsafe: plain callbacks, run in order")
-- A callback runs in the loop's thread but cannot wait (sleep or a channel
-- send/recv raise there): one that has waiting to do spawns a task.
for _, msg in ipairs({"first", "second"}) do
  loop:call_soon_threadsafe(function(done, msg)
    local corun = require "corun"
    corun.spawn(function() done:send(msg .. " callback ran") end)
  end, done, msg)
end
print(done:recv())
print(done:recv())

local function elapsed(t0)             -- rounded down to 0.1 s: the
  local dt = corun.time() - t0         -- sleeps set the floor, load adds
  return ("about %.1f s"):format(math.floor(dt * 10 + 0.2) / 10)
end

print("-- one job at a time: submit, then wait before submitting the next")
-- What the reference gets from call_soon_threadsafe with blocking callbacks:
-- each job holds up the next one, 0.6 + 0.3 s.
local t0 = corun.time()
loop:submit(do_sleep, 0.6, done, "first"):wait()
print(done:recv() .. " finished")
loop:submit(do_sleep, 0.3, done, "second"):wait()
print(done:recv() .. " finished")
print("sequential: " .. elapsed(t0))

print("-- both jobs submitted at once: tasks of one loop run concurrently")
t0 = corun.time()
local f1 = loop:submit(do_sleep, 0.6, done, "first")
local f2 = loop:submit(do_sleep, 0.3, done, "second")
print(done:recv() .. " finished")      -- the shorter job is done first
print(done:recv() .. " finished")
print("concurrent: " .. elapsed(t0))
print("results:", f1:wait(), f2:wait())

loop:stop()                            -- ends the background thread's loop
print("background thread ended:", select("#", background:join()) == 0)
print("call_soon_threadsafe after stop:",
      loop:call_soon_threadsafe(function() end))
