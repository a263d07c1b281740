-- spec/regress/096_queue_ring_spec.lua: a bounded FIFO or LIFO queue of at
-- most 1024 items keeps its ring in its own uservalues (queue.c, issue 9
-- section 5); larger or unbounded ones keep a table. Both must behave the
-- same: order across many wrap-arounds, hand-off from parked putters,
-- LIFO order, select put-cases, close with items left.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async_virtual = cb.async_virtual

-- Push 1..n through q with one producer and one consumer; returns what the
-- consumer got, in order.
local function through(q, n)
  local got = {}
  local c = corun.spawn(function()
    for _ = 1, n do
      got[#got + 1] = q:get()
      q:task_done()
    end
  end)
  for i = 1, n do q:put(i) end
  c:join()
  return got
end

describe("queue rings (regress 096)", function()
  after_each(helper.check)

  for _, size in ipairs { 1, 3, 64, 1024, 1025, 0 } do
    it("FIFO order across wrap-arounds, maxsize " .. size,
    async_virtual(function()
      local q = corun.queue(size)
      local got = through(q, 5000)
      assert.equal(5000, #got)
      for i = 1, 5000 do assert.equal(i, got[i]) end
      assert.equal(0, q:size())
      assert.is_true(q:join())
    end))
  end

  it("LIFO order, bounded, with parked putters", async_virtual(function()
    local q = corun.lifo_queue(3)
    for i = 1, 3 do q:put(i) end
    local p = corun.spawn(function() q:put(4) q:put(5) end)
    corun.sleep(0)
    assert.is_true(q:full())
    local got = {}
    for _ = 1, 5 do got[#got + 1] = q:get() end
    p:join()
    -- a get lets the parked put(4) in; put(5) comes only when that task
    -- runs again, after the gets (they do not suspend)
    assert.same({ 3, 4, 2, 1, 5 }, got)
  end))

  it("keeps items of any type and drops them on get", async_virtual(function()
    local q = corun.queue(4)
    local t = {}
    q:put("s") q:put(t) q:put(false) q:put(2.5)
    assert.same({ "s", t, false, 2.5 },
                { q:get(), q:get(), q:get(), q:get() })
    assert.is_true(q:empty())
  end))

  it("a select put-case fills a freed slot", async_virtual(function()
    local q = corun.queue(2)
    q:put("a") q:put("b")
    local s = corun.spawn(function()
      return corun.select({ q, "send", "c" })
    end)
    corun.sleep(0)
    assert.equal("a", q:get())
    s:join()
    assert.equal("b", q:get())
    assert.equal("c", q:get())
  end))

  it("close keeps what is queued", async_virtual(function()
    local q = corun.queue(8)
    for i = 1, 5 do q:put(i) end
    q:close()
    local got = {}
    for item in q:iter() do got[#got + 1] = item end
    assert.same({ 1, 2, 3, 4, 5 }, got)
    assert.same({ nil, "closed" }, { q:get() })
  end))
end)
