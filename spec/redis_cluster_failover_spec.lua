-- spec/redis_cluster_failover_spec.lua: a master of the Redis Cluster is
-- killed (kill -9) while a client writes to every master; the client
-- carries on once the master's replica takes over (a bounded wait), every
-- call returns (a clear error while that part of the cluster is down, never
-- a hang or a raise), and a fresh client finds the new master. The killed
-- node is started again at the end (it comes back as a replica).
-- The cluster: CORUN_REDIS_CLUSTER or one of our own
-- (spec/cluster_helper.lua).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local ch = require "cluster_helper"
local async = cb.async

describe("corun.redis on a Redis Cluster: failover", function()
  local url, dir, stop, P
  setup(function()
    url, dir, stop = ch.cluster()
    P = helper.redis_prefix("failover")
  end)
  teardown(function() stop() end)
  after_each(helper.check)

  it("carries on after a master is killed and its replica takes over",
  async(function()
    assert(ch.wait_ok(dir, 30))
    local r <close> = corun.redis.connect(url)
    local masters = assert(r:masters())
    -- a master with a replica, its node (pid) and that replica
    local nodes = assert(ch.cluster_nodes(masters[1]))
    local victim, replica
    for _, m in ipairs(nodes) do
      if m.master and not m.fail then
        for _, s in ipairs(nodes) do
          if not s.master and not s.fail and s.master_id == m.id then
            victim, replica = m, s
          end
        end
      end
      if victim then break end
    end
    assert(victim, "no master with a replica")
    local vnode
    for _, n in ipairs(ch.nodes(dir)) do if n.addr == victim.addr then vnode = n end end
    local pid = assert(ch.pid(vnode))
    local _ <close> = ch.revive_guard(vnode)
    -- one key per master, the victim's first
    local keys, on = {}, {}
    for i = 1, 1000 do
      local k = P .. i
      local _, addr = r:node_for(k)
      if not on[addr] then
        on[addr] = k
        if addr == victim.addr then table.insert(keys, 1, k) else keys[#keys + 1] = k end
      end
      if #keys == 3 then break end
    end
    assert.equal(3, #keys)
    assert.equal(victim.addr, select(2, r:node_for(keys[1])))

    local ok, errors, longest, killed_at, back_at = 0, {}, 0, nil, nil
    local deadline = corun.time() + 40
    local n = 0
    while corun.time() < deadline do
      n = n + 1
      local t0 = corun.time()
      local results = {}
      for i, k in ipairs(keys) do
        local res, err = r:call("INCR", k)
        results[i] = res
        if err then errors[#errors + 1] = err end
      end
      longest = math.max(longest, corun.time() - t0)
      if results[1] then
        ok = ok + 1
        if killed_at and not back_at then back_at = corun.time() end
      end
      if n == 20 then
        assert(os.execute("kill -9 " .. pid))
        killed_at = corun.time()
      end
      if back_at and corun.time() - back_at > 0.5 then break end
      corun.sleep(0.01)
    end
    assert(killed_at, "never killed")
    assert(back_at, ("writes to the killed master's keys never came back "
                     .. "(errors: %s)"):format(table.concat(errors, "; ", 1, math.min(#errors, 5))))
    -- the errors say what happened
    assert(#errors > 0, "no error at all while a master was down")
    for _, e in ipairs(errors) do
      assert(e:find("^connection lost %(node 127%.0%.0%.1:%d+%)$")
             or e:find("^CLUSTERDOWN"), "unclear error: " .. e)
    end
    -- no call hung: at most the retry time (2 s) and a slot map read
    assert(longest < 10, "a round of calls took " .. longest .. " s")
    -- the replica is the master of those keys now, for this client and a
    -- fresh one
    assert.equal(replica.addr, select(2, r:node_for(keys[1])))
    local r2 <close> = corun.redis.connect(url)
    assert.equal(replica.addr, select(2, r2:node_for(keys[1])))
    assert(tonumber(r2:call("GET", keys[1])) >= 1)
    -- the other masters' keys kept working
    for i = 2, 3 do assert(tonumber(r2:call("GET", keys[i])) >= 20) end

    -- the killed node comes back (as a replica) for the specs after us
    assert(ch.restart(dir, vnode, replica))
  end))
end)
