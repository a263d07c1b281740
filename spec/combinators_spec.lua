-- spec/combinators_spec.lua: gather, wait, as_completed, timeout, group
-- (lua/corun, composed from the core primitives).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local closer, catch = helper.closer, helper.catch
local async_virtual = cb.async_virtual

-- A function that sleeps d then returns v (or fails with v when d < 0).
local function after(d, v)
  return function()
    corun.sleep(math.abs(d))
    if d < 0 then error(v, 0) end
    return v
  end
end

local function near(a, b) return math.abs(a - b) < 1e-6 end

describe("corun.gather", function()
  after_each(helper.check)

  it("returns each first result in argument order", async_virtual(function()
    local t0 = corun.time()
    local r = corun.gather(after(3, "a"), after(1, "b"), after(2, "c"))
    assert.same({ "a", "b", "c" }, r)
    assert.is_true(near(corun.time() - t0, 3))
  end))

  it("mixes tasks and functions, keeping only first results",
  async_virtual(function()
    local t = corun.spawn(function() corun.sleep(2) return "task", "extra" end)
    local r = corun.gather(function() return 1, 2 end, t, after(1, "fn"))
    assert.same({ 1, "task", "fn" }, r)
  end))

  it("accepts a list and options", async_virtual(function()
    local r = corun.gather({ after(2, "x"), after(1, "y") }, {})
    assert.same({ "x", "y" }, r)
  end))

  it("return_errors puts the error in its slot", async_virtual(function()
    local obj = {}
    local r = corun.gather({ after(1, "ok"), after(-2, obj),
                             function() corun.sleep(3) error("str fail") end,
                             after(4, "last") },
                           { return_errors = true })
    assert.equal(4, #r)
    assert.equal("ok", r[1])
    assert.equal(obj, r[2])
    assert.truthy(tostring(r[3]):find("str fail", 1, true))
    assert.truthy(tostring(r[3]):find("stack traceback:", 1, true))
    assert.equal("last", r[4])
  end))

  it("return_errors puts Cancelled in the slot of a cancelled task",
  async_virtual(function()
    local t = corun.spawn(corun.sleep, 10)
    corun.call_later(1, function() t:cancel() end)
    local r = corun.gather({ t, after(2, "ok") }, { return_errors = true })
    assert.is_true(corun.is_cancelled(r[1]))
    assert.equal("ok", r[2])
  end))

  it("re-raises the first failure at once and cancels the rest",
  async_virtual(function()
    local log = {}
    local slow = corun.spawn(function()
      local _ <close> = closer(function() log[#log + 1] = "slow closed" end)
      corun.sleep(100)
      log[#log + 1] = "slow finished"
    end)
    local t0 = corun.time()
    local e = catch(corun.gather, slow,
      function()
        local _ <close> = closer(function() log[#log + 1] = "fn closed" end)
        corun.sleep(50)
        log[#log + 1] = "fn finished"
      end,
      function() corun.sleep(5) error("first failure") end,
      function() corun.sleep(7) error("second failure") end)
    assert.truthy(tostring(e):find("first failure", 1, true), tostring(e))
    assert.is_true(near(corun.time() - t0, 5))
    corun.sleep(1)
    assert.equal("cancelled", slow:status())
    table.sort(log)
    assert.same({ "fn closed", "slow closed" }, log)
    assert.same({ corun.current() }, corun.tasks())
  end))
end)

describe("corun.wait", function()
  after_each(helper.check)

  it("waits for all by default; lists keep input order",
  async_virtual(function()
    local ts = { corun.spawn(after(3, 1)), corun.spawn(after(1, 2)),
                 corun.spawn(after(2, 3)) }
    local t0 = corun.time()
    local done, pending = corun.wait(ts)
    assert.is_true(near(corun.time() - t0, 3))
    assert.same(ts, done)
    assert.same({}, pending)
  end))

  it("return_when first returns after the first completion",
  async_virtual(function()
    local ts = { corun.spawn(after(3, 1)), corun.spawn(after(1, 2)),
                 corun.spawn(after(2, 3)) }
    local t0 = corun.time()
    local done, pending = corun.wait(ts, { return_when = "first" })
    assert.is_true(near(corun.time() - t0, 1))
    assert.same({ ts[2] }, done)
    assert.same({ ts[1], ts[3] }, pending)
    assert.is_false(ts[1]:done())
    assert.equal(1, ts[1]:join())
    ts[3]:join()
  end))

  it("return_when first_error returns at the first failure and cancels none",
  async_virtual(function()
    local ts = { corun.spawn(after(4, 1)), corun.spawn(after(1, 2)),
                 corun.spawn(after(-2, "bad")), corun.spawn(after(3, 4)) }
    local t0 = corun.time()
    local done, pending = corun.wait(ts, { return_when = "first_error" })
    assert.is_true(near(corun.time() - t0, 2))
    assert.same({ ts[2], ts[3] }, done)
    assert.same({ ts[1], ts[4] }, pending)
    assert.truthy(catch(ts[3].result, ts[3]):match("^bad\n"))
    assert.equal(1, ts[1]:join())
    assert.equal(4, ts[4]:join())
  end))

  it("return_when first_error without failures waits for all",
  async_virtual(function()
    local ts = { corun.spawn(after(2, 1)), corun.spawn(after(1, 2)) }
    local done, pending = corun.wait(ts, { return_when = "first_error" })
    assert.same(ts, done)
    assert.same({}, pending)
  end))

  it("timeout returns what finished so far without raising",
  async_virtual(function()
    local ts = { corun.spawn(after(5, 1)), corun.spawn(after(1, 2)),
                 corun.spawn(after(2, 3)) }
    local t0 = corun.time()
    local done, pending = corun.wait(ts, { timeout = 3 })
    assert.is_true(near(corun.time() - t0, 3))
    assert.same({ ts[2], ts[3] }, done)
    assert.same({ ts[1] }, pending)
    assert.is_false(ts[1]:done())
    ts[1]:join()
  end))

  it("does not raise for failed tasks under 'all'", async_virtual(function()
    local ts = { corun.spawn(after(-1, "x")), corun.spawn(after(2, "y")) }
    local done, pending = corun.wait(ts)
    assert.same(ts, done)
    assert.same({}, pending)
    assert.equal("failed", ts[1]:status())
    assert.truthy(catch(ts[1].result, ts[1]):match("^x\n"))
  end))

  it("returns at once for tasks already finished", async_virtual(function()
    local t = corun.spawn(function() return 1 end)
    t:join()
    local t0 = corun.time()
    local done, pending = corun.wait({ t }, { return_when = "first" })
    assert.same({ t }, done)
    assert.same({}, pending)
    assert.equal(t0, corun.time())
  end))
end)

describe("corun.as_completed", function()
  after_each(helper.check)

  it("yields tasks in completion order", async_virtual(function()
    local ts = { corun.spawn(after(3, "a")), corun.spawn(after(1, "b")),
                 corun.spawn(after(2, "c")) }
    local t0 = corun.time()
    local got = {}
    for t in corun.as_completed(ts) do
      assert.is_true(t:done())
      got[#got + 1] = { t:result(), corun.time() - t0 }
    end
    assert.equal(3, #got)
    for i, want in ipairs { { "b", 1 }, { "c", 2 }, { "a", 3 } } do
      assert.equal(want[1], got[i][1])
      assert.is_true(near(want[2], got[i][2]))
    end
  end))

  it("raises a Timeout error when its timeout expires",
  async_virtual(function()
    local ts = { corun.spawn(after(1, "a")), corun.spawn(after(5, "b")) }
    local t0 = corun.time()
    local got = {}
    local e = catch(function()
      for t in corun.as_completed(ts, 2) do got[#got + 1] = t:result() end
    end)
    assert.is_true(corun.is_timeout(e))
    assert.same({ "a" }, got)
    assert.is_true(near(corun.time() - t0, 2))
    assert.equal("b", ts[2]:join())
  end))
end)

describe("corun.timeout", function()
  after_each(helper.check)

  it("returns fn's results when it finishes in time",
  async_virtual(function()
    local r = table.pack(corun.timeout(2, function(a, b)
      corun.sleep(1)
      return a + b, nil, "x"
    end, 1, 2))
    assert.same({ 3, nil, "x", n = 3 }, r)
    corun.sleep(5) -- the expired deadline must not hit the task later
  end))

  it("runs fn in the current task", async_virtual(function()
    local me = corun.current()
    assert.equal(me, corun.timeout(1, corun.current))
    assert.equal(me, corun.timeout(1, function()
      corun.sleep(0.5)
      return corun.current()
    end))
  end))

  it("raises Timeout at the deadline after cancelling fn with cleanup",
  async_virtual(function()
    local log = {}
    local t0 = corun.time()
    local e = catch(corun.timeout, 2, function()
      local _ <close> = closer(function() log[#log + 1] = "closed" end)
      local ok, err = pcall(corun.sleep, 10)
      log[#log + 1] = corun.is_cancelled(err) and "cancelled" or "woke"
      error(err, 0)
    end)
    assert.is_true(corun.is_timeout(e))
    assert.truthy(tostring(e):find("timed out", 1, true))
    assert.is_true(near(corun.time() - t0, 2))
    assert.same({ "cancelled", "closed" }, log)
    corun.sleep(1) -- the task is usable and not cancelled afterwards
    assert.equal("running", corun.current():status())
  end))

  it("nests: the inner deadline expires first", async_virtual(function()
    local t0 = corun.time()
    local r = corun.timeout(10, function()
      local e = catch(corun.timeout, 1, corun.sleep, 5)
      assert.is_true(corun.is_timeout(e))
      assert.is_true(near(corun.time() - t0, 1))
      corun.sleep(2)
      return "outer ok"
    end)
    assert.equal("outer ok", r)
    assert.is_true(near(corun.time() - t0, 3))
  end))

  it("nests: the outer deadline expires first", async_virtual(function()
    local t0 = corun.time()
    local seen, after_inner = nil, false
    local e = catch(corun.timeout, 1, function()
      seen = catch(corun.timeout, 10, corun.sleep, 5)
      after_inner = true
      error(seen, 0)
    end)
    assert.is_true(corun.is_timeout(e))
    assert.is_true(near(corun.time() - t0, 1))
    -- The inner call saw the outer cancellation, not a timeout of its own.
    assert.is_true(corun.is_cancelled(seen))
    assert.is_false(corun.is_timeout(seen))
    assert.is_true(after_inner)
  end))

  it("still returns the results when the deadline hits as fn returns",
  async_virtual(function()
    local q = corun.queue()
    -- Armed first, so at the shared deadline it runs before the timeout's
    -- own timer: fn is handed the item, and then the deadline passes.
    corun.call_later(1, function() q:put_nowait("v") end)
    local r = table.pack(corun.timeout(1, function() return q:get() end))
    assert.same({ "v", n = 1 }, r)
    corun.sleep(1)
    assert.equal("running", corun.current():status())
  end))

  it("timeout 0 with an fn that does not suspend returns its results",
  async_virtual(function()
    assert.equal(7, corun.timeout(0, function() return 7 end))
  end))

  it("propagates fn's error unchanged", async_virtual(function()
    local obj = {}
    assert.equal(obj, catch(corun.timeout, 1, error, obj))
    local e = catch(corun.timeout, 1, function() error("inner boom") end)
    assert.truthy(tostring(e):find("inner boom", 1, true))
    assert.is_false(corun.is_timeout(e))
  end))

  it("a task cancelled inside timeout sees Cancelled, not Timeout",
  async_virtual(function()
    local t = corun.spawn(function()
      return corun.timeout(10, corun.sleep, 5)
    end)
    corun.sleep(1)
    t:cancel("outside")
    local e = catch(t.join, t)
    assert.is_true(corun.is_cancelled(e))
    assert.is_false(corun.is_timeout(e))
  end))
end)

describe("corun.group", function()
  after_each(helper.check)

  it("waits for every task spawned in the group", async_virtual(function()
    local log = {}
    local t0 = corun.time()
    corun.group(function(g)
      g:spawn(function(d, v) corun.sleep(d) log[#log + 1] = v end, 2, "b")
      g:spawn(function(d, v) corun.sleep(d) log[#log + 1] = v end, 1, "a")
      g:spawn(function()
        corun.sleep(0.5)
        g:spawn(function() corun.sleep(3) log[#log + 1] = "late" end)
      end)
    end)
    assert.same({ "a", "b", "late" }, log)
    assert.is_true(near(corun.time() - t0, 3.5))
  end))

  it("the first failure cancels the others, re-raised after all finished",
  async_virtual(function()
    local log = {}
    local t0 = corun.time()
    local e = catch(corun.group, function(g)
      g:spawn(function()
        local ok, err = pcall(corun.sleep, 100)
        log[#log + 1] = corun.is_cancelled(err) and "b cancelled" or "b woke"
        corun.sleep(2) -- slow cleanup
        log[#log + 1] = "b cleanup done"
        error(err, 0)
      end)
      g:spawn(function() corun.sleep(1) error("a failed") end)
      g:spawn(function()
        local _ <close> = closer(function() log[#log + 1] = "c closed" end)
        corun.sleep(100)
      end)
    end)
    assert.truthy(tostring(e):find("a failed", 1, true), tostring(e))
    assert.is_true(near(corun.time() - t0, 3))
    table.sort(log)
    assert.same({ "b cancelled", "b cleanup done", "c closed" }, log)
    assert.same({ corun.current() }, corun.tasks())
  end))

  it("a body error cancels the spawned tasks and is re-raised",
  async_virtual(function()
    local log = {}
    local t0 = corun.time()
    local e = catch(corun.group, function(g)
      g:spawn(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        corun.sleep(100)
      end)
      corun.sleep(1)
      error("body boom")
    end)
    assert.truthy(tostring(e):find("body boom", 1, true), tostring(e))
    assert.is_true(near(corun.time() - t0, 1))
    assert.same({ "closed" }, log)
  end))

  it("is cancelled as a whole when its task is cancelled",
  async_virtual(function()
    local log = {}
    local t = corun.spawn(corun.group, function(g)
      for i = 1, 3 do
        g:spawn(function()
          local _ <close> = closer(function() log[#log + 1] = i end)
          corun.sleep(100)
        end)
      end
    end)
    corun.sleep(1)
    t:cancel()
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
    table.sort(log)
    assert.same({ 1, 2, 3 }, log)
  end))
end)
