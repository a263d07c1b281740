-- test/redis_chaos.lua: the Redis queue under failures, as make test runs
-- it (`corun test/redis_chaos.lua CORUN_BINARY`; about 10-30 s, bounded
-- to 120 s). A redis-server of its own (a free loopback port, appendonly
-- yes, appendfsync always, in a temporary directory); 5,000 items put;
-- 3 consumer processes x 4 tasks, each item taking a random 0-20 ms and
-- its effect written (HINCRBY <name>:effects item 1) before task_done.
-- Consumers are killed with kill -9 at random and restarted; the Redis
-- server is killed (kill -9) and restarted once mid-run. At the end every
-- item must have been processed (0 lost, none dead); the number processed
-- more than once is printed. Exits 1 on a loss.
local corun = require "corun"

local RUNNER = arg[1] or "build/bin/corun"
local N, CONSUMERS, TASKS, LIMIT = 5000, 3, 4, 120
local NAME = "chaos"

local CONSUMER = [[
local corun = require "corun"
local url, name, tasks = arg[1], arg[2], tonumber(arg[3])
local q = corun.redis.queue(url, name, {visibility = 1, max_deliveries = 1000})
local r = corun.redis.connect(url)
local list = {}
for k = 1, tasks do
  list[k] = corun.spawn(function()
    for item in q:iter() do
      corun.sleep(math.random(0, 20) / 1000)
      while not r:call("HINCRBY", name .. ":effects", item, 1) do
        corun.sleep(0.05)             -- Redis is restarting: the effect first
      end
      q:task_done()
    end
  end)
end
corun.gather(list)
q:disconnect()
]]

local function sh(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  f:close()
  return out
end

local dir = sh("mktemp -d"):gsub("%s+$", "")
local script = dir .. "/consumer.lua"
do
  local f = assert(io.open(script, "w"))
  f:write(CONSUMER)
  f:close()
end

local probe = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
local port = probe.port
probe:close()
local url = ("redis://127.0.0.1:%d/0"):format(port)

local server
local function start_redis()
  server = assert(corun.process.spawn("redis-server",
    { "--port", tostring(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "yes", "--appendfsync", "always", "--dir", dir },
    { stdout = "null" }))
  local r <close> = corun.redis.connect(url)
  for _ = 1, 200 do
    if r:call("PING") == "PONG" then return end
    corun.sleep(0.05)
  end
  error("redis-server did not start")
end

-- A command that waits out a Redis restart.
local r = corun.redis.connect(url)
local function call(...)
  for _ = 1, 400 do
    local v, err = r:call(...)
    if err == nil then return v end
    if not (err:find("^connection lost") or err:find("^cannot connect")
            or err:find("^LOADING")) then error(err) end
    corun.sleep(0.05)
  end
  error("Redis did not come back")
end

local consumers, kills = {}, 0
local function spawn_consumer(i)
  consumers[i] = assert(corun.process.spawn(RUNNER,
    { script, url, NAME, tostring(TASKS) }, { stdin = "null" }))
end

local ok, err = pcall(function()
  start_redis()
  local q = corun.redis.queue(url, NAME)
  local producers = {}
  for p = 1, 4 do
    producers[p] = corun.spawn(function()
      for i = p, N, 4 do assert(q:put(i)) end
    end)
  end
  corun.gather(producers)
  local t0 = corun.time()
  for i = 1, CONSUMERS do spawn_consumer(i) end
  local restarted = false
  while call("HLEN", NAME .. ":effects") < N do
    if corun.time() - t0 > LIMIT then error("not done after " .. LIMIT .. " s") end
    corun.sleep(0.2 + math.random() * 0.6)
    local i = math.random(CONSUMERS)
    consumers[i]:kill("kill")
    consumers[i]:wait()
    kills = kills + 1
    spawn_consumer(i)
    if not restarted and call("HLEN", NAME .. ":effects") > N // 3 then
      restarted = true
      server:kill("kill")
      server:wait()
      start_redis()
    end
  end
  assert(restarted, "the run ended before the Redis restart")
  assert(q:join(LIMIT), "join timed out")
  q:close()
  for i = 1, CONSUMERS do
    if not consumers[i]:wait(30) then consumers[i]:kill("kill") end
  end
  local effects = call("HGETALL", NAME .. ":effects")
  local seen, twice = {}, 0
  for i = 1, #effects, 2 do
    seen[tonumber(effects[i])] = true
    if tonumber(effects[i + 1]) > 1 then twice = twice + 1 end
  end
  local lost = 0
  for i = 1, N do if not seen[i] then lost = lost + 1 end end
  local dead = call("XLEN", NAME .. ":dead")
  print(("chaos: %d items, %d consumers x %d tasks, %d kill -9 of a consumer, "
    .. "1 Redis restart (kill -9, appendfsync always), %.1f s: %d lost, "
    .. "%d dead, %d processed more than once")
    :format(N, CONSUMERS, TASKS, kills, corun.time() - t0, lost, dead, twice))
  assert(lost == 0 and dead == 0, "items were lost")
  q:disconnect()
end)
for _, p in ipairs(consumers) do pcall(p.kill, p, "kill") end
if server then server:kill("term"); server:wait() end
r:close()
os.execute("rm -rf '" .. dir .. "'")
if not ok then
  io.stderr:write("chaos: FAILED: ", tostring(err), "\n")
  os.exit(1)
end
