-- spec/redis_cluster_queue_failover_spec.lua: a sharded corun.redis.queue
-- on a Redis Cluster while the master of one shard is killed (kill -9):
-- the consumers carry on once its replica takes over, every item (put and
-- replicated before, WAIT) is processed at least once, join ends, and the
-- number processed twice (acknowledgements the failover lost) is printed.
-- The cluster: CORUN_REDIS_CLUSTER or one of our own
-- (spec/cluster_helper.lua).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local ch = require "cluster_helper"
local async = cb.async

describe("corun.redis.queue on a Redis Cluster: failover", function()
  local url, dir, stop
  setup(function() url, dir, stop = ch.cluster() end)
  teardown(function() stop() end)
  after_each(helper.check)

  it("consumers carry on after a shard's master is killed; nothing is lost",
  async(function()
    assert(ch.wait_ok(dir, 30))
    local name = helper.redis_prefix("cqfail"):gsub("[{}]", "")
    local N = 600
    local q = corun.redis.queue(url, name, { shards = 3, visibility = 2 })
    for i = 1, N do assert.is_true(q:put(i)) end
    -- every put replicated before the kill
    for _, sq in ipairs(q.shards) do
      local node = assert(sq.r:node_for(sq.name))
      assert.equal(1, node:call("WAIT", 1, 20000))
    end
    local r <close> = corun.redis.connect(url)
    local _, shard1 = r:node_for(q.shards[1].name)
    local victim, replica, vnode = ch.master_with_replica(dir, shard1, shard1)
    assert(victim, "the master of shard 1 has no replica")
    local pid = assert(ch.pid(vnode))
    local _ <close> = ch.revive_guard(vnode)

    local seen, processed, killed = {}, 0, false
    local function consume()
      for item in q:iter() do
        seen[item] = (seen[item] or 0) + 1
        processed = processed + 1
        if processed == 150 and not killed then
          killed = true
          assert(os.execute("kill -9 " .. pid))
        end
        corun.sleep(0.002)
        q:task_done()
      end
    end
    local tasks = {}
    for i = 1, 4 do tasks[i] = corun.spawn(consume) end
    local joined = q:join(60)
    assert(killed, "never killed")
    q:close()
    for _, t in ipairs(tasks) do t:join(30) end
    assert.is_true(joined)
    local twice = 0
    for i = 1, N do
      assert(seen[i], "item " .. i .. " never processed")
      if seen[i] > 1 then twice = twice + 1 end
    end
    print(("\n%d items, %d processed more than once across the failover")
          :format(N, twice))
    -- shard 1 is now on the former replica
    local r2 <close> = corun.redis.connect(url)
    assert.equal(replica.addr, select(2, r2:node_for(q.shards[1].name)))
    q:disconnect()
    assert(ch.restart(dir, vnode, replica))
  end))
end)
