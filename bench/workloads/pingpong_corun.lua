-- pingpong_corun.lua: pingpong workload on corun. Two tasks pass a counter
-- through two unbounded queues N times: A puts n on q1, B gets it and puts
-- n+1 on q2, A gets that. Main joins both and checks the count. Reports
-- context switches per second (2 per round trip).
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(500000)

local function ping(q1, q2)
  local n = 0
  for _ = 1, N do
    q1:put(n)
    n = q2:get()
  end
  return n
end

local function pong(q1, q2)
  for _ = 1, N do q2:put(q1:get() + 1) end
end

local t0 = corun.time()
local q1, q2 = corun.queue(), corun.queue()
local a = corun.spawn(ping, q1, q2)
local b = corun.spawn(pong, q1, q2)
local n = a:join()
b:join()
local dt = corun.time() - t0

assert(n == N, "pingpong: bad count " .. tostring(n))
util.result("pingpong", "rate=%.1f seconds=%.4f n=%d", 2 * N / dt, dt, N)
