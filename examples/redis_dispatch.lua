-- A background dispatcher fed from Redis: a thread (corun.thread) pulls
-- jobs from a Redis list with BLPOP and hands each to the main loop
-- (loop:submit), where it runs as a task. The jobs run concurrently, so
-- jobs of 5 s, 3 s and 1 s finish in 5 s in all, not 9. Port of the last
-- program of reference/asyncio-background-loop-redis-queue.txt (the
-- consumer thread and run_coroutine_threadsafe), with the times scaled
-- to 0.5, 0.3 and 0.1 s.
-- Needs a Redis server: $CORUN_REDIS_URL (redis://host:port/db), else it
-- starts a throwaway redis-server on a free port and stops it at the end.
local corun = require "corun"

-- A redis-server of our own on a free loopback port, persistence off.
local function start_redis()
  local probe = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
  local port = probe.port                     -- a free port: bind port 0
  probe:close()
  local server = assert(corun.process.spawn("redis-server",
    { "--port", tostring(port), "--bind", "127.0.0.1", "--save", "",
      "--appendonly", "no" }, { stdout = "null" }))
  local url = ("redis://127.0.0.1:%d/0"):format(port)
  local r <close> = corun.redis.connect(url)
  for _ = 1, 100 do                           -- until it answers
    if r:call("PING") == "PONG" then return url, server end
    corun.sleep(0.05)
  end
  error("redis-server did not start")
end

local url, server = os.getenv("CORUN_REDIS_URL"), nil
if not url then url, server = start_redis() end
local key = ("corun:example:dispatch:%d"):format(math.random(1 << 30))

-- The dispatcher runs in its own OS thread, with its own loop and its own
-- Redis connection: it only waits on Redis and hands work over. A thread
-- function gets everything as arguments (it is copied to the new thread).
local function dispatcher(url, key, main, t0)
  local corun = require "corun"
  local r <close> = corun.redis.connect(url)
  local jobs = {}
  while true do
    local popped = assert(r:call("BLPOP", key, 0))  -- {key, value}: waits
    if popped[2] == "stop" then break end
    local secs = tonumber(popped[2])
    print(("dispatcher: got a %.1f s job"):format(secs))
    -- run it as a task of the main loop (run_coroutine_threadsafe)
    jobs[#jobs + 1] = main:submit(function(secs, t0)
      local corun = require "corun"
      corun.sleep(secs)                      -- the job: asyncio.sleep(x)
      local tenths = math.floor((corun.time() - t0) * 10)
      print(("job of %.1f s done at %.1f s"):format(secs, tenths / 10))
    end, secs, t0)
  end
  for _, job in ipairs(jobs) do job:wait() end
  return #jobs
end

local t0 = corun.time()
local th = corun.thread(dispatcher, url, key, corun.loop(), t0)

-- The producer side: push the jobs (in the reference, by hand with
-- redis-cli: LPUSH queue 5, 3, 1), then a "stop" for the dispatcher.
local r <close> = corun.redis.connect(url)
r:call("RPUSH", key, "0.5", "0.3", "0.1", "stop")

local n = th:join()
local tenths = math.floor((corun.time() - t0) * 10)
print(("%d jobs done in %.1f s (one after the other: 0.9 s)"):format(n, tenths / 10))

r:call("DEL", key)
if server then
  server:kill("term")
  server:wait()
end
