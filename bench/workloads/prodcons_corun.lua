-- prodcons_corun.lua: producer/consumer workload on corun. 4 producers put
-- N items in total into one queue of maxsize 64; 4 consumers get them, add
-- them up and call task_done. Main waits for the producers, joins the
-- queue, closes it (consumers see nil, "closed" and end), checks the sum.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

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

local t0 = corun.time()
local q, sums, producers = corun.queue(MAXSIZE), {}, {}
for k = 1, C do
  sums[k] = 0
  corun.spawn(consumer, q, sums, k)
end
for p = 0, P - 1 do
  producers[p + 1] = corun.spawn(producer, q, p * N // P + 1, (p + 1) * N // P)
end
for p = 1, P do producers[p]:join() end
q:join()
local dt = corun.time() - t0
q:close()

local sum = 0
for k = 1, C do sum = sum + sums[k] end
assert(sum == N * (N + 1) // 2, "prodcons: bad sum " .. sum)
util.result("prodcons", "rate=%.1f seconds=%.4f n=%d", N / dt, dt, N)
