-- spec/regress/011_redis_delay_spec.lua: delayed items on the Redis queue
-- (put(item, {delay = s}) and {at = unix_time}): held in <name>:retry on
-- the Redis server's clock, delivered when due, counted by join.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local rh = require "redis_helper"
local async = cb.async

describe("redis queue: delayed items", function()
  local env = rh.suite("delay")
  local URL
  setup(function() URL = env.url end)

  it("delivers a delayed item when due, after the ones put at once",
     async(function()
    local url = URL
    local name = helper.redis_prefix("delay")
    local q = corun.redis.queue(url, name)
    local t0 = corun.time()
    assert.is_true(q:put("later", { delay = 0.4 }))
    assert.is_true(q:put("now"))
    assert.equal("now", q:get(5))
    q:task_done()
    assert.equal("later", q:get(5))
    local waited = corun.time() - t0
    q:task_done()
    assert.is_true(waited >= 0.35, "waited " .. waited)
    assert.is_true(waited < 3, "waited " .. waited)   -- wide margin
    assert.is_true(q:join(5))
    q:disconnect()
  end))

  it("at = a Unix time; join waits for the delayed item", async(function()
    local url = URL
    local name = helper.redis_prefix("at")
    local q = corun.redis.queue(url, name)
    assert.is_true(q:put({ n = 1 }, { at = os.time() + 1 }))
    assert.same({ nil, "timeout" }, { q:join(0.1) })   -- not done yet
    local consumer = corun.spawn(function()
      local item = q:get(10)
      q:task_done()
      return item.n
    end)
    assert.is_true(q:join(10))
    assert.equal(1, consumer:join())
    q:disconnect()
  end))

  it("a closed queue refuses delayed puts; gets drain them first",
     async(function()
    local url = URL
    local name = helper.redis_prefix("delayclose")
    local q = corun.redis.queue(url, name)
    q:put("d", { delay = 0.2 })
    q:close()
    assert.same({ nil, "closed" }, { q:put("x", { delay = 1 }) })
    assert.equal("d", q:get(5))           -- not "closed" while it waits
    q:task_done()
    assert.same({ nil, "closed" }, { q:get(5) })
    q:disconnect()
  end))

  it("stats shows ready, delayed, in flight per consumer, dead, puts, done",
     async(function()
    local name = helper.redis_prefix("stats")
    local q = corun.redis.queue(URL, name, { consumer = "c1",
                                              max_deliveries = 1,
                                              prefetch = 1 })
    q:put("a"); q:put("b"); q:put("c")
    q:put("d", { delay = 60 })
    local a = q:get(5)                    -- held by c1
    local poison = corun.spawn(function()
      q:get(5)
      q:task_failed("boom")               -- max_deliveries 1: dead
    end)
    poison:join()
    local st = q:stats()
    assert.equal(1, st.ready)             -- "c"
    assert.equal(1, st.delayed)           -- "d"
    assert.equal(1, st.in_flight)         -- "a"
    assert.equal(1, st.consumers.c1.pending)
    assert.is_true(st.consumers.c1.idle >= 0)
    assert.equal(1, st.dead)
    assert.equal(4, st.puts)
    assert.equal(1, st.done)              -- the dead one counts as done
    assert.equal("a", a)
    q:task_done()
    q:disconnect()
  end))

  it("rejects bad options", async(function()
    local q = corun.redis.queue(URL, helper.redis_prefix("bad"))
    helper.raises("bad argument #2 to 'put' (delay must be a number of seconds >= 0)",
                  q.put, q, 1, { delay = -1 })
    helper.raises("bad argument #2 to 'put' (give delay or at, not both)",
                  q.put, q, 1, { delay = 1, at = 2 })
    helper.raises("bad argument #2 to 'put' (options table expected, got number)",
                  q.put, q, 1, 5)
    q:disconnect()
  end))
end)
