-- redis_corun.lua: N items (100,000) through a corun.redis.queue on a
-- redis-server this script starts itself (free loopback port, persistence
-- off). 4 producer tasks share one queue object and put the integers
-- 1..N; 4 consumer TASKS in this process (each its own queue object, so
-- its own two connections) get them, add them up and call task_done. Main
-- joins the queue, closes it, checks the sum: rate = N / time from the
-- first put to the end of join.
-- Then, on the same server, `redis-benchmark -t lpush,lpop -n 100000 -q`
-- (50 clients, no pipelining): a bare Redis list as a queue needs one
-- LPUSH and one LPOP per item, so its items/s is 1 / (1/lpush + 1/lpop).
-- ratio = rate / that. An item of corun.redis.queue costs 4 round trips
-- and 6 commands (XADD+INCR, XAUTOCLAIM, XREADGROUP, XACK+INCR).
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(100000)
local PRODUCERS, CONSUMERS = 4, 4

local function start_redis()
  local probe = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
  local port = probe.port
  probe:close()
  local server = assert(corun.process.spawn("redis-server",
    { "--port", tostring(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no" }, { stdout = "null" }))
  local url = ("redis://127.0.0.1:%d/0"):format(port)
  local r <close> = corun.redis.connect(url)
  for _ = 1, 200 do
    if r:call("PING") == "PONG" then return url, port, server end
    corun.sleep(0.05)
  end
  error("redis-server did not start")
end

local url, port, server = start_redis()
local ok, err = pcall(function()
  local name = "bench:redis"
  local q = corun.redis.queue(url, name)
  local sums, consumers = {}, {}
  for k = 1, CONSUMERS do
    sums[k] = 0
    consumers[k] = corun.spawn(function()
      local c = corun.redis.queue(url, name, { consumer = "c" .. k })
      for item in c:iter() do
        sums[k] = sums[k] + item
        c:task_done()
      end
      c:disconnect()
    end)
  end
  local t0 = corun.time()
  local producers = {}
  for p = 0, PRODUCERS - 1 do
    producers[p + 1] = corun.spawn(function()
      for i = p * N // PRODUCERS + 1, (p + 1) * N // PRODUCERS do q:put(i) end
    end)
  end
  corun.gather(producers)
  q:join()
  local dt = corun.time() - t0
  q:close()
  corun.gather(consumers)
  q:disconnect()
  local sum = 0
  for k = 1, CONSUMERS do sum = sum + sums[k] end
  assert(sum == N * (N + 1) // 2, "redis: bad sum " .. sum)

  -- the same server, a bare list: redis-benchmark
  local code, out = corun.process.run("redis-benchmark",
    { "-p", tostring(port), "-t", "lpush,lpop", "-n", tostring(math.max(N, 1)), "-q" })
  assert(code == 0, "redis-benchmark failed")
  local lpush = tonumber(out:match("LPUSH: ([%d.]+) requests per second"))
  local lpop = tonumber(out:match("LPOP: ([%d.]+) requests per second"))
  assert(lpush and lpop, "cannot read redis-benchmark's output")
  local list_rate = 1 / (1 / lpush + 1 / lpop)
  local rate = N > 0 and N / dt or 0
  util.result("redis", "rate=%.1f seconds=%.4f n=%d consumers=%d lpush=%.1f "
    .. "lpop=%.1f list_rate=%.1f ratio=%.3f", rate, dt, N, CONSUMERS, lpush,
    lpop, list_rate, rate / list_rate)
end)
server:kill("term")
server:wait()
if not ok then error(err, 0) end
