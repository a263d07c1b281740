-- A distributed word count on corun.redis.queue: one producer and three
-- workers, each a separate `corun` process (as they would be on separate
-- machines), share one queue on Redis. The producer puts the lines of a
-- text and joins the queue; each worker takes lines, counts their words
-- into a Redis hash and acknowledges each line (task_done); close ends
-- the workers. The coordinator (this script run without arguments)
-- starts them all, waits, and prints the counts sorted.
--
--   corun examples/redis_wordcount.lua                      the coordinator
--   corun examples/redis_wordcount.lua producer URL NAME    one producer
--   corun examples/redis_wordcount.lua worker URL NAME      one worker
--
-- Needs a Redis server: $CORUN_REDIS_URL (redis://host:port/db), else the
-- coordinator starts a throwaway redis-server on a free port.
local corun = require "corun"

local TEXT = [[
The cat sat on the mat and the dog sat on the log
A cat and a dog met on a road and the road was long
The log was wet and the mat was dry and the cat was wet
On the long road the dog ran and the cat sat
A dog a cat a log a mat
The end
]]

local WORKERS = 3

local role, url, name = ...

if role == "producer" then
  local q = corun.redis.queue(url, name)
  local n = 0
  for line in TEXT:gmatch("[^\n]+") do
    q:put(line)                   -- a string: stays readable in the stream
    n = n + 1
  end
  print(("producer: put %d lines"):format(n))
  q:join()                        -- until every line has been acknowledged
  print("producer: every line counted")
  q:close()                       -- the workers drain it and stop
  q:disconnect()
  return
end

if role == "worker" then
  local q = corun.redis.queue(url, name)
  local r <close> = corun.redis.connect(url)
  for line in q:iter() do         -- until closed and drained
    local words = {}
    for word in line:lower():gmatch("%a+") do words[#words + 1] = word end
    r:pipeline(function(p)        -- one round trip per line
      for _, word in ipairs(words) do p:call("HINCRBY", name .. ":counts", word, 1) end
    end)
    q:task_done()                 -- only now: a worker that dies before
  end                             -- this line has its line re-delivered
  q:disconnect()
  return
end

--[[ the coordinator ]]

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

local server
url = os.getenv("CORUN_REDIS_URL")
if not url then url, server = start_redis() end
name = ("corun:example:words:%d"):format(math.random(1 << 30))

-- Start one role of this script as a separate corun process.
local function start(role)
  return assert(corun.process.spawn(arg[-1] or "corun",
    { arg[0], role, url, name }, { stdout = "pipe" }))
end

local workers = {}
for i = 1, WORKERS do workers[i] = start("worker") end
local producer = start("producer")

io.write(producer.stdout:read("a"))   -- what the producer said, in order
print("producer exited with " .. producer:wait())
for i, w in ipairs(workers) do
  w.stdout:read("a")
  print(("worker %d exited with %d"):format(i, w:wait()))
end

-- The counts, most frequent first, ties alphabetically.
local r <close> = corun.redis.connect(url)
local flat, counts = r:call("HGETALL", name .. ":counts"), {}
for i = 1, #flat, 2 do counts[#counts + 1] = { flat[i], tonumber(flat[i + 1]) } end
table.sort(counts, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local total = 0
for _, c in ipairs(counts) do
  print(("%-5s %d"):format(c[1], c[2]))
  total = total + c[2]
end
print(("%d words, %d different"):format(total, #counts))

r:call("DEL", name, name .. ":counts", name .. ":puts", name .. ":done",
       name .. ":closed", name .. ":dead")
if server then
  server:kill("term")
  server:wait()
end
