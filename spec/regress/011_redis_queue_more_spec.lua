-- spec/regress/011_redis_queue_more_spec.lua: issue 11, the Redis queue
-- (lua/corun/redis.lua) beyond delivery: priorities, prefetch and
-- batched acknowledgements, max_item_bytes, put {replicas = n}, and bad
-- input: entries with odd fields, keys of the wrong type, Redis down
-- during put, get and task_done.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local rh = require "redis_helper"
local both, fail = helper.both, helper.fail
local async = cb.async

-- The number of EVALSHA calls the server has answered since CONFIG
-- RESETSTAT.
local function evalsha_calls(r)
  local info = r:call("INFO", "commandstats")
  return tonumber(info:match("cmdstat_evalsha:calls=(%d+)")) or 0
end

describe("regress 011: the Redis queue", function()
  local env = rh.suite("regress011")

  it("priorities: get serves the highest level first, in put order within a level",
  async(function()
    local q = corun.redis.queue(env.url, env.newname())
    q:put("low 1")
    q:put("high 1", { priority = 9 })
    q:put("mid 1", { priority = 5 })
    q:put("low 2", { priority = 0 })
    q:put("high 2", { priority = 9 })
    local st = q:stats()
    assert.equal(5, st.ready)
    assert.same({ ready = 2, in_flight = 0 }, st.priorities[9])
    assert.same({ ready = 1, in_flight = 0 }, st.priorities[5])
    local got = {}
    for i = 1, 5 do got[i] = q:get(5); q:task_done() end
    assert.same({ "high 1", "high 2", "mid 1", "low 1", "low 2" }, got)
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("priorities: a higher item put while a consumer waits is served before lower ones",
  async(function()
    local q = corun.redis.queue(env.url, env.newname(), { prefetch = 1 })
    for i = 1, 3 do q:put("low " .. i) end
    assert.equal("low 1", q:get(5)); q:task_done()
    q:put("urgent", { priority = 7 })
    assert.equal("urgent", q:get(5)); q:task_done()
    assert.equal("low 2", q:get(5)); q:task_done()
    assert.equal("low 3", q:get(5)); q:task_done()
    q:disconnect()
  end))

  it("priorities: delayed puts, retries and dead letters keep their level; join counts every level",
  async(function()
    local q = corun.redis.queue(env.url, env.newname(),
      { backoff_base = 0.05, max_deliveries = 2, prefetch = 1 })
    q:put("later high", { delay = 0.2, priority = 8 })
    q:put("low")
    assert.equal("low", q:get(5))
    q:task_failed("again")                 -- back after ~0.05 s, level 0
    corun.sleep(0.4)
    assert.equal("later high", q:get(5))   -- level 8 first
    q:task_failed("no")                    -- retried at level 8
    corun.sleep(0.3)
    assert.equal("later high", q:get(5))
    q:task_failed("still no")              -- 2 attempts: dead
    assert.equal("low", q:get(5))
    q:task_done()
    assert.is_true(q:join(1))
    local d = q:dead()
    assert.equal(1, #d)
    assert.equal(8, d[1].priority)
    assert.equal("still no", d[1].error)
    q:put("low 2")
    assert.equal(1, q:requeue_dead("all"))
    assert.equal("later high", q:get(5)); q:task_done()   -- level 8 again
    assert.equal("low 2", q:get(5)); q:task_done()
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("rejects bad priorities naming the argument", async(function()
    local q = corun.redis.queue(env.url, env.newname())
    helper.raises("bad argument #2 to 'put' (priority must be an integer 0..9)",
                  q.put, q, 1, { priority = 10 })
    helper.raises("priority must be an integer 0..9", q.put, q, 1, { priority = 1.5 })
    helper.raises("priority must be an integer 0..9", q.put, q, 1, { priority = "high" })
    q:disconnect()
  end))

  it("prefetch: one object reads up to 'prefetch' entries, all held; its tasks share them",
  async(function()
    local name = env.newname()
    local q = corun.redis.queue(env.url, name, { prefetch = 5, consumer = "c" })
    for i = 1, 12 do q:put(i) end
    local r <close> = corun.redis.connect(env.url)
    local got, tasks = {}, {}
    local first = q:get(5)
    -- five read in one go: one for this task, four waiting in the object
    assert.equal(5, r:call("XPENDING", name, "corun")[1])
    got[#got + 1] = first
    q:task_done()
    for k = 1, 3 do
      tasks[k] = corun.spawn(function()
        while true do
          local item = q:get(0.3)
          if item == nil then return end
          got[#got + 1] = item
          q:task_done()
        end
      end)
    end
    corun.gather(tasks)
    table.sort(got)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, got)
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("prefetch: acknowledgements of concurrent tasks go in batches (fewer script calls than items)",
  async(function()
    local port, stop = helper.redis_server()
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    local ok, e = pcall(function()
      local q = corun.redis.queue(url, "jobs")
      local puts = {}
      for k = 1, 4 do
        puts[k] = corun.spawn(function()
          for i = 1, 50 do q:put(k * 1000 + i) end
        end)
      end
      corun.gather(puts)
      local r <close> = corun.redis.connect(url)
      assert.equal(200, r:call("XLEN", "jobs"))
      r:call("CONFIG", "RESETSTAT")
      local n, tasks = 0, {}
      for k = 1, 4 do
        tasks[k] = corun.spawn(function()
          for _ = 1, 50 do
            assert(q:get(5))
            n = n + 1
            q:task_done()
          end
        end)
      end
      corun.gather(tasks)
      assert.equal(200, n)
      assert.is_true(q:join(1))
      local calls = evalsha_calls(r)
      -- one per task_done would be 200, plus the fetches
      assert.is_true(calls < 120, ("%d script calls for 200 items"):format(calls))
      q:disconnect()
    end)
    stop()
    if not ok then error(e, 0) end
  end))

  it("prefetch: disconnect gives the prefetched entries back at once, delivery counts unchanged",
  async(function()
    local name = env.newname()
    local q = corun.redis.queue(env.url, name, { prefetch = 10 })
    for i = 1, 10 do q:put(i) end
    assert.equal(1, q:get(5))
    q:task_done()
    q:disconnect()
    local q2 = corun.redis.queue(env.url, name, { visibility = 60 })
    local t0, got = corun.time(), {}
    for i = 1, 9 do got[i] = q2:get(5) end
    assert.is_true(corun.time() - t0 < 5)  -- not after visibility (60 s)
    assert.same({ 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    local r <close> = corun.redis.connect(env.url)
    for _, p in ipairs(r:call("XPENDING", name, "corun", "-", "+", 20)) do
      assert.equal(1, p[4])                 -- delivered once, to q2
    end
    for _ = 1, 9 do q2:task_done() end
    assert.is_true(q2:join(1))
    q2:disconnect()
  end))

  it("rejects a bad prefetch option", function()
    helper.raises("bad argument #3 to 'queue' (prefetch must be an integer >= 1)",
                  corun.redis.queue, "redis://127.0.0.1:1/0", "x", { prefetch = 0 })
    helper.raises("prefetch must be an integer >= 1", corun.redis.queue,
                  "redis://127.0.0.1:1/0", "x", { prefetch = 2.5 })
  end)

  it("max_item_bytes: a larger item is refused at put naming the argument; nothing added",
  async(function()
    local name = env.newname()
    local q = corun.redis.queue(env.url, name, { max_item_bytes = 100 })
    assert.is_true(q:put(("x"):rep(100)))
    helper.raises("bad argument #1 to 'put' (item too large: 101 bytes stored, "
                  .. "max_item_bytes is 100)", q.put, q, ("x"):rep(101))
    helper.raises("bad argument #1 to 'put' (item too large", q.put, q,
                  { list = { ("y"):rep(200) } })
    helper.raises("bad argument #1 to 'put' (item too large", q.put, q,
                  ("x"):rep(101), { delay = 1 })
    local big = corun.redis.queue(env.url, name)  -- the default: 1 MiB
    assert.is_true(big:put(("z"):rep(1024 * 1024)))
    helper.raises("item too large: 1048577 bytes stored, max_item_bytes is 1048576",
                  big.put, big, ("z"):rep(1024 * 1024 + 1))
    local st = q:stats()
    assert.equal(2, st.ready)
    assert.equal(2, st.puts)
    helper.raises("max_item_bytes must be an integer >= 1", corun.redis.queue,
                  env.url, name, { max_item_bytes = 0 })
    q:disconnect()
    big:disconnect()
  end))

  it("put {replicas = n}: true once n replicas have it; else says how many did",
  async(function()
    local port, stop = helper.redis_server()
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    local rport, rstop
    local dir = os.tmpname()
    os.remove(dir)
    local ok, e = pcall(function()
      local q = corun.redis.queue(url, "jobs")
      local res = both(q:put("a", { replicas = 1, timeout = 0.2 }))
      assert.equal(nil, res[1])
      assert.equal("replicas: 0 of 1 acknowledged within 0.2 s (the item "
                   .. "is queued, but a failover now can lose it)", res[2])
      -- a replica writes the master's data to dump.rdb in its --dir
      os.execute("mkdir -p " .. dir)
      rport, rstop = helper.redis_server({ "--replicaof", "127.0.0.1",
                                           tostring(port), "--dir", dir })
      local r <close> = corun.redis.connect(url)
      for _ = 1, 200 do
        local info = r:call("INFO", "replication")
        if info:find("connected_slaves:1", 1, true)
           and info:find("state=online", 1, true) then break end
        corun.sleep(0.05)
      end
      assert.is_true(q:put("b", { replicas = 1, timeout = 5 }))
      local rr <close> = corun.redis.connect(("redis://127.0.0.1:%d/0"):format(rport))
      assert.equal(2, rr:call("XLEN", "jobs"))   -- both on the replica
      assert.equal("a", q:get(5)); q:task_done()
      assert.equal("b", q:get(5)); q:task_done()
      helper.raises("bad argument #2 to 'put' (replicas must be an integer >= 1)",
                    q.put, q, "c", { replicas = 0 })
      helper.raises("replicas is for immediate puts", q.put, q, "c",
                    { replicas = 1, delay = 1 })
      q:disconnect()
    end)
    if rstop then rstop() end
    stop()
    os.execute("rm -rf " .. dir)
    if not ok then error(e, 0) end
  end))

  it("an entry with odd fields goes to the dead letters with its reason; later gets work",
  async(function()
    local name = env.newname()
    local q = corun.redis.queue(env.url, name)
    q:put("before")
    local r <close> = corun.redis.connect(env.url)
    local odd = r:call("XADD", name, "*", "foo", "bar", "n", "1")
    r:call("XADD", name, "*", "c", "not the codec")
    q:put("after")
    local got, errs = {}, {}
    for _ = 1, 4 do
      local item, err = q:get(5)
      if item then got[#got + 1] = item; q:task_done()
      else errs[#errs + 1] = err end
    end
    assert.same({ "before", "after" }, got)
    assert.equal(("malformed entry %s: unknown encoding"):format(odd), errs[1])
    assert.truthy(errs[2]:find("^malformed entry %d+%-%d+: "))
    local d = q:dead()
    assert.equal(2, #d)
    assert.equal(odd, d[1].entry)
    assert.equal("unknown encoding", d[1].why)
    assert.equal('"foo" "bar" "n" "1"', d[1].fields)
    assert.equal(q.consumer, d[1].consumer)
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("a key of the wrong type named like the queue: the error names the key",
  async(function()
    local r <close> = corun.redis.connect(env.url)
    local name = env.newname()
    r:call("SET", name, "not a stream")
    local q = corun.redis.queue(env.url, name)
    helper.raises(("redis queue: put: key '%s' holds a string, not the stream")
                  :format(name), q.put, q, 1)
    helper.raises(("redis queue: get: key '%s' holds a string"):format(name),
                  q.get, q, 1)
    local name2 = env.newname()
    r:call("LPUSH", name2 .. ":retry", "x")
    local q2 = corun.redis.queue(env.url, name2)
    helper.raises(("key '%s:retry' holds a list, not the zset"):format(name2),
                  q2.put, q2, 1)
    -- changed under a queue already set up
    local name3 = env.newname()
    local q3 = corun.redis.queue(env.url, name3)
    q3:put(1)
    r:call("DEL", name3 .. ":puts")
    r:call("HSET", name3 .. ":puts", "a", "b")
    helper.raises(("redis queue: put: key '%s:puts' holds a hash, not the string")
                  :format(name3), q3.put, q3, 2)
    q:disconnect(); q2:disconnect(); q3:disconnect()
  end))

  it("Redis down: put, get and task_done raise a clear error after 'reconnect'; nothing hangs",
  async(function()
    local port, stop = helper.redis_server()
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    local q = corun.redis.queue(url, "jobs", { reconnect = 0.3 })
    q:put("x")
    assert.equal("x", q:get(5))
    stop()
    local t0 = corun.time()
    local e = helper.raises("redis queue: put: ", q.put, q, "y")
    assert.truthy(e:find("gave up reconnecting after 0.3 s", 1, true))
    e = helper.raises("redis queue: task_done: ", q.task_done, q)
    assert.truthy(e:find("gave up reconnecting after 0.3 s", 1, true))
    e = helper.raises("redis queue: get: ", q.get, q)
    assert.truthy(e:find("gave up reconnecting after 0.3 s", 1, true))
    assert.is_true(corun.time() - t0 < 10)
    -- task_done failed: the item is still held by this task
    helper.raises("redis queue: task_done: ", q.task_done, q)
    q:disconnect()
  end))

  it("Redis restarted during task_done (append-only file): the ack goes through once Redis is back; nothing unprocessed is acknowledged",
  async(function()
    local url, port, restart, finish = rh.durable_server()
    local ok, e = pcall(function()
      local q = corun.redis.queue(url, "jobs", { visibility = 0.5 })
      q:put("a"); q:put("b")
      local got, down = corun.event(), corun.event()
      local worker = corun.spawn(function()
        assert.equal("a", q:get(5))         -- "b" prefetched, not processed
        got:set()
        down:wait()
        q:task_done()                       -- retries until Redis is back
      end)
      got:wait()
      rh.cli(port, "SHUTDOWN")              -- down (the AOF is synced)
      down:set()
      corun.sleep(0.5)
      assert.equal("pending", worker:status())   -- still retrying
      restart()
      worker:join(10)
      q:disconnect()                        -- gives "b" back
      local fresh = corun.redis.queue(url, "jobs", { visibility = 0.5 })
      -- "b" (held by q's buffer, never processed) comes back; "a" does not
      assert.equal("b", fresh:get(10))
      fresh:task_done()
      assert.same(fail("timeout"), both(fresh:get(1)))
      assert.is_true(fresh:join(1))
      local st = fresh:stats()
      assert.equal(2, st.done)
      q:disconnect()
      fresh:disconnect()
    end)
    finish()
    if not ok then error(e, 0) end
  end))
end)
