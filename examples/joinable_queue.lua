-- Producers put food on a queue and wait in q:join() until every item has
-- been eaten; consumers mark each item with q:task_done(). Port of the
-- JoinableQueue demo in reference/multiprocessing-lock-queue.txt; its random
-- 1-3 s sleeps are replaced by fixed 0.1-0.3 s ones so the output is fixed.
local corun = require "corun"

local MAKE = { yjy = {0.15, 0.30}, wwb = {0.25, 0.25}, hhh = {0.10, 0.25} }
local EAT = { xx = {0.30, 0.30, 0.25}, yy = {0.15, 0.30, 0.30} }

local function producer(name, food, q)
  for i = 0, 1 do
    corun.sleep(MAKE[name][i + 1])     -- cooking
    local res = food .. i
    q:put(res)
    print(name .. " made " .. res)
  end
  q:join()                             -- until everything put has been eaten
  print(name .. " sees the queue done")
end

local function consumer(name, q)
  local n = 0
  while true do
    local res = q:get()
    n = n + 1
    corun.sleep(EAT[name][n])          -- eating
    print(name .. " ate " .. res)
    q:task_done()                      -- one more item processed
  end
end

local q = corun.queue()
local producers = {
  corun.spawn(producer, "yjy", "pork bones ", q),
  corun.spawn(producer, "wwb", "pickled fish ", q),
  corun.spawn(producer, "hhh", "pig trotters ", q),
}
local consumers = {
  corun.spawn(consumer, "xx", q),
  corun.spawn(consumer, "yy", q),
}

corun.gather(table.unpack(producers))  -- p1.join(); p2.join(); p3.join()
print("main ends")
-- The consumers were daemon processes; here they wait in get() forever,
-- so cancel them (the runner would also cancel them on exit).
for _, c in ipairs(consumers) do c:cancel() end
