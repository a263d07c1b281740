-- channel_corun.lua: channel workload (corun only). A producer thread sends
-- N small tables ({i, i}) through a corun.channel(1024) to a consumer
-- thread, which adds up the first fields; main starts both, joins them and
-- checks the sum. Then the same N tables go through a corun.queue(1024)
-- between two tasks of one thread, for comparison (ratio = channel/queue).
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(1000000)
local CAPACITY = 1024

local function producer(ch, n)         -- thread bodies: no upvalues
  for i = 1, n do ch:send({i, i}) end
  ch:close()
end

local function consumer(ch)
  local sum = 0
  for item in ch:iter() do sum = sum + item[1] end
  return sum
end

local function through_channel()
  local t0 = corun.time()
  local ch = corun.channel(CAPACITY)
  local c = corun.thread(consumer, ch)
  local p = corun.thread(producer, ch, N)
  local sum = c:join()
  p:join()
  local dt = corun.time() - t0
  assert(sum == N * (N + 1) // 2, "channel: bad sum " .. tostring(sum))
  return dt
end

local function through_queue()
  local t0 = corun.time()
  local q = corun.queue(CAPACITY)
  local c = corun.spawn(function()
    local sum = 0
    for item in q:iter() do sum = sum + item[1] end
    return sum
  end)
  corun.spawn(function()
    for i = 1, N do q:put({i, i}) end
    q:close()
  end)
  local sum = c:join()
  local dt = corun.time() - t0
  assert(sum == N * (N + 1) // 2, "queue: bad sum " .. tostring(sum))
  return dt
end

collectgarbage()
local dt = through_channel()
collectgarbage()
local qdt = through_queue()
local rate = N > 0 and N / dt or 0
local qrate = N > 0 and N / qdt or 0
util.result("channel",
  "rate=%.1f seconds=%.4f n=%d queue_rate=%.1f queue_seconds=%.4f ratio=%.4f",
  rate, dt, N, qrate, qdt, qrate > 0 and rate / qrate or 0)
