-- spec/redis_cluster_spec.lua: corun.redis.connect on a Redis Cluster
-- (lua/corun/redis_cluster.lua): key slots as the servers compute them,
-- keys spread over the 3 masters, CROSSSLOT, EVAL by its first key,
-- pipelines split by node in order, MOVED after a slot is resharded, ASK
-- while it migrates, TRYAGAIN retried, and clear errors when no node
-- answers.
-- The cluster: CORUN_REDIS_CLUSTER (test/run.sh starts one with
-- test/redis_cluster.sh) or one of our own (spec/cluster_helper.lua).
-- The failover spec is spec/redis_cluster_failover_spec.lua.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local ch = require "cluster_helper"
local both, fail, raises = helper.both, helper.fail, helper.raises
local async = cb.async

describe("corun.redis on a Redis Cluster", function()
  local url, dir, stop, P
  setup(function()
    url, dir, stop = ch.cluster()
    P = helper.redis_prefix("cluster")
  end)
  teardown(function() stop() end)
  after_each(helper.check)

  -- A plain client of one node.
  local function plain(addr) return corun.redis.connect("redis://" .. addr .. "/0") end

  -- Move every key left in 'slot' from client src to the node on to_port
  -- (other specs' keys share slots), as a reshard does before SETSLOT NODE.
  local function move_rest(src, slot, to_port)
    while true do
      local keys = assert(src:call("CLUSTER", "GETKEYSINSLOT", slot, 100))
      if #keys == 0 then return end
      assert.equal("OK", src:call("MIGRATE", "127.0.0.1", to_port, "", 0, 5000,
                                  "KEYS", table.unpack(keys)))
    end
  end

  -- The master serving slot s, by CLUSTER SLOTS of a node; and its id.
  local function owner(addr, s)
    local r <close> = plain(addr)
    for _, range in ipairs(assert(r:call("CLUSTER", "SLOTS"))) do
      if s >= range[1] and s <= range[2] then
        return range[3][1] .. ":" .. range[3][2], range[3][3]
      end
    end
  end

  it("computes the slot of a key as the servers do (hash tags too)", async(function()
    local r <close> = plain(ch.nodes(dir)[1].addr)
    local keys = { "foo", "123456789", "{user1000}.following", "foo{}{bar}",
                   "{}", "foo{bar}{zap}", "a{b", "}{x}", "", "\0\255 binary",
                   12, 1.5 }
    local rnd = helper.lcg(11)
    for i = 1, 200 do
      local t = {}
      for k = 1, rnd(12) do t[k] = string.char(rnd(256) - 1) end
      if i % 3 == 0 then t[rnd(#t)] = "{" end
      if i % 5 == 0 then t[#t + 1] = "}" end
      keys[#keys + 1] = table.concat(t)
    end
    for _, k in ipairs(keys) do
      assert.equal(r:call("CLUSTER", "KEYSLOT", k), corun.redis.keyslot(k),
                   ("key %q"):format(tostring(k)))
    end
    assert.equal(12739, corun.redis.keyslot("123456789"))
  end))

  it("spreads keys over all 3 masters, each on its slot's master", async(function()
    local r <close> = corun.redis.connect(url)
    local masters = assert(r:masters())
    assert.equal(3, #masters)
    for i = 1, 300 do assert.equal("OK", r:call("SET", P .. "k" .. i, i)) end
    local count = {}
    for i = 1, 300 do
      local key = P .. "k" .. i
      local addr = owner(masters[1], corun.redis.keyslot(key))
      local n <close> = plain(addr)
      assert.equal(tostring(i), n:call("GET", key))   -- stored there
      count[addr] = (count[addr] or 0) + 1
      assert.equal(tostring(i), r:call("GET", key))   -- and read back
    end
    for _, m in ipairs(masters) do
      assert(count[m] and count[m] > 50, m .. " got " .. tostring(count[m]))
    end
    assert.equal(300, r:call("EXISTS", P .. "k1") + 299)
  end))

  it("refuses keys of one command in different slots: CROSSSLOT", async(function()
    local r <close> = corun.redis.connect(url)
    local a, b = P .. "a", P .. "b"
    assert.are_not.equal(corun.redis.keyslot(a), corun.redis.keyslot(b))
    local res, err = r:call("MSET", a, 1, b, 2)
    assert.is_nil(res)
    assert.matches("^CROSSSLOT Keys in request don't hash to the same slot", err)
    assert.matches("MSET: '" .. a:gsub("%p", "%%%0") .. "' in slot", err)
    assert.is_nil(r:call("GET", a))  -- nothing was sent
    -- with a hash tag they share a slot
    local ta, tb = "{" .. P .. "}a", "{" .. P .. "}b"
    assert.equal("OK", r:call("MSET", ta, 1, tb, 2))
    assert.same({ "1", "2" }, r:call("MGET", ta, tb))
    assert.equal(2, r:call("DEL", ta, tb))
    -- in a pipeline the reply of that command is the error
    local list = r:pipeline(function(p)
      p:call("SET", a, "x")
      p:call("DEL", a, b)
      p:call("GET", a)
    end)
    assert.equal("OK", list[1])
    assert.matches("^CROSSSLOT", list[2].err)
    assert.equal("x", list[3])
    -- MULTI cannot span calls on a cluster client
    raises("MULTI is not supported on a Redis Cluster client", r.call, r, "MULTI")
    raises("pipeline: EXEC is not supported", r.pipeline, r, function(p) p:call("EXEC") end)
  end))

  it("routes EVAL by its first key; keyless commands go to any master", async(function()
    local r <close> = corun.redis.connect(url)
    local script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])"
    for i = 1, 30 do
      assert.equal("v" .. i, r:call("EVAL", script, 1, P .. "e" .. i, "v" .. i))
    end
    local res, err = r:call("EVAL", script, 2, P .. "a", P .. "b", "v")
    assert.is_nil(res)
    assert.matches("^CROSSSLOT", err)
    assert.equal(7, r:call("EVAL", "return 7", 0))
    assert.equal("PONG", r:call("PING"))
    -- XREADGROUP by its STREAMS keys, XGROUP by the key after the verb
    local s = P .. "stream"
    assert.equal("OK", r:call("XGROUP", "CREATE", s, "g", "0", "MKSTREAM"))
    assert(r:call("XADD", s, "*", "f", "v"))
    local got = r:call("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", s, ">")
    assert.equal("v", got[1][2][1][2][2])
  end))

  it("keeps the order of a pipeline split over the nodes", async(function()
    local r <close> = corun.redis.connect(url)
    local list = r:pipeline(function(p)
      for i = 1, 1000 do
        p:call("SET", P .. "p" .. i, i)
        p:call("INCRBY", P .. "p" .. i, i)
        if i % 100 == 0 then p:call("GET", P .. "nope" .. i) end
      end
      p:call("PING")
    end)
    assert.equal(2000 + 10 + 1, list.n)
    local k = 0
    for i = 1, 1000 do
      assert.equal("OK", list[k + 1])
      assert.equal(2 * i, list[k + 2])
      k = k + 2
      if i % 100 == 0 then
        k = k + 1
        assert.is_nil(list[k])
      end
    end
    assert.equal("PONG", list[k + 1])
    -- the keys went to more than one node: read back one by one
    for i = 1, 1000, 97 do assert.equal(tostring(2 * i), r:call("GET", P .. "p" .. i)) end
    assert.same({ n = 0 }, r:pipeline(function() end))
    raises("pipeline: command 2: argument 2 must be a string or a number",
           r.pipeline, r, function(p) p:call("GET", "x"); p:call("GET", {}) end)
  end))

  it("follows ASK while a slot migrates and MOVED once it moved", async(function()
    local r <close> = corun.redis.connect(url)
    local key = P .. "moving"
    local other = "{" .. key .. "}other"   -- same slot, not yet written
    local slot = corun.redis.keyslot(key)
    local masters = assert(r:masters())
    local from, from_id = owner(masters[1], slot)
    local to
    for _, m in ipairs(masters) do if m ~= from then to = m; break end end
    local src <close> = plain(from)
    local dst <close> = plain(to)
    local to_id = dst:call("CLUSTER", "MYID")
    local _ <close> = ch.slot_guard(masters, slot, tonumber(from:match(":(%d+)$")),
                                    tonumber(to:match(":(%d+)$")), to_id)
    assert.equal("OK", r:call("SET", key, "before"))
    -- migrating: the key still on the source, new keys go to the target
    assert.equal("OK", dst:call("CLUSTER", "SETSLOT", slot, "IMPORTING", from_id))
    assert.equal("OK", src:call("CLUSTER", "SETSLOT", slot, "MIGRATING", to_id))
    assert.equal("before", r:call("GET", key))            -- served by the source
    assert.equal("OK", r:call("SET", other, "new"))       -- ASK: on the target
    local direct = dst:pipeline(function(p) p:call("ASKING"); p:call("GET", other) end)
    assert.equal("new", direct[2])
    assert.is_nil(src:call("GET", other))
    -- the key itself moves: ASK takes the client to it
    assert.equal("OK", src:call("MIGRATE", "127.0.0.1", tonumber(to:match(":(%d+)$")),
                                key, 0, 5000))
    assert.equal("before", r:call("GET", key))
    local list = r:pipeline(function(p)      -- ASK inside a pipeline
      p:call("GET", key); p:call("GET", other); p:call("PING")
    end)
    assert.same({ "before", "new", "PONG", n = 3 }, list)
    -- the slot moves: MOVED, and the client's map is updated
    move_rest(src, slot, tonumber(to:match(":(%d+)$")))
    for _, m in ipairs(masters) do
      local c <close> = plain(m)
      assert.equal("OK", c:call("CLUSTER", "SETSLOT", slot, "NODE", to_id))
    end
    assert.equal(from, r:node_for(key) and select(2, r:node_for(key)))  -- stale
    assert.equal("before", r:call("GET", key))
    assert.equal(to, select(2, r:node_for(key)))                        -- updated
    assert.same({ "before", "new", n = 2 },
                r:pipeline(function(p) p:call("GET", key); p:call("GET", other) end))
    -- a fresh client reads the new map
    local r2 <close> = corun.redis.connect(url)
    assert.equal("new", r2:call("GET", other))
    assert.equal(to, select(2, r2:node_for(key)))
  end))

  it("retries TRYAGAIN (keys of a slot split by a migration) up to 'retry' s",
  async(function()
    local tag = "{" .. P .. "try}"
    local k1, k2 = tag .. "1", tag .. "2"
    local slot = corun.redis.keyslot(k1)
    local r <close> = corun.redis.connect(url)
    local masters = assert(r:masters())
    local from, from_id = owner(masters[1], slot)
    local to
    for _, m in ipairs(masters) do if m ~= from then to = m; break end end
    local to_port = tonumber(to:match(":(%d+)$"))
    local src <close> = plain(from)
    local dst <close> = plain(to)
    local to_id = dst:call("CLUSTER", "MYID")
    local _ <close> = ch.slot_guard(masters, slot, tonumber(from:match(":(%d+)$")),
                                    tonumber(to:match(":(%d+)$")), to_id)
    assert.equal("OK", r:call("MSET", k1, "1", k2, "2"))
    assert.equal("OK", dst:call("CLUSTER", "SETSLOT", slot, "IMPORTING", from_id))
    assert.equal("OK", src:call("CLUSTER", "SETSLOT", slot, "MIGRATING", to_id))
    assert.equal("OK", src:call("MIGRATE", "127.0.0.1", to_port, k2, 0, 5000))
    -- half moved: TRYAGAIN, retried for 'retry' seconds, then the error
    local quick <close> = corun.redis.connect(url, { cluster = true, retry = 0.2 })
    local t0 = corun.time()
    local res, err = quick:call("MGET", k1, k2)
    local took = corun.time() - t0
    assert.is_nil(res)
    assert.matches("^TRYAGAIN", err)
    assert(took >= 0.19 and took < 5, "took " .. took)
    -- a patient call gets the keys once the migration is over
    local t = corun.spawn(function()
      local c <close> = corun.redis.connect(url, { cluster = true, retry = 10 })
      return c:call("MGET", k1, k2)
    end)
    corun.sleep(0.3)
    assert.is_false(t:done())
    assert.equal("OK", src:call("MIGRATE", "127.0.0.1", to_port, k1, 0, 5000))
    move_rest(src, slot, to_port)
    for _, m in ipairs(masters) do
      local c <close> = plain(m)
      assert.equal("OK", c:call("CLUSTER", "SETSLOT", slot, "NODE", to_id))
    end
    assert.same({ "1", "2" }, t:join(10))
  end))

  it("URL forms, options and clear errors when no node answers", async(function()
    assert.equal("corun.redis cluster client (127.0.0.1:1,127.0.0.1:2)",
                 tostring(corun.redis.connect("redis://127.0.0.1:1,127.0.0.1:2/0?cluster=1")))
    local r <close> = corun.redis.connect("redis://127.0.0.1:" .. helper.free_port(),
                                          { cluster = true })
    local res, err = r:call("GET", "x")
    assert.is_nil(res)
    assert.matches("^cannot connect to the cluster: no node gave its slot map "
                   .. "%(127%.0%.0%.1:%d+: connection lost%)$", err)
    assert.same(fail(err), both(r:pipeline(function(p) p:call("GET", "x") end)))
    raises("a Redis Cluster has only database 0", corun.redis.connect,
           "redis://127.0.0.1:7000/1?cluster=1")
    raises("retry must be a number", corun.redis.connect, url, { retry = "x" })
    raises("malformed cluster URL", corun.redis.connect, "redis://a:b:c?cluster=1")
    raises("bad argument #1 to 'connect' (URL string expected)", corun.redis.connect,
           42, { cluster = true })
    -- {cluster = false} is a plain client
    assert.matches("^corun.redis client", tostring(corun.redis.connect(
      "redis://127.0.0.1:7000/0", { cluster = false })))
    r:close()
    raises("the redis client is closed", r.call, r, "PING")
  end))
end)
