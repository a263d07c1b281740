-- spec/limits_spec.lua: corun.limiter, corun.rate (lua/corun/limits.lua),
-- corun.broadcast and corun.watch (lua/corun/broadcast.lua).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local both, fail, raises = helper.both, helper.fail, helper.raises
local async, async_virtual = cb.async, cb.async_virtual

describe("corun.limiter", function()
  after_each(helper.check)

  it("lets at most n tasks in, and knows who they are", async(function()
    local lim = corun.limiter(2)
    local inside, most, order = 0, 0, {}
    local ts = {}
    for i = 1, 6 do
      ts[i] = corun.spawn(function()
        local _ <close> = lim:hold()
        inside = inside + 1
        most = math.max(most, inside)
        order[#order + 1] = i
        assert.equal(inside, #lim:borrowers())
        corun.sleep(0.01)
        inside = inside - 1
      end)
    end
    corun.sleep(0.005)
    assert.equal(0, lim:available())
    local b = lim:borrowers()
    table.sort(b, function(x, y) return x.name < y.name end)
    assert.same({ ts[1], ts[2] }, b)
    for _, t in ipairs(ts) do t:join() end
    assert.equal(2, most)
    assert.same({ 1, 2, 3, 4, 5, 6 }, order)   -- arrival order
    assert.equal(2, lim:available())
    assert.equal(2, lim:total())
  end))

  it("refuses a second borrow by the same task and a foreign release",
     async(function()
    local lim = corun.limiter(3)
    assert.is_true(lim:acquire())
    raises("already holds a token", lim.acquire, lim)
    local other = corun.spawn(function()
      return pcall(lim.release, lim)
    end)
    local ok, err = other:join()
    assert.is_false(ok)
    assert.matches("holds no token", err)
    lim:release()
    raises("holds no token", lim.release, lim)
  end))

  it("times out, and a cancelled waiter takes nothing", async(function()
    local lim = corun.limiter(1)
    lim:acquire()
    local timed = corun.spawn(function() return both(lim:acquire(0.01)) end)
    assert.same(fail("timeout"), timed:join())
    local waiter = corun.spawn(lim.acquire, lim)
    corun.sleep(0)
    waiter:cancel()
    assert.is_true(corun.is_cancelled(helper.catch(waiter.join, waiter)))
    lim:release()
    assert.equal(1, lim:available())
    assert.same({}, lim:borrowers())
    assert.equal(42, lim:with(function(x) return x end, 42))
    assert.equal(1, lim:available())
  end))

  it("rejects bad arguments", async(function()
    raises("bad argument #1 to 'limiter' (size must be an integer >= 1)",
           corun.limiter, 0)
    raises("bad argument #1 to 'limiter'", corun.limiter, 1.5)
    raises("bad argument #1 to 'acquire' (timeout", corun.limiter(1).acquire,
           corun.limiter(1), -1)
    raises("bad argument #1 to 'with' (function expected)",
           corun.limiter(1).with, corun.limiter(1), 5)
  end))
end)

describe("corun.rate", function()
  after_each(helper.check)

  it("allows a burst of n, then n per period", async_virtual(function()
    local r = corun.rate(5, 1)
    local t0 = corun.time()
    for _ = 1, 5 do r:take() end
    assert.equal(t0, corun.time())        -- the burst costs nothing
    for _ = 1, 10 do r:take() end
    assert.is_true(corun.time() - t0 >= 2 - 1e-9)
    assert.is_true(corun.time() - t0 < 2.01)
  end))

  it("serves takers in arrival order", async_virtual(function()
    local r = corun.rate(4, 1)
    for _ = 1, 4 do r:take() end          -- empty
    local log = {}
    local big = corun.spawn(function() r:take(4) log[#log + 1] = "big" end)
    corun.sleep(0)
    local small = corun.spawn(function() r:take(1) log[#log + 1] = "small" end)
    big:join(); small:join()
    assert.same({ "big", "small" }, log)   -- the small take waited its turn
    assert.is_false(r:try_take())
  end))

  it("loses no token to a cancelled taker", async_virtual(function()
    local r = corun.rate(2, 1)
    r:take(2)
    local t = corun.spawn(r.take, r, 2)
    corun.sleep(0.5)
    t:cancel()
    assert.is_true(corun.is_cancelled(helper.catch(t.join, t)))
    corun.sleep(0.5)
    assert.is_true(r:try_take(2))
  end))

  it("rejects bad arguments", async(function()
    raises("bad argument #1 to 'rate'", corun.rate, 0)
    raises("bad argument #2 to 'rate' (period must be a number > 0)",
           corun.rate, 1, 0)
    raises("bad argument #2 to 'rate'", corun.rate, 1, 0 / 0)
    local r = corun.rate(3)
    raises("bad argument #1 to 'take' (tokens must be an integer from 1 to 3)",
           r.take, r, 4)
  end))
end)

describe("corun.broadcast", function()
  after_each(helper.check)

  it("gives every subscriber every message", async(function()
    local b = corun.broadcast()
    local got = { {}, {}, {} }
    local ts = {}
    for i = 1, 3 do
      local sub = b:subscribe()
      ts[i] = corun.spawn(function()
        for v in sub:iter() do got[i][#got[i] + 1] = v end
      end)
    end
    for v = 1, 10 do b:send(v); if v % 3 == 0 then corun.sleep(0) end end
    b:close()
    for _, t in ipairs(ts) do t:join() end
    local all = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
    assert.same({ all, all, all }, got)
    assert.same(fail("closed"), both(b:send(11)))
  end))

  it("tells a slow subscriber by how much it lagged", async(function()
    local b = corun.broadcast(3)
    local sub = b:subscribe()
    for v = 1, 8 do b:send(v) end
    assert.equal(3, sub:pending())
    assert.same({ n = 3, nil, "lagged", 5 }, both(sub:recv()))
    assert.equal(6, sub:recv())
    assert.equal(7, sub:recv())
    assert.equal(8, sub:recv())
    assert.same(fail("timeout"), both(sub:recv(0.01)))
    local late = b:subscribe()    -- sees only what comes after it
    b:send("x")
    assert.equal("x", late:recv())
    assert.equal("x", sub:recv())
  end))

  it("wakes a waiting subscriber, and close ends it", async(function()
    local b = corun.broadcast()
    local sub = b:subscribe()
    local t = corun.spawn(function() return sub:recv() end)
    corun.sleep(0)
    b:send("hi")
    assert.equal("hi", t:join())
    t = corun.spawn(function() return both(sub:recv()) end)
    corun.sleep(0)
    b:close()
    assert.same(fail("closed"), t:join())
  end))

  it("rejects bad arguments", async(function()
    raises("bad argument #1 to 'broadcast'", corun.broadcast, 0)
    raises("bad argument #1 to 'send' (nil is not a valid message)",
           corun.broadcast().send, corun.broadcast(), nil)
  end))
end)

describe("corun.watch", function()
  after_each(helper.check)

  it("shows the latest value and waits for a change", async(function()
    local w = corun.watch("a")
    local r = w:subscribe()
    assert.same({ n = 2, "a", 0 }, both(r:get()))
    assert.same(fail("timeout"), both(r:changed(0.01)))
    local t = corun.spawn(function()
      assert.is_true(r:changed())
      return r:get()
    end)
    corun.sleep(0)
    w:set("b"); w:set("c")                   -- only the latest is seen
    assert.equal("c", t:join())
    assert.same(fail("timeout"), both(r:changed(0)))
    w:set("d")
    assert.is_true(r:changed(0))            -- at once: already newer
    w:close()
    r:get()
    assert.same(fail("closed"), both(r:changed()))
    assert.same(fail("closed"), both(w:set("e")))
  end))
end)
