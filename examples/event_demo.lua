-- An event wakes every task waiting on it. Part 1 ports the asyncio Event
-- demo of reference/asyncio-sync-primitives.txt (two waiters, set from a
-- call_later callback); part 2 the threading wait-set-clear loop of
-- reference/threads-processes-asyncio-tour.txt, its 1 s period scaled to 0.1 s.
local corun = require "corun"

print("-- two waiters, set from a callback")

local function set_event(event)       -- a plain callback: set() works anywhere
  print("setting event in callback")
  event:set()
end

local function coro(name, event)
  print(name .. " waiting for event")
  event:wait()
  print(name .. " triggered")
end

local event = corun.event()
print("event start state: " .. tostring(event:is_set()))
corun.call_later(0.1, set_event, event)
corun.wait({ corun.spawn(coro, "coro1", event),
             corun.spawn(coro, "coro2", event) })
print("event end state: " .. tostring(event:is_set()))

print("-- wait, set, clear")

local ev = corun.event()
local worker = corun.spawn(function()
  for i = 1, 5 do
    ev:wait()                          -- blocks until the next set()
    print("worker woken " .. i)
    ev:clear()                         -- block again next time round
  end
end)

for i = 1, 5 do
  corun.sleep(0.1)
  print("main sets the event " .. i)
  ev:set()
end
worker:join()
print("done")
