-- pingpong_limit.lua: pingpong workload on the limit scheduler. Two tasks
-- pass a counter through two unbounded queues N times: A puts n on q1, B
-- gets it and puts n+1 on q2, A gets that. Main joins both and checks the
-- count. Reports context switches per second (2 per round trip). Times with
-- os.clock (CPU time = wall time here).
local dir = arg[0]:match("^(.-)[^/]*$")
package.path = dir .. "?.lua;" .. dir .. "../?.lua;" .. package.path
local util = require "benchutil"
local limit = require "limit"

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

local function main()
  local t0 = os.clock()
  local q1, q2 = limit.queue(), limit.queue()
  local a = limit.spawn(ping, q1, q2)
  local b = limit.spawn(pong, q1, q2)
  local n = limit.join(a)
  limit.join(b)
  local dt = os.clock() - t0

  assert(n == N, "pingpong: bad count " .. tostring(n))
  util.result("pingpong", "rate=%.1f seconds=%.4f n=%d", 2 * N / dt, dt, N)
end

limit.run(main)
