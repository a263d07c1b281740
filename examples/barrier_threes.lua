-- A barrier(3) holds arrivals until three are waiting, then releases them
-- together: nine tasks arriving 0.1 s apart pass in threes. Port of the
-- Barrier demo in reference/threads-processes-asyncio-tour.txt (threads
-- started 1 s apart, scaled to 0.1 s); then a timeout breaks a barrier.
local corun = require "corun"

local bar = corun.barrier(3)

local function fun(num)
  local index = bar:wait()             -- arrival index 0, 1 or 2
  print(("-------- %d passes (arrival %d)"):format(num, index))
  corun.sleep(0.2)
end

local tasks = {}
for i = 0, 8 do
  corun.sleep(0.1)
  print(("start %d, %d already waiting"):format(i, bar:n_waiting()))
  tasks[#tasks + 1] = corun.spawn(fun, i)
end
corun.wait(tasks)
-- The third arrival is not parked: it goes on at once, the two it released
-- follow in the order they arrived.

print("-- a wait that times out breaks the barrier")
local b = corun.barrier(3)
local waiter = corun.spawn(function() print("waiter:", b:wait()) end)
corun.sleep(0)                         -- the waiter is parked in wait()
print("main:", b:wait(0.1))            -- only 2 of 3 arrive
waiter:join()
print("broken:", b:broken(), "later wait:", b:wait())
b:reset()
print("after reset:", b:broken(), b:n_waiting(), b:parties())
