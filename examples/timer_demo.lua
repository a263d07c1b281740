-- threading.Timer(5, fun) in corun: call_later runs a callback after a
-- delay and its handle can cancel it; a task that sleeps first is a timer
-- that can itself wait and be joined. Port of the Timer demo in
-- reference/threads-processes-asyncio-tour.txt (5 s, 2 s scaled to 0.5, 0.2).
local corun = require "corun"

local t0 = corun.time()
local function at()                   -- elapsed time, in whole tenths: a timer
  local tenths = math.floor((corun.time() - t0) * 10)   -- never fires early
  return ("%.1f s"):format(tenths / 10)
end

print("-- call_later as a Timer")
local fired = corun.event()
corun.call_later(0.5, function()       -- t = Timer(0.5, fun); t.start()
  print("-------- callback at " .. at())
  fired:set()                          -- a callback cannot sleep or be joined,
end)                                   -- so it signals an event
fired:wait()                           -- t.join()
print("*******")

print("-- a task as a Timer")
t0 = corun.time()
local t = corun.spawn(function()
  corun.sleep(0.5)                     -- the timer's delay
  print("-------- at " .. at())
  corun.sleep(0.2)                     -- fun() itself sleeps 2 s (here 0.2 s)
end)
t:join()
print("******* at " .. at())

print("-- cancelling a Timer")
local h = corun.call_later(0.2, print, "never printed")
print("cancel:", h:cancel(), h:cancelled())   -- t.cancel() before it fires
print("cancel again:", h:cancel())            -- false: no longer pending
corun.sleep(0.3)
print("the cancelled timer did not fire")
