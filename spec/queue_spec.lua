-- spec/queue_spec.lua: corun.queue (src/queue.c).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async, async_virtual = corun.async, cb.async_virtual

-- Both results of a call, as a table (so nil, "why" compares with same).
local function both(...) return { n = select("#", ...), ... } end
local function fail(why) return { n = 2, nil, why } end

describe("corun.queue basics", function()
  after_each(helper.check)

  it("is FIFO and unbounded by default", async(function()
    local q = corun.queue()
    for i = 1, 1000 do assert.is_true(q:put_nowait(i)) end
    assert.equal(1000, q:size())
    assert.equal(1000, #q)
    assert.is_false(q:full())
    assert.is_false(q:empty())
    for i = 1, 1000 do assert.equal(i, q:get()) end
    assert.is_true(q:empty())
    assert.equal(0, #q)
  end))

  it("maxsize 0 means unbounded", async(function()
    local q = corun.queue(0)
    for i = 1, 100 do q:put(i) end
    assert.is_false(q:full())
    assert.equal(100, #q)
  end))

  it("put_nowait / get_nowait report full and empty", function()
    local q = corun.queue(2)
    assert.same(fail("empty"), both(q:get_nowait()))
    assert.is_true(q:put_nowait("a"))
    assert.is_false(q:full())
    assert.is_true(q:put_nowait(false))
    assert.is_true(q:full())
    assert.same(fail("full"), both(q:put_nowait("c")))
    assert.equal(2, #q)
    assert.equal("a", q:get_nowait())
    assert.is_false(q:get_nowait())
    assert.same(fail("empty"), both(q:get_nowait()))
  end)

  it("keeps any non-nil value, including false and tables", async(function()
    local q = corun.queue()
    local t = {}
    q:put(false)
    q:put(t)
    q:put(0)
    assert.is_false(q:get())
    assert.equal(t, q:get())
    assert.equal(0, q:get())
  end))

  it("get parks until an item is put", async_virtual(function()
    local q = corun.queue()
    local t = corun.spawn(function() return q:get(), corun.time() end)
    corun.sleep(0)
    assert.is_false(t:done())
    local t0 = corun.time()
    corun.sleep(3)
    q:put("x")
    local v, at = t:join()
    assert.equal("x", v)
    assert.near(t0 + 3, at, 1e-6)
  end))

  it("put parks while full until a get makes room", async_virtual(function()
    local q = corun.queue(1)
    q:put("a")
    local t = corun.spawn(function() return q:put("b") end)
    corun.sleep(1)
    assert.is_false(t:done())
    assert.equal(1, #q)
    assert.equal("a", q:get())
    assert.is_true(t:join())
    assert.equal("b", q:get())
  end))

  it("get(timeout) returns nil, 'timeout' after the delay",
  async_virtual(function()
    local q = corun.queue()
    local t0 = corun.time()
    assert.same(fail("timeout"), both(q:get(2)))
    assert.is_true(corun.time() - t0 >= 2)
    assert.is_true(corun.time() - t0 < 2.01)
    q:put("late")
    assert.equal("late", q:get(2))
  end))

  it("put(timeout) returns nil, 'timeout' and does not insert",
  async_virtual(function()
    local q = corun.queue(1)
    q:put("a")
    local t0 = corun.time()
    assert.same(fail("timeout"), both(q:put("b", 1.5)))
    assert.is_true(corun.time() - t0 >= 1.5)
    assert.equal(1, #q)
    assert.equal("a", q:get_nowait())
    assert.same(fail("empty"), both(q:get_nowait()))
  end))

  it("get(timeout) on a real clock waits at least the timeout", async(function()
    local q = corun.queue()
    local t0 = corun.time()
    assert.same(fail("timeout"), both(q:get(0.02)))
    assert.is_true(corun.time() - t0 >= 0.02)
  end))
end)

describe("corun.queue waiters", function()
  after_each(helper.check)

  it("wakes getters in arrival order", async(function()
    local q = corun.queue()
    local ts = {}
    for i = 1, 10 do
      ts[i] = corun.spawn(function() return q:get() end)
    end
    corun.sleep(0)
    for i = 1, 10 do q:put(i) end
    for i = 1, 10 do assert.equal(i, ts[i]:join()) end
  end))

  it("admits putters in arrival order", async(function()
    local q = corun.queue(1)
    q:put(0)
    local ts = {}
    for i = 1, 10 do
      ts[i] = corun.spawn(function() return q:put(i) end)
    end
    corun.sleep(0)
    local got = {}
    for i = 0, 10 do got[#got + 1] = q:get() end
    assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    for i = 1, 10 do assert.is_true(ts[i]:join()) end
  end))

  it("a getter that timed out is skipped", async_virtual(function()
    local q = corun.queue()
    local a = corun.spawn(function() return q:get(1) end)
    local b = corun.spawn(function() return q:get() end)
    corun.sleep(2)
    q:put("x")
    assert.same(fail("timeout"), both(a:join()))
    assert.equal("x", b:join())
  end))

  it("a timed-out wait leaves no stale waiter behind",
  async_virtual(function()
    local t0 = corun.time()
    local q = corun.queue()
    local other = corun.spawn(function() corun.sleep(2) return "other" end)
    local t = corun.spawn(function()
      local log = {}
      log[#log + 1] = select(2, other:join(1))          -- times out at 1
      local function at(what)
        return ("%s@%.3f"):format(what, corun.time() - t0)
      end
      log[#log + 1] = at(q:get())                    -- "x" at 3
      log[#log + 1] = at(select(2, q:get(0.5)))      -- times out at 3.5
      corun.sleep(2)          -- the put at 4 must not cut this short
      log[#log + 1] = at("slept")
      return log
    end)
    corun.call_later(3, function() q:put_nowait("x") end)
    corun.call_later(4, function() q:put_nowait("y") end)
    assert.same({ "timeout", "x@3.000", "timeout@3.500", "slept@5.500" },
                t:join())
    assert.equal("y", q:get_nowait())
  end))

  it("a timed-out put is not completed by a later get",
  async_virtual(function()
    local t0 = corun.time()
    local q = corun.queue(1)
    q:put("a")
    local t = corun.spawn(function()
      local _, why = q:put("b", 1)
      corun.sleep(2)
      return why, corun.time() - t0
    end)
    corun.sleep(2)
    assert.equal("a", q:get())
    local why, at = t:join()
    assert.equal("timeout", why)
    assert.near(3, at, 1e-6)
    assert.equal(0, #q)
  end))

  it("a getter handed an item before being cancelled keeps it",
  async(function()
    local q = corun.queue()
    local log = {}
    local t = corun.spawn(function()
      log[#log + 1] = q:get()
      local ok, e = pcall(corun.sleep, 100)
      log[#log + 1] = corun.is_cancelled(e) and "cancelled" or "slept"
    end)
    corun.sleep(0)
    q:put("item")
    t:cancel()
    t:join()
    assert.same({ "item", "cancelled" }, log)
    assert.equal(0, #q)
  end))

  it("a putter let in and then cancelled loses nothing", async(function()
    local q = corun.queue(1)
    q:put("a")
    local res
    local t = corun.spawn(function()
      local ok, r = pcall(q.put, q, "b")
      res = ok and r or (corun.is_cancelled(r) and "cancelled")
    end)
    corun.sleep(0)
    assert.equal("a", q:get())
    t:cancel()
    pcall(t.join, t)
    local rest = {}
    for v in function() return (q:get_nowait()) end do rest[#rest + 1] = v end
    if res == true then
      assert.same({ "b" }, rest)
    else
      assert.equal("cancelled", res)
      assert.same({}, rest)
    end
  end))
end)

describe("corun.queue close", function()
  after_each(helper.check)

  it("wakes blocked getters with nil, 'closed'", async(function()
    local q = corun.queue()
    local ts = {}
    for i = 1, 3 do ts[i] = corun.spawn(function() return q:get() end) end
    corun.sleep(0)
    q:close()
    for i = 1, 3 do assert.same(fail("closed"), both(ts[i]:join())) end
  end))

  it("wakes blocked putters with nil, 'closed'; their items stay out",
  async(function()
    local q = corun.queue(1)
    q:put("a")
    local ts = {}
    for i = 1, 3 do ts[i] = corun.spawn(function() return q:put(i) end) end
    corun.sleep(0)
    q:close()
    for i = 1, 3 do assert.same(fail("closed"), both(ts[i]:join())) end
    assert.equal(1, #q)
    assert.equal("a", q:get())
    assert.same(fail("closed"), both(q:get()))
  end))

  it("puts fail after close; gets drain, then nil, 'closed'", async(function()
    local q = corun.queue()
    q:put(1)
    q:put(2)
    q:close()
    assert.same(fail("closed"), both(q:put(3)))
    assert.same(fail("closed"), both(q:put_nowait(3)))
    assert.equal(1, q:get())
    assert.equal(2, q:get_nowait())
    assert.same(fail("closed"), both(q:get()))
    assert.same(fail("closed"), both(q:get_nowait()))
    assert.same(fail("closed"), both(q:get(1)))
    assert.equal(0, #q)
  end))

  it("close is idempotent", function()
    local q = corun.queue()
    q:close()
    q:close()
    assert.same(fail("closed"), both(q:get_nowait()))
  end)
end)

describe("corun.queue iter", function()
  after_each(helper.check)

  it("yields items until closed and drained", async(function()
    local q = corun.queue(2)
    corun.spawn(function()
      for i = 1, 10 do q:put(i) end
      q:close()
    end)
    local got = {}
    for item in q:iter() do got[#got + 1] = item end
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
  end))

  it("iterates over false items too", async(function()
    local q = corun.queue()
    q:put(false)
    q:put(1)
    q:close()
    local got = {}
    for item in q:iter() do got[#got + 1] = item end
    assert.same({ false, 1 }, got)
  end))

  it("feeds several consumers, each item once", async(function()
    local q = corun.queue(3)
    local seen = {}
    local function consumer()
      local n = 0
      for item in q:iter() do
        seen[item] = (seen[item] or 0) + 1
        n = n + 1
        corun.sleep(0)
      end
      return n
    end
    local cs = {}
    for i = 1, 4 do cs[i] = corun.spawn(consumer) end
    for i = 1, 100 do q:put(i) end
    q:close()
    local total = 0
    for i = 1, 4 do total = total + cs[i]:join() end
    assert.equal(100, total)
    for i = 1, 100 do assert.equal(1, seen[i]) end
  end))
end)

describe("corun.queue task_done / join", function()
  after_each(helper.check)

  it("join returns at once when nothing was put", async_virtual(function()
    local q = corun.queue()
    local t0 = corun.time()
    local _, why = q:join()
    assert.is_nil(why)
    assert.equal(t0, corun.time())
  end))

  it("join waits until every item put was marked done",
  async_virtual(function()
    local q = corun.queue()
    for i = 1, 3 do q:put(i) end
    corun.spawn(function()
      for _ = 1, 3 do
        q:get()
        corun.sleep(1)
        q:task_done()
      end
    end)
    local t0 = corun.time()
    local _, why = q:join()
    assert.is_nil(why)
    assert.near(3, corun.time() - t0, 1e-6)
  end))

  it("join(timeout) returns nil, 'timeout'", async_virtual(function()
    local q = corun.queue()
    q:put(1)
    assert.same(fail("timeout"), both(q:join(0.5)))
    q:get()
    q:task_done()
    local _, why = q:join(0.5)
    assert.is_nil(why)
  end))

  it("several joiners are all released", async(function()
    local q = corun.queue()
    q:put(1)
    local js = {}
    for i = 1, 3 do js[i] = corun.spawn(function() q:join() return i end) end
    corun.sleep(0)
    q:get()
    q:task_done()
    for i = 1, 3 do assert.equal(i, js[i]:join()) end
  end))

  it("task_done more times than items raises", function()
    local q = corun.queue()
    q:put_nowait(1)
    q:get_nowait()
    q:task_done()
    local e = catch(function() q:task_done() end)
    assert.truthy(tostring(e):find("task_done", 1, true), tostring(e))
    e = catch(function() corun.queue():task_done() end)
    assert.truthy(tostring(e):find("task_done", 1, true), tostring(e))
  end)
end)

describe("corun.queue bad input", function()
  after_each(helper.check)

  it("put(nil) raises naming put and the argument", async(function()
    local q = corun.queue()
    local e = catch(function() q:put(nil) end)
    assert.truthy(tostring(e):find(
      "bad argument #1 to 'put' (nil is not a valid item)", 1, true),
      tostring(e))
    e = catch(function() q:put_nowait(nil) end)
    assert.truthy(tostring(e):find("put_nowait", 1, true), tostring(e))
    assert.equal(0, #q)
  end))

  it("rejects a negative, fractional or non-number maxsize", function()
    for _, bad in ipairs { "-1", "1.5", "'x'", "{}" } do
      local f = load("local corun = ... return corun.queue(" .. bad .. ")")
      local e = catch(f, corun)
      assert.is_not_nil(e, "queue(" .. bad .. ") did not raise")
      assert.truthy(tostring(e):find("queue", 1, true), tostring(e))
    end
  end)

  it("get and put outside a task raise 'inside a task'", function()
    local q = corun.queue(1)
    local e = catch(function() q:get() end)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
    q:put_nowait(1)
    e = catch(function() q:put(2) end)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
    e = catch(function() q:join() end)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
  end)
end)

describe("corun.lifo_queue", function()
  after_each(helper.check)

  it("gets the newest item first", async(function()
    local q = corun.lifo_queue()
    for i = 1, 5 do q:put(i) end
    assert.equal(5, #q)
    local got = {}
    for _ = 1, 5 do got[#got + 1] = q:get() end
    assert.same({ 5, 4, 3, 2, 1 }, got)
    assert.same(fail("empty"), both(q:get_nowait()))
  end))

  it("has the queue's bounds, waiters, close and iter", async(function()
    local q = corun.lifo_queue(2)
    q:put("a")
    q:put("b")
    assert.is_true(q:full())
    assert.same(fail("full"), both(q:put_nowait("c")))
    local p = corun.spawn(function() return q:put("c") end)
    corun.sleep(0)
    assert.equal("b", q:get())
    assert.is_true(p:join())
    q:close()
    local got = {}
    for item in q:iter() do got[#got + 1] = item end
    assert.same({ "c", "a" }, got)
    assert.same(fail("closed"), both(q:put("d")))
  end))

  it("rejects nil items and bad maxsize", function()
    local e = catch(function() corun.lifo_queue():put(nil) end)
    assert.truthy(tostring(e):find("nil is not a valid item", 1, true))
    assert.is_not_nil(catch(corun.lifo_queue, -1))
  end)
end)

describe("corun.lifo_queue waiters", function()
  after_each(helper.check)

  it("a parked putter's item goes in when a get frees a slot",
  async(function()
    local q = corun.lifo_queue(2)
    q:put("a")
    q:put("b")
    local p = corun.spawn(function() return q:put("c") end)
    corun.sleep(0)
    assert.equal(2, #q)
    assert.equal("b", q:get())     -- the newest of the queue itself
    assert.is_true(p:join())
    assert.equal("c", q:get())
    assert.equal("a", q:get())
  end))

  it("putters are admitted in arrival order; getters served FIFO",
  async(function()
    local q = corun.lifo_queue(1)
    q:put(0)
    local ps = {}
    for i = 1, 3 do ps[i] = corun.spawn(function() return q:put(i) end) end
    corun.sleep(0)
    local got = {}
    for _ = 1, 4 do got[#got + 1] = q:get() end
    assert.same({ 0, 1, 2, 3 }, got)
    local gs = {}
    for i = 1, 3 do gs[i] = corun.spawn(function() return q:get() end) end
    corun.sleep(0)
    for i = 1, 3 do q:put(i * 10) end
    for i = 1, 3 do assert.equal(i * 10, gs[i]:join()) end
  end))

  it("supports task_done / join and timeouts", async_virtual(function()
    local q = corun.lifo_queue(1)
    q:put(1)
    assert.same(fail("timeout"), both(q:put(2, 1)))
    assert.same(fail("timeout"), both(q:join(1)))
    assert.equal(1, q:get())
    q:task_done()
    assert.is_true(q:join(1))
    assert.same(fail("timeout"), both(q:get(1)))
  end))
end)

-- A deterministic permutation of 1..n.
local function shuffled(n, seed)
  local rnd, t = helper.lcg(seed), {}
  for i = 1, n do t[i] = i end
  for i = n, 2, -1 do
    local j = rnd(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

describe("corun.priority_queue", function()
  after_each(helper.check)

  it("gets the least item first (default <)", async(function()
    local q = corun.priority_queue()
    for _, v in ipairs(shuffled(500, 1)) do q:put(v) end
    assert.equal(500, #q)
    for i = 1, 500 do assert.equal(i, q:get()) end
    assert.same(fail("empty"), both(q:get_nowait()))
  end))

  it("orders strings and repeated items", function()
    local q = corun.priority_queue()
    for _, v in ipairs { "pear", "apple", "fig", "apple", "kiwi", "fig" } do
      q:put_nowait(v)
    end
    local got = {}
    while not q:empty() do got[#got + 1] = q:get_nowait() end
    assert.same({ "apple", "apple", "fig", "fig", "kiwi", "pear" }, got)
  end)

  it("interleaved puts and gets keep the order", function()
    local q = corun.priority_queue()
    local rnd = helper.lcg(5)
    local model = {}
    for _ = 1, 2000 do
      if rnd(3) > 1 or #model == 0 then
        local v = rnd(100)
        q:put_nowait(v)
        model[#model + 1] = v
      else
        table.sort(model)
        assert.equal(table.remove(model, 1), q:get_nowait())
      end
      assert.equal(#model, #q)
    end
    table.sort(model)
    for _, v in ipairs(model) do assert.equal(v, q:get_nowait()) end
    assert.is_true(q:empty())
  end)

  it("uses a custom less (function or callable table)", function()
    local q = corun.priority_queue(nil, function(a, b) return a > b end)
    for _, v in ipairs(shuffled(50, 2)) do q:put_nowait(v) end
    for i = 50, 1, -1 do assert.equal(i, q:get_nowait()) end
    local byp = setmetatable({}, {
      __call = function(_, a, b) return a.pri < b.pri end })
    local r = corun.priority_queue(0, byp)
    local items = {}
    for i, p in ipairs { 3, 1, 2 } do
      items[i] = { pri = p }
      r:put_nowait(items[i])
    end
    assert.equal(items[2], r:get_nowait())
    assert.equal(items[3], r:get_nowait())
    assert.equal(items[1], r:get_nowait())
  end)

  it("rejects a bad less or maxsize", function()
    local e = catch(corun.priority_queue, nil, 42)
    assert.is_not_nil(e)
    assert.truthy(tostring(e):find("priority_queue", 1, true) or
                  tostring(e):find("function", 1, true), tostring(e))
    e = catch(corun.priority_queue, -1)
    assert.truthy(tostring(e):find("priority_queue", 1, true), tostring(e))
    e = catch(corun.priority_queue, 1.5)
    assert.is_not_nil(e)
    e = catch(function() corun.priority_queue():put(nil) end)
    assert.truthy(tostring(e):find("nil is not a valid item", 1, true))
  end)

  it("is bounded by maxsize", async_virtual(function()
    local q = corun.priority_queue(2)
    q:put(5)
    q:put(3)
    assert.is_true(q:full())
    assert.same(fail("full"), both(q:put_nowait(1)))
    assert.same(fail("timeout"), both(q:put(1, 1)))
    assert.equal(2, #q)
    assert.equal(3, q:get())
    assert.equal(5, q:get())
  end))

  it("a parked putter's item that is the least comes out first",
  async(function()
    local q = corun.priority_queue(2)
    q:put(5)
    q:put(6)
    local p = corun.spawn(function() return q:put(1) end)
    corun.sleep(0)
    assert.equal(2, #q)
    assert.equal(1, q:get())
    assert.is_true(p:join())
    assert.equal(5, q:get())
    assert.equal(6, q:get())
    assert.is_true(q:empty())
  end))

  it("a parked putter's item that is not the least waits its turn",
  async(function()
    local q = corun.priority_queue(2)
    q:put(5)
    q:put(6)
    local p = corun.spawn(function() return q:put(9) end)
    corun.sleep(0)
    assert.equal(5, q:get_nowait())
    assert.is_true(p:join())
    assert.equal(2, #q)
    assert.equal(6, q:get())
    assert.equal(9, q:get())
  end))

  it("admits parked putters in arrival order", async(function()
    local q = corun.priority_queue(1)
    q:put(10)
    local ps = {}
    for i, v in ipairs { 3, 1, 2 } do
      ps[i] = corun.spawn(function() return q:put(v) end)
    end
    corun.sleep(0)
    local got = {}
    for _ = 1, 4 do got[#got + 1] = q:get() end
    -- each get admits the next putter, then takes the least present
    assert.same({ 3, 1, 2, 10 }, got)
    for i = 1, 3 do assert.is_true(ps[i]:join()) end
  end))

  it("hands items to waiting getters in arrival order", async(function()
    local q = corun.priority_queue()
    local gs = {}
    for i = 1, 3 do gs[i] = corun.spawn(function() return q:get() end) end
    corun.sleep(0)
    q:put(30)
    q:put(10)
    q:put(20)
    assert.equal(30, gs[1]:join())
    assert.equal(10, gs[2]:join())
    assert.equal(20, gs[3]:join())
  end))

  it("close, iter (in priority order), task_done and join", async(function()
    local q = corun.priority_queue()
    for _, v in ipairs { 4, 2, 3, 1 } do q:put(v) end
    q:close()
    assert.same(fail("closed"), both(q:put(0)))
    local got = {}
    for item in q:iter() do
      got[#got + 1] = item
      q:task_done()
    end
    assert.same({ 1, 2, 3, 4 }, got)
    assert.is_true(q:join())
    assert.same(fail("closed"), both(q:get()))
  end))

  -- less raises while 'boom' is set (with the value of 'boom').
  local boom
  local function touchy(a, b)
    if boom then error(boom, 0) end
    return a < b
  end

  it("a raising comparator makes put raise and leaves the queue intact",
  async(function()
    boom = nil
    local q = corun.priority_queue(nil, touchy)
    for _, v in ipairs { 3, 1, 2 } do q:put(v) end
    boom = "cmp failed"
    local e = catch(q.put, q, 0)
    assert.equal("cmp failed", e)
    e = catch(q.put_nowait, q, 0)
    assert.equal("cmp failed", e)
    assert.equal(3, #q)
    local obj = {}
    boom = obj
    assert.equal(obj, catch(q.put, q, 0))   -- same error object
    boom = nil
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.same({ 1, 2, 3 }, got)
  end))

  it("a raising comparator makes get raise and loses nothing",
  async(function()
    boom = nil
    local q = corun.priority_queue(nil, touchy)
    for _, v in ipairs { 5, 4, 3, 2, 1 } do q:put(v) end
    boom = "cmp failed"
    assert.equal("cmp failed", catch(q.get, q))
    assert.equal("cmp failed", catch(q.get_nowait, q))
    assert.equal(5, #q)
    boom = nil
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.same({ 1, 2, 3, 4, 5 }, got)
  end))

  it("a raising comparator with a parked putter: the putter keeps waiting "
     .. "and nothing is lost", async(function()
    boom = nil
    local q = corun.priority_queue(2, touchy)
    q:put(5)
    q:put(6)
    local p = corun.spawn(function() return q:put(1) end)
    corun.sleep(0)
    boom = "cmp failed"
    assert.equal("cmp failed", catch(q.get, q))
    assert.equal("cmp failed", catch(q.get_nowait, q))
    corun.sleep(0)
    assert.is_false(p:done())
    assert.equal(2, #q)
    boom = nil
    assert.equal(1, q:get())
    assert.is_true(p:join())
    assert.equal(5, q:get())
    assert.equal(6, q:get())
    assert.is_true(q:empty())
  end))

  it("a comparator that raises at random loses and duplicates nothing",
  function()
    local rnd = helper.lcg(77)
    local armed = false
    local q = corun.priority_queue(nil, function(a, b)
      if armed and rnd(4) == 1 then error("random failure", 0) end
      return a < b
    end)
    local model, raised = {}, 0
    local function least()
      local m, at = math.huge, nil
      for i, v in ipairs(model) do if v < m then m, at = v, i end end
      return m, at
    end
    for i = 1, 3000 do
      armed = true
      if rnd(3) > 1 or #model == 0 then
        local v = rnd(1000) + i / 10000     -- distinct values
        local ok, e = pcall(q.put_nowait, q, v)
        if ok then
          model[#model + 1] = v
        else
          assert.equal("random failure", e)
          raised = raised + 1
        end
      else
        local ok, v = pcall(q.get_nowait, q)
        if ok then
          local m, at = least()
          assert.equal(m, v)
          table.remove(model, at)
        else
          assert.equal("random failure", v)
          raised = raised + 1
        end
      end
      armed = false
      assert.equal(#model, #q)
    end
    assert.is_true(raised > 100)
    table.sort(model)
    for _, v in ipairs(model) do assert.equal(v, q:get_nowait()) end
    assert.is_true(q:empty())
  end)
end)

describe("corun.queue under cancellation stress", function()
  after_each(helper.check)

  -- Producers put unique items, consumers get them, both with random
  -- timeouts and pauses (long ones for slow consumers), while a chaos task
  -- cancels random tasks (and the queue may be closed mid-way). In the end
  -- every item must have been received exactly once, or be in the queue, or
  -- never have been put (still in the producer's hands).
  -- make(maxsize) builds the queue (default corun.queue).
  local function stress(seed, nprod, ncons, nitems, maxsize, slow, close_at,
                        make)
    local rnd = helper.lcg(seed)
    local q
    local sent, recv, attempted = {}, {}, {}
    local stats = { put_cancel = 0, get_cancel = 0, cancels = 0,
                    timeouts = 0 }
    local function maybe_timeout()
      local r = rnd(4)
      if r == 1 then return nil end
      return (rnd(8) - 1) * 0.25
    end
    local function pause()
      if rnd(3) == 1 then corun.sleep((rnd(4) - 1) * 0.25) end
    end

    local function producer(p)
      for i = 1, nitems do
        local item = p * 100000 + i
        attempted[#attempted + 1] = item
        while true do
          local ok, r, why = pcall(q.put, q, item, maybe_timeout())
          if not ok then
            assert(corun.is_cancelled(r), tostring(r))
            stats.put_cancel = stats.put_cancel + 1
            error(r, 0)
          end
          if r ~= nil then sent[item] = true break end
          if why == "closed" then return end
          assert(why == "timeout", tostring(why))
          stats.timeouts = stats.timeouts + 1
        end
        pause()
      end
    end
    local function consumer()
      while true do
        local ok, item, why = pcall(q.get, q, maybe_timeout())
        if not ok then
          assert(corun.is_cancelled(item), tostring(item))
          stats.get_cancel = stats.get_cancel + 1
          error(item, 0)
        end
        if item ~= nil then
          recv[item] = (recv[item] or 0) + 1
        elseif why == "closed" then
          return
        else
          assert(why == "timeout", tostring(why))
          stats.timeouts = stats.timeouts + 1
        end
        if slow then corun.sleep(rnd(slow) * 0.25) else pause() end
      end
    end

    local leftover = {}
    corun.run({ clock = "virtual" }, function()
      q = (make or corun.queue)(maxsize)
      if close_at then corun.call_later(close_at, function() q:close() end) end
      local all = {}
      for p = 1, nprod do all[#all + 1] = corun.spawn(producer, p) end
      for _ = 1, ncons do all[#all + 1] = corun.spawn(consumer) end
      local chaos = corun.spawn(function()
        for _ = 1, (nprod + ncons) // 2 do
          corun.sleep((rnd(6) - 1) * 0.125)
          local victim = all[rnd(#all)]
          if victim:cancel("chaos") then stats.cancels = stats.cancels + 1 end
        end
      end)
      chaos:join()
      corun.sleep(100)
      if not close_at then q:close() end
      for _, t in ipairs(all) do
        local ok, e = pcall(t.join, t)
        assert(ok or corun.is_cancelled(e), tostring(e))
      end
      while true do
        local item, why = q:get_nowait()
        if item == nil then assert(why == "closed") break end
        leftover[item] = (leftover[item] or 0) + 1
      end
    end)

    local n_sent, n_recv, n_left = 0, 0, 0
    for _, item in ipairs(attempted) do
      local r, l = recv[item] or 0, leftover[item] or 0
      if sent[item] then
        n_sent = n_sent + 1
        assert(r + l == 1, ("item %d sent, received %d, left %d"):format(
               item, r, l))
        n_recv, n_left = n_recv + r, n_left + l
      else
        assert(r + l == 0, ("item %d never sent, received %d, left %d")
               :format(item, r, l))
      end
    end
    for item in pairs(recv) do assert(sent[item], "phantom " .. item) end
    for item in pairs(leftover) do assert(sent[item], "phantom " .. item) end
    return stats, n_sent, n_recv, n_left
  end

  it("loses and duplicates nothing (bounded queue)", function()
    local stats, n_sent, n_recv = stress(2024, 150, 150, 8, 4)
    assert.is_true(n_sent > 100)
    assert.is_true(n_recv > 0)
    assert.is_true(stats.cancels > 0)
    assert.is_true(stats.put_cancel + stats.get_cancel > 0)
    assert.is_true(stats.timeouts > 0)
  end)

  it("loses and duplicates nothing (unbounded queue, other seed)", function()
    local stats, n_sent = stress(7, 100, 200, 5, 0)
    assert.is_true(n_sent > 100)
    assert.is_true(stats.get_cancel > 0)
  end)

  it("loses and duplicates nothing (maxsize 1)", function()
    local stats, n_sent = stress(99, 200, 50, 5, 1, 8)
    assert.is_true(n_sent > 50)
    assert.is_true(stats.put_cancel > 0)
  end)

  it("loses and duplicates nothing (closed while busy)", function()
    local stats, n_sent = stress(5, 100, 30, 10, 3, 6, 4)
    assert.is_true(n_sent > 0 and n_sent < 1000)
    assert.is_true(stats.put_cancel > 0)
  end)

  it("loses and duplicates nothing (lifo_queue, bounded)", function()
    local stats, n_sent = stress(2024, 150, 150, 8, 4, nil, nil,
                                 corun.lifo_queue)
    assert.is_true(n_sent > 100)
    assert.is_true(stats.put_cancel + stats.get_cancel > 0)
    assert.is_true(stats.timeouts > 0)
  end)

  it("loses and duplicates nothing (lifo_queue, maxsize 1, closed while "
     .. "busy)", function()
    local stats, n_sent = stress(99, 200, 50, 5, 1, 8, 6, corun.lifo_queue)
    assert.is_true(n_sent > 50)
    assert.is_true(stats.put_cancel > 0)
  end)

  it("loses and duplicates nothing (priority_queue, bounded)", function()
    local stats, n_sent = stress(2024, 150, 150, 8, 4, nil, nil,
                                 corun.priority_queue)
    assert.is_true(n_sent > 100)
    assert.is_true(stats.put_cancel + stats.get_cancel > 0)
    assert.is_true(stats.timeouts > 0)
  end)

  it("loses and duplicates nothing (priority_queue, maxsize 1, custom less)",
  function()
    local stats, n_sent = stress(99, 200, 50, 5, 1, 8, nil, function(n)
      return corun.priority_queue(n, function(a, b) return a > b end)
    end)
    assert.is_true(n_sent > 50)
    assert.is_true(stats.put_cancel > 0)
  end)

  it("loses and duplicates nothing (priority_queue, unbounded, closed while "
     .. "busy)", function()
    local stats, n_sent = stress(7, 100, 200, 5, 0, nil, 3,
                                 corun.priority_queue)
    assert.is_true(n_sent > 100)
    assert.is_true(stats.get_cancel > 0)
  end)
end)
