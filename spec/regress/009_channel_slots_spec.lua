-- spec/regress/009_channel_slots_spec.lua: issue #9, the cross-thread
-- channel without a malloc per message. A channel's ring, and what a
-- parked sender offers or a parked receiver is handed, now hold a small
-- message in place (a cr_msgslot: up to 52 encoded bytes) and a bigger one
-- as before; the codec makes its table of seen objects only for a message
-- with a second table or function, and encodes a table in one traversal.
-- These check that every kind and size of value, handles inside messages,
-- sharing and cycles, sparse tables, FIFO order, timeouts, cancellation
-- and select come through those paths unchanged.
--
-- Functions run by other threads are copied: they use only their
-- parameters and globals.

local corun = require "corun"
local core = require "corun.core"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail = helper.both, helper.fail
local async = cb.async

-- Strings of every length around the in-place limit (a string message is
-- 19 bytes plus the string), and numbers and booleans of each kind.
local function samples()
  local v = { true, false, 0, -1, math.maxinteger, math.mininteger, 1.5,
              -0.0, 1 / 0, -1 / 0, 2 ^ 53, 3.0 }
  for n = 0, 80 do v[#v + 1] = string.rep(string.char(65 + n % 26), n) end
  return v
end

-- The same value, and the same number subtype (3.0 stays a float).
local function same_value(a, b)
  if math.type(a) ~= math.type(b) then return false end
  if a ~= a then return b ~= b end  -- NaN
  if a == 0 and b == 0 and math.type(a) == "float" then
    return 1 / a == 1 / b  -- -0.0 stays -0.0
  end
  return a == b
end

describe("issue #9: channel messages held in place", function()
  after_each(helper.check)

  it("every kind and size of scalar comes back equal, in order, through "
     .. "another thread", async(function()
    local vals = samples()
    vals[#vals + 1] = 0 / 0
    for _, capacity in ipairs({ 0, 1, 64 }) do
      local to, from = corun.channel(capacity), corun.channel()
      local echo = corun.thread(function(to, from)
        for v in to:iter() do from:send(v) end
        from:close()
      end, to, from)
      local sender = corun.spawn(function()
        for _, v in ipairs(vals) do assert(to:send(v)) end
        to:close()
      end)
      local i = 0
      for v in from:iter() do
        i = i + 1
        assert(same_value(vals[i], v),
               ("capacity %d, value %d: sent %s (%s), got %s (%s)"):format(
                 capacity, i, tostring(vals[i]), math.type(vals[i]) or
                 type(vals[i]), tostring(v), math.type(v) or type(v)))
      end
      assert.equal(#vals, i)
      sender:join()
      echo:join()
    end
  end))

  it("small and big tables, sharing and cycles come back the same",
  async(function()
    local shared = { "s" }
    local cyc = {}
    cyc.self = cyc
    local key = { "k" }
    local fn = function(x) return x * 2 end
    local cases = {
      { 1, 2 },                               -- the bench's {i, i}
      { shared, shared },                     -- a repeated table
      cyc,                                    -- a cycle on the first table
      { [key] = key },                        -- a key table, also a value
      { fn, { fn } },                         -- a repeated function
      { x = 1, [1] = "a", [3] = "c" },        -- a hole: 3 is a hash key
      { string.rep("x", 200), n = 1 },        -- too big to stay in place
    }
    local ch = corun.channel(2)
    local peer = corun.thread(function(ch, n)
      local out = {}
      for i = 1, n do out[i] = ch:recv() end
      return out
    end, ch, #cases)
    for _, v in ipairs(cases) do ch:send(v) end
    local got = peer:join()
    assert.same({ 1, 2 }, got[1])
    assert.equal(got[2][1], got[2][2])
    assert.same({ "s" }, got[2][1])
    assert.equal(got[3], got[3].self)
    local k = next(got[4])
    assert.equal(k, got[4][k])
    assert.same({ "k" }, k)
    assert.equal(got[5][1], got[5][2][1])
    assert.equal(6, got[5][1](3))
    assert.same({ x = 1, [1] = "a", [3] = "c" }, got[6])
    assert.equal(200, #got[7][1])
    assert.equal(1, got[7].n)
  end))

  it("a table whose keys 1, 2, ... sit in its hash part is copied whole",
  async(function()
    local t = { a = 1, b = 2, c = 3 }  -- hash part with room left
    t[1], t[2], t[3] = "one", "two", "three"
    t[5] = "five"
    local r = core.codec_roundtrip(t)
    assert.same(t, r)
    local u = {}
    for i = 10, 1, -1 do u[i] = i end  -- built backwards
    assert.same(u, core.codec_roundtrip(u))
    assert.equal(10, #core.codec_roundtrip(u))
  end))

  it("handles inside small messages keep their references: a channel sent "
     .. "10,000 times through another still works, buffered copies are "
     .. "dropped with their channel", async(function()
    local inner = corun.channel()
    local outer = corun.channel(16)
    local t = corun.thread(function(outer, n)
      local last
      for _ = 1, n do last = outer:recv() end
      last:send("from the thread")
      return n
    end, outer, 10000)
    for _ = 1, 10000 do outer:send(inner) end
    assert.equal(10000, t:join())
    assert.equal("from the thread", inner:recv())
    local dropped = corun.channel()
    for _ = 1, 100 do dropped:send(inner) end
    for _ = 1, 100 do dropped:send({ inner, 1 }) end
    dropped = nil
    collectgarbage()
    collectgarbage()
    inner:send(1)
    assert.equal(1, inner:recv())
  end))

  it("senders that time out or are cancelled with small or big values "
     .. "deliver nothing; the others arrive once, in order", async(function()
    local big = string.rep("b", 100)
    local ch = corun.channel(1)
    ch:send("first")
    assert.same(fail("timeout"), both(ch:send("small", 0.01)))
    assert.same(fail("timeout"), both(ch:send(big, 0.01)))
    local s1 = corun.spawn(function() return ch:send("cancelled small") end)
    local s2 = corun.spawn(function() return ch:send(big .. "!") end)
    local s3 = corun.spawn(function() return ch:send({ "kept", 1 }) end)
    local s4 = corun.spawn(function() return ch:send(big .. "?") end)
    corun.sleep(0.01)
    s1:cancel()
    s2:cancel()
    assert(corun.is_cancelled(catch(s1.join, s1)))
    assert(corun.is_cancelled(catch(s2.join, s2)))
    local peer = corun.thread(function(ch)
      local out = {}
      for i = 1, 3 do out[i] = ch:recv(5) end
      return out
    end, ch)
    local got = peer:join()
    assert.is_true(s3:join())
    assert.is_true(s4:join())
    assert.same({ "first", { "kept", 1 }, big .. "?" }, got)
    assert.same(fail("timeout"), both(ch:recv(0)))
  end))

  it("a receiver parked in another thread is handed small and big values",
  async(function()
    local big = string.rep("z", 300)
    for _, capacity in ipairs({ 0, 4 }) do
      local ch, back = corun.channel(capacity), corun.channel()
      local peer = corun.thread(function(ch, back)
        for _ = 1, 4 do back:send(ch:recv(10)) end
      end, ch, back)
      for _, v in ipairs({ 1, big, { 2 }, "s" }) do
        corun.sleep(0.005)  -- the peer is parked by now, most times
        ch:send(v)
      end
      assert.equal(1, back:recv())
      assert.equal(big, back:recv())
      assert.same({ 2 }, back:recv())
      assert.equal("s", back:recv())
      peer:join()
    end
  end))

  it("select sends small and big values, and loses none when it times out",
  async(function()
    local big = string.rep("q", 120)
    local a, b = corun.channel(0), corun.channel(0)
    assert.same(fail("timeout"),
                both(corun.select({ a, "send", 1 }, { b, "send", big }, 0.01)))
    local peer = corun.thread(function(a, b)
      return a:recv(10), b:recv(10)
    end, a, b)
    local seen = {}
    for _ = 1, 2 do
      local i, ok = corun.select({ a, "send", { 7 } }, { b, "send", big },
                                 5)
      assert.is_true(ok)
      assert.is_nil(seen[i])
      seen[i] = true
      if i == 1 then a = corun.channel(0) else b = corun.channel(0) end
    end
    local x, y = peer:join()
    assert.same({ 7 }, x)
    assert.equal(big, y)
  end))

  it("sending and receiving a table makes no garbage beyond the copy "
     .. "received (no table of seen objects per message)", async(function()
    local ch = corun.channel()
    local u = { 1, 2 }
    -- Lua heap growth in bytes per call of f (1000 calls, GC stopped);
    -- 'keep' holds what f returns, so its growth is counted the same way.
    local function cost(f)
      local keep = {}
      collectgarbage()
      collectgarbage("stop")
      local before = collectgarbage("count")
      for i = 1, 1000 do keep[i] = f() end
      local grown = (collectgarbage("count") - before) * 1024 / 1000
      collectgarbage("restart")
      return grown, keep
    end
    local send = cost(function() ch:send(u); ch:send(7); ch:send("s") end)
    assert(send < 8, ("a send grew the Lua heap by %.0f bytes"):format(send))
    assert.equal(3000, #ch)
    for i = 1, 3000 do
      local v = ch:recv()
      if i % 3 == 1 then assert.same(u, v) else assert(v == 7 or v == "s") end
    end
    for _ = 1, 1000 do ch:send(u) end
    local recv, got = cost(function() return ch:recv() end)
    local plain = cost(function() return { 1, 2 } end)
    assert(recv < plain + 16, ("a received {1, 2} costs %.0f bytes, a "
      .. "table constructor %.0f"):format(recv, plain))
    assert.same({ 1, 2 }, got[1000])
    local t = { 1, 2, { 3 } }  -- two tables: a table of seen ones is made
    ch:send(t)
    assert.same(t, ch:recv())
  end))

  it("a big buffer drained and filled again keeps every value in order",
  async(function()
    for _, capacity in ipairs({ false, 6000 }) do
      local ch = capacity and corun.channel(capacity) or corun.channel()
      for round = 1, 3 do
        local n = round * 2000
        for i = 1, n do ch:send(i % 5 == 0 and { i } or i) end
        assert.equal(n, #ch)
        for i = 1, n do
          local v = ch:recv()
          if type(v) == "table" then v = v[1] end
          assert(v == i, ("round %d: %s at %d"):format(round, tostring(v),
                                                       i))
        end
        assert.same(fail("timeout"), both(ch:recv(0)))
      end
    end
  end))

  it("2 threads x 50,000 messages, small and big, capacity 0, 64 and "
     .. "unbounded: FIFO per sender, nothing lost or duplicated",
  async(function()
    for _, capacity in ipairs({ 0, 64, false }) do
      local ch = capacity and corun.channel(capacity) or corun.channel()
      local N = capacity == 0 and 5000 or 50000
      local senders = {}
      for k = 1, 2 do
        senders[k] = corun.thread(function(ch, k, n)
          local pad = string.rep("p", 60)
          for i = 1, n do
            if i % 7 == 0 then ch:send({ k, i, pad })
            else ch:send({ k, i }) end
          end
        end, ch, k, N)
      end
      local last = { 0, 0 }
      for _ = 1, 2 * N do
        local m = ch:recv(10)
        assert(type(m) == "table", "got " .. tostring(m))
        local k, i = m[1], m[2]
        assert(i == last[k] + 1, ("sender %d: %d after %d"):format(
          k, i, last[k]))
        assert(m[3] == nil or (i % 7 == 0 and #m[3] == 60))
        last[k] = i
      end
      for k = 1, 2 do senders[k]:join() end
      assert.same({ N, N }, last)
      assert.same(fail("timeout"), both(ch:recv(0)))
    end
  end))
end)
