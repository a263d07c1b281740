-- spec/regress/015_redis_queue_spec.lua: issue 15 #6 and #10 (the Redis
-- queue, lua/corun/redis.lua):
-- - get / iter ride out a Redis restart (reconnect and retry with backoff)
--   instead of raising ".../corun/redis.lua:201: redis queue: get:
--   connection lost" at once; past the 'reconnect' option they raise an
--   error without a library file:line;
-- - put on a closed queue returns nil, "closed" (as corun.queue does) and
--   adds nothing; q:reopen() undoes close;
-- - a consumer process with a wrong password writes nothing on stderr:
--   the failure is the calls' result (captured and checked here).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local both, fail = helper.both, helper.fail
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

describe("regress 015: the Redis queue", function()
  after_each(helper.check)

  it("iter goes on across a Redis restart", async(function()
    local port, stop = helper.redis_server()
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    local ok, e = pcall(function()
      local q = corun.redis.queue(url, "jobs")
      local got = {}
      local consumer = corun.spawn(function()
        local c = corun.redis.queue(url, "jobs")
        for item in c:iter() do
          got[#got + 1] = item
          c:task_done()
        end
        c:disconnect()
      end)
      q:put(1)
      while #got < 1 do corun.sleep(0.02) end
      stop()                      -- down for a while: the consumer waits
      corun.sleep(0.5)
      local _
      _, stop = helper.redis_server(nil, port)
      q:put(2)
      q:put(3)
      assert.is_true(q:join(10))
      q:close()
      consumer:join(10)
      assert.same({ 1, 2, 3 }, got)
      q:disconnect()
    end)
    stop()
    if not ok then error(e, 0) end
  end))

  it("get gives up after 'reconnect' seconds with a clear error", async(function()
    local port, stop = helper.redis_server()
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    local q = corun.redis.queue(url, "jobs", { reconnect = 0.3 })
    q:put("x")
    assert.equal("x", q:get())
    q:task_done()
    stop()
    local t0 = corun.time()
    local okg, e = pcall(q.get, q)
    assert.is_false(okg)
    assert.equal("redis queue: get: connection lost (gave up reconnecting after 0.3 s)", e)
    assert.is_nil(e:find("redis.lua", 1, true))
    assert.is_true(corun.time() - t0 >= 0.25)
    -- get(timeout) shorter than that: nil, "timeout"
    local q2 = corun.redis.queue(url, "jobs")
    assert.same(fail("timeout"), both(q2:get(0.2)))
    -- iter raises the same clear error
    local oki, e2 = pcall(function() for _ in q:iter() do end end)
    assert.is_false(oki)
    assert.matches("^redis queue: get: connection lost", e2)
    q:disconnect()
    q2:disconnect()
  end))

  it("put on a closed queue returns nil, 'closed'; reopen undoes close", async(function()
    local url, _, stop = helper.redis()
    local name = helper.redis_prefix("regress015") .. "q"
    local q = corun.redis.queue(url, name)
    assert.is_true(q:put(1))
    q:close()
    assert.same(fail("closed"), both(q:put(2)))
    local r <close> = corun.redis.connect(url)
    assert.equal(1, r:call("XLEN", name))
    assert.equal("1", r:call("GET", name .. ":puts"))
    assert.equal(1, q:get())
    q:task_done()
    assert.same(fail("closed"), both(q:get()))
    q:reopen()
    assert.same(both(true), both(q:put(3)))
    assert.equal(3, q:get(5))
    q:task_done()
    assert.same(fail("timeout"), both(q:get(0.1)))
    assert.is_true(q:join(1))
    q:disconnect()
    stop()
  end))

  it("a consumer with a wrong password: a clear error, nothing on stderr", async(function()
    local port, stop = helper.redis_server({ "--requirepass", "right" })
    local code, out, err = corun.process.run(CORUN, { "-e", ([[
      local corun = require "corun"
      local q = corun.redis.queue("redis://:wrong@127.0.0.1:%d/0", "jobs")
      print(pcall(q.put, q, 1))
    ]]):format(port) })
    stop()
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^false\tredis queue: creating the consumer group: WRONGPASS", out)
  end))
end)
