-- A queue with maxsize 2: put waits while it is full, get while it is empty;
-- timeouts and the nowait forms return nil, reason. Ports the Queue(2) demo of
-- reference/multiprocessing-lock-queue.txt, then the asyncio bounded queue of
-- threads-processes-asyncio-tour.txt (close() instead of None stop signals).
local corun = require "corun"

print("-- Queue(2): put, get, timeouts, nowait")

local q = corun.queue(2)
print("put", q:put("hahhahahah"))
print("put", q:put(1))
print("full?", q:full(), #q)
print("put with timeout", q:put({1, 2, 3, 4}, 0.1))  -- Python: queue.Full
print("put_nowait", q:put_nowait("x"))
print("get", q:get())
print("get", q:get())
print("get with timeout", q:get(0.1))                -- Python: queue.Empty
print("get_nowait", q:get_nowait())

print("-- producer blocked by two consumers")

local function consumer(n, queue)
  while true do
    print("consumer " .. n .. ": waiting for item")
    local item, why = queue:get()
    if item == nil then                  -- closed and drained: the stop signal
      print("consumer " .. n .. ": queue " .. why)
      break
    end
    print("consumer " .. n .. ": has item " .. item)
    corun.sleep(0.1 * item)              -- 0.01 * item in the reference
    queue:task_done()
  end
  print("consumer " .. n .. ": ending")
end

local function producer(queue, num_workers)
  print("producer: starting")
  for i = 0, num_workers * 3 - 1 do
    queue:put(i)                         -- waits while two items are queued
    print("producer: added task " .. i .. " to the queue")
  end
  print("producer: waiting for queue to empty")
  queue:join()                           -- every item got and marked done
  print("producer: closing the queue")
  queue:close()                          -- instead of one None per consumer
  print("producer: ending")
end

local num_consumers = 2
local queue = corun.queue(num_consumers) -- maxsize 2: the producer blocks
local tasks = {}
for i = 0, num_consumers - 1 do
  tasks[#tasks + 1] = corun.spawn(consumer, i, queue)
end
tasks[#tasks + 1] = corun.spawn(producer, queue, num_consumers)
corun.wait(tasks)
