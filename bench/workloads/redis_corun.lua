-- redis_corun.lua: N items (100,000) through a corun.redis.queue on a
-- redis-server this script starts itself (free loopback port, persistence
-- off), in the shape of a real deployment: 1 producer process (4 tasks
-- sharing one queue object) putting the integers 1..N, and 2 consumer
-- processes x 4 tasks (one queue object per process, default prefetch)
-- that get them, add them up and call task_done. The time runs from the
-- producer's first put to the end of its join: rate = N / time.
-- The same shape on a bare Redis list: the producer's 4 tasks LPUSH on one
-- connection, the consumers' tasks BRPOP (a connection each); the time
-- runs from the first LPUSH until every consumer has popped its share
-- (then a stop item each): list_rate. ratio = rate / list_rate.
-- Last, on the same server, `redis-benchmark -t lpush,lpop -n N -q` (50
-- clients, no pipelining): one LPUSH and one LPOP per item gives
-- 1 / (1/lpush + 1/lpop) items/s (rb_rate).
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N = util.scaled(100000)
local CONSUMERS, TASKS, PTASKS = 2, 4, 4
local RUNNER = require("corun.core").process.exe()  -- this runner

-- The child processes: corun -e CODE url name n (args in arg[1..]).
local QUEUE_PRODUCER = [[
local corun = require "corun"
local url, name, n, tasks = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local q = corun.redis.queue(url, name)
io.read("l")                      -- the go signal: consumers are ready
local t0 = corun.time()
local list = {}
for p = 1, tasks do
  list[p] = corun.spawn(function()
    for i = p, n, tasks do q:put(i) end
  end)
end
corun.gather(list)
assert(q:join())
io.write(("%.6f\n"):format(corun.time() - t0))
q:close()
q:disconnect()
]]

local QUEUE_CONSUMER = [[
local corun = require "corun"
local url, name, tasks = arg[1], arg[2], tonumber(arg[3])
local q = corun.redis.queue(url, name)
local sum, list = 0, {}
for k = 1, tasks do
  list[k] = corun.spawn(function()
    for item in q:iter() do sum = sum + item; q:task_done() end
  end)
end
corun.gather(list)
q:disconnect()
io.write(sum, "\n")
]]

local LIST_PRODUCER = [[
local corun = require "corun"
local url, name, n, tasks, stops = arg[1], arg[2], tonumber(arg[3]),
  tonumber(arg[4]), tonumber(arg[5])
local r = corun.redis.connect(url)
assert(r:call("PING"))
io.read("l")
local t0 = corun.time()
local list = {}
for p = 1, tasks do
  list[p] = corun.spawn(function()
    for i = p, n, tasks do assert(r:call("LPUSH", name, i)) end
  end)
end
corun.gather(list)
for _ = 1, stops do assert(r:call("LPUSH", name, "stop")) end
-- the consumers say when they are done: the last one ends the timing
assert(r:call("BRPOP", name .. ":done", 60))
for _ = 2, stops // tasks do assert(r:call("BRPOP", name .. ":done", 60)) end
io.write(("%.6f\n"):format(corun.time() - t0))
]]

local LIST_CONSUMER = [[
local corun = require "corun"
local url, name, tasks = arg[1], arg[2], tonumber(arg[3])
local sum, list = 0, {}
for k = 1, tasks do
  list[k] = corun.spawn(function()
    local r = corun.redis.connect(url)
    while true do
      local v = assert(r:call("BRPOP", name, 60))
      if v[2] == "stop" then break end
      sum = sum + tonumber(v[2])
    end
    r:close()
  end)
end
corun.gather(list)
local r = corun.redis.connect(url)
r:call("LPUSH", name .. ":done", 1)
r:close()
io.write(sum, "\n")
]]

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

-- Run one shape: the consumers, then the producer (told to go once the
-- consumers had time to connect); returns the producer's time and the sum
-- the consumers made.
local function shape(url, name, producer, consumer, extra)
  local kids = {}
  for k = 1, CONSUMERS do
    kids[k] = assert(corun.process.spawn(RUNNER,
      { "-e", consumer, url, name, tostring(TASKS) }, { stdout = "pipe" }))
  end
  local p = assert(corun.process.spawn(RUNNER,
    { "-e", producer, url, name, tostring(N), tostring(PTASKS), extra },
    { stdin = "pipe", stdout = "pipe" }))
  corun.sleep(0.5)
  p.stdin:write("go\n")
  local dt = tonumber(p.stdout:read("a"))
  assert(p:wait() == 0 and dt, "producer failed")
  local sum = 0
  for _, k in ipairs(kids) do
    sum = sum + assert(tonumber(k.stdout:read("a")), "consumer failed")
    k:wait()
  end
  assert(sum == N * (N + 1) // 2, "bad sum " .. sum)
  return dt
end

local url, port, server = start_redis()
local ok, err = pcall(function()
  local dt = shape(url, "bench:queue", QUEUE_PRODUCER, QUEUE_CONSUMER)
  local list_dt = shape(url, "bench:list", LIST_PRODUCER, LIST_CONSUMER,
                        tostring(CONSUMERS * TASKS))
  local code, out = corun.process.run("redis-benchmark",
    { "-p", tostring(port), "-t", "lpush,lpop", "-n", tostring(math.max(N, 1)), "-q" })
  assert(code == 0, "redis-benchmark failed")
  local lpush = tonumber(out:match("LPUSH: ([%d.]+) requests per second"))
  local lpop = tonumber(out:match("LPOP: ([%d.]+) requests per second"))
  assert(lpush and lpop, "cannot read redis-benchmark's output")
  local rate = N > 0 and N / dt or 0
  local list_rate = N > 0 and N / list_dt or 0
  util.result("redis", "rate=%.1f seconds=%.4f n=%d consumers=%d tasks=%d "
    .. "list_rate=%.1f lpush=%.1f lpop=%.1f rb_rate=%.1f ratio=%.3f "
    .. "rb_ratio=%.3f", rate, dt, N, CONSUMERS, TASKS, list_rate, lpush,
    lpop, 1 / (1 / lpush + 1 / lpop), list_rate > 0 and rate / list_rate or 0,
    rate / (1 / (1 / lpush + 1 / lpop)))
end)
server:kill("term")
server:wait()
if not ok then error(err, 0) end
