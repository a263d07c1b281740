-- A condition lets tasks wait, holding a lock, until another task notifies
-- them: notify(1) wakes one consumer, notify(2) two more, notify_all() the
-- rest, each in the order they started waiting. Port of the asyncio
-- Condition demo in reference/threads-processes-asyncio-tour.txt.
local corun = require "corun"

local function consumer(condition, n)
  print("----")
  do
    local _ <close> = condition:hold()   -- async with condition:
    print("consumer " .. n .. " is waiting")
    condition:wait()                     -- releases the lock while waiting
    print("consumer " .. n .. " triggered")
  end
  print("ending consumer " .. n)
end

local function manipulate_condition(condition)
  print("starting manipulate_condition")
  corun.sleep(0.1)                       -- let the consumers start waiting
  for i = 1, 2 do
    condition:with(function()            -- notify needs the lock held
      print("notifying " .. i .. " consumers")
      condition:notify(i)
    end)                                 -- the woken consumers run from here
    corun.sleep(0.1)
  end
  condition:with(function()
    print("notifying remaining consumers")
    condition:notify_all()
  end)
  print("ending manipulate_condition")
end

local condition = corun.condition()
local manipulator = corun.spawn(manipulate_condition, condition)
local consumers = {}
for i = 0, 4 do
  consumers[#consumers + 1] = corun.spawn(consumer, condition, i)
end
corun.wait(consumers)
manipulator:join()
