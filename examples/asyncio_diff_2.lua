-- asyncio_diff_2.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- Release hands the lock (or a permit) to the first waiter: it is the owner
-- at once, before it runs. asyncio frees it and lets the waiter take it.
local corun = require "corun"
local lock = corun.lock()
lock:acquire()
local waiter = corun.spawn(function()
  lock:acquire()
  print("waiter has it")
  lock:release()
end)
corun.sleep(0)                           -- the waiter is parked in acquire
lock:release()
print("just released, locked:", lock:locked())   -- asyncio: false
waiter:join()
print("after the waiter:", lock:locked())

-- the same for a semaphore: the woken task holds its permit already
local sem = corun.semaphore(0)
local t = corun.spawn(function() sem:acquire() print("t has a permit") end)
corun.sleep(0)
sem:release()
print("value", sem:value(), "locked", sem:locked())   -- asyncio: 1 False
t:join()
