-- prodcons_limit.lua: producer/consumer workload on the limit scheduler.
-- 4 producers put N items in total into one queue of maxsize 64; 4
-- consumers get them, add them up and call task_done. Main waits for the
-- producers, joins the queue, closes it (consumers get nil and end), checks
-- the sum. Times with os.clock (CPU time = wall time here).
local dir = arg[0]:match("^(.-)[^/]*$")
package.path = dir .. "?.lua;" .. dir .. "../?.lua;" .. package.path
local util = require "benchutil"
local limit = require "limit"

local N = util.scaled(1000000)
local P, C, MAXSIZE = 4, 4, 64

local function producer(q, lo, hi)
  for i = lo, hi do q:put(i) end
end

local function consumer(q, sums, k)
  local s = 0
  while true do
    local item = q:get()
    if item == nil then break end
    s = s + item
    sums[k] = s
    q:task_done()
  end
end

local function main()
  local t0 = os.clock()
  local q, sums, producers = limit.queue(MAXSIZE), {}, {}
  for k = 1, C do
    sums[k] = 0
    limit.spawn(consumer, q, sums, k)
  end
  for p = 0, P - 1 do
    producers[p + 1] = limit.spawn(producer, q, p * N // P + 1,
      (p + 1) * N // P)
  end
  for p = 1, P do limit.join(producers[p]) end
  q:join()
  local dt = os.clock() - t0
  q:close()

  local sum = 0
  for k = 1, C do sum = sum + sums[k] end
  assert(sum == N * (N + 1) // 2, "prodcons: bad sum " .. sum)
  util.result("prodcons", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
end

limit.run(main)
