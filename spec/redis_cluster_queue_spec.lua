-- spec/redis_cluster_queue_spec.lua: corun.redis.queue on a Redis Cluster:
-- a queue name needs a hash tag; {shards = K} spreads a queue over K
-- streams on different masters (lua/corun/redis_shards.lua), consumers
-- read every shard, and join, close, stats, delays and dead letters work
-- across the shards. The cluster: CORUN_REDIS_CLUSTER or one of our own
-- (spec/cluster_helper.lua).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local ch = require "cluster_helper"
local raises = helper.raises
local async = cb.async

describe("corun.redis.queue on a Redis Cluster", function()
  local url, dir, stop, P
  setup(function()
    url, dir, stop = ch.cluster()
    P = helper.redis_prefix("cqueue"):gsub("[{}]", "")
  end)
  teardown(function() stop() end)
  after_each(helper.check)

  local n = 0
  local function newname()
    n = n + 1
    return P .. n
  end

  it("a name without a hash tag is refused; with one the queue works", async(function()
    raises("on a Redis Cluster the name needs a hash tag", corun.redis.queue, url, newname())
    local q = corun.redis.queue(url, "{" .. newname() .. "}")
    for i = 1, 5 do assert.is_true(q:put(i)) end
    for i = 1, 5 do assert.equal(i, q:get(5)); q:task_done() end
    assert.is_true(q:join(5))
    q:disconnect()
  end))

  it("no node answering: the queue retries for 'reconnect' s, then a clear error",
  async(function()
    local dead = ("redis://127.0.0.1:%d/?cluster=1"):format(helper.free_port())
    local q = corun.redis.queue(dead, "{" .. newname() .. "}", { reconnect = 0.3 })
    local t0 = corun.time()
    local e = raises("redis queue: creating the consumer group: cannot connect to "
                     .. "the cluster: no node gave its slot map", q.put, q, 1)
    assert.matches("%(gave up reconnecting after 0%.3 s%)$", e)
    assert(corun.time() - t0 >= 0.29 and corun.time() - t0 < 10)
    local s = corun.redis.queue(dead, newname(), { shards = 2, reconnect = 0.1 })
    e = raises("redis queue: get: cannot connect to the cluster", s.get, s)
    assert.matches("%(gave up reconnecting after 0%.1 s%)$", e)
  end))

  it("shards = 3: three streams on the three masters, every item delivered once",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { shards = 3 })
    local r <close> = corun.redis.connect(url)
    local masters, on = assert(r:masters()), {}
    for i, sq in ipairs(q.shards) do
      assert.matches("^{" .. name:gsub("%p", "%%%0") .. ":" .. (i - 1), sq.name)
      on[select(2, r:node_for(sq.name))] = true
    end
    for _, m in ipairs(masters) do assert(on[m], "no shard on " .. m) end
    for i = 1, 300 do assert.is_true(q:put(i)) end
    for _, sq in ipairs(q.shards) do assert.equal(100, r:call("XLEN", sq.name)) end
    -- two consumer objects, two tasks each
    local q2 = corun.redis.queue(url, name, { shards = 3 })
    local seen, count = {}, 0
    local function consume(qq)
      for item in qq:iter() do
        assert.is_nil(seen[item])
        seen[item] = true
        count = count + 1
        qq:task_done()
      end
    end
    local tasks = {}
    for _, qq in ipairs { q, q, q2, q2 } do tasks[#tasks + 1] = corun.spawn(consume, qq) end
    assert.is_true(q:join(20))
    local st = q:stats()
    assert.equal(300, st.puts)
    assert.equal(300, st.done)
    assert.equal(0, st.ready)
    assert.equal(0, st.in_flight)
    assert.equal(3, #st.shards)
    for _, s in ipairs(st.shards) do assert.equal(100, s.puts) end
    q:close()
    for _, t in ipairs(tasks) do t:join(10) end
    assert.equal(300, count)
    for i = 1, 300 do assert(seen[i], "item " .. i .. " never got") end
    assert.same({ nil, "closed" }, { q2:get(1) })
    q:disconnect()
    q2:disconnect()
  end))

  it("delays, retries and dead letters across the shards", async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { shards = 3, max_deliveries = 2,
                                             backoff_base = 0.05 })
    local t0 = corun.time()
    assert.is_true(q:put("later", { delay = 0.3 }))
    assert.is_true(q:put("poison"))
    assert.is_true(q:put("now"))
    local got = {}
    for _ = 1, 2 do
      local item = q:get(5)
      got[#got + 1] = item
      if item == "poison" then q:task_failed("boom") else q:task_done() end
    end
    -- poison again after its backoff, and the delayed one
    for _ = 1, 2 do
      local item = q:get(5)
      got[#got + 1] = item
      if item == "poison" then q:task_failed("boom again") else
        assert(corun.time() - t0 >= 0.29, "delivered early")
        q:task_done()
      end
    end
    table.sort(got)
    assert.same({ "later", "now", "poison", "poison" }, got)
    assert.is_true(q:join(5))
    local dead = q:dead()
    assert.equal(1, #dead)
    assert.equal("poison", dead[1].item)
    assert.equal("boom again", dead[1].error)
    assert.equal(q.shards[dead[1].shard].name, q.shards[dead[1].shard].name)
    local st = q:stats()
    assert.equal(1, st.dead)
    assert.equal(3, st.puts)
    assert.equal(1, q:requeue_dead("all"))
    assert.equal("poison", q:get(5))
    q:task_done()
    assert.is_true(q:join(5))
    raises("called more times than items got", q.task_done, q)
    raises("shards must be an integer", corun.redis.queue, url, name, { shards = 0 })
    raises("takes no hash tag", corun.redis.queue, url, "{x}", { shards = 2 })
    q:disconnect()
  end))
end)
