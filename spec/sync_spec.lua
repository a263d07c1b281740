-- spec/sync_spec.lua: lock, rlock, semaphore, bounded_semaphore, event,
-- condition, barrier (src/sync.c; with and wait_for in lua/corun/init.lua).
-- The stress runs are in spec/sync_stress_spec.lua.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, raises = helper.both, helper.fail, helper.raises
local async, async_virtual = cb.async, cb.async_virtual


-- Append v to list (evaluating v before choosing the slot: a call in v
-- may suspend while other tasks append).
local function add(list, v) list[#list + 1] = v end


-- Join t, which must have been cancelled.
local function join_cancelled(t)
  local e = catch(t.join, t)
  assert(corun.is_cancelled(e), "expected Cancelled, got " .. tostring(e))
  assert.equal("cancelled", t:status())
end

-- The results of fn(...), or the single value "cancelled" if it raised
-- Cancelled (other errors propagate).
local function outcome(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if corun.is_cancelled(r[2]) then return "cancelled" end
  error(r[2], 0)
end

--[[ lock ]]

describe("corun.lock", function()
  after_each(helper.check)

  it("acquire returns true; locked reflects the state", async(function()
    local l = corun.lock()
    assert.is_false(l:locked())
    assert.same(both(true), both(l:acquire()))
    assert.is_true(l:locked())
    l:release()
    assert.is_false(l:locked())
    assert.same(both(true), both(l:acquire(0)))
    l:release()
    assert.same(both(true), both(l:acquire(5)))
    l:release()
    assert.is_false(l:locked())
  end))

  it("acquire(timeout) returns nil, 'timeout' while another task holds it",
  async_virtual(function()
    local l = corun.lock()
    local t0 = corun.time()
    local t = corun.spawn(function()
      l:acquire()
      corun.sleep(5)
      l:release()
    end)
    corun.sleep(0)
    assert.same(fail("timeout"), both(l:acquire(2)))
    assert.near(2, corun.time() - t0, 1e-9)
    assert.same(fail("timeout"), both(l:acquire(0)))
    assert.is_true(l:acquire())
    assert.near(5, corun.time() - t0, 1e-9)
    l:release()
    t:join()
  end))

  it("waiters get it in arrival order; a releaser that re-acquires queues "
     .. "behind them", async(function()
    local l = corun.lock()
    local log = {}
    l:acquire()
    local ts = {}
    for i = 1, 5 do
      ts[i] = corun.spawn(function()
        l:acquire()
        add(log, i)
        corun.sleep(0)
        l:release()
      end)
    end
    corun.sleep(0)
    l:release()
    assert.is_true(l:locked())       -- handed to the first waiter at once
    l:acquire()
    add(log, "main")
    l:release()
    for i = 1, 5 do ts[i]:join() end
    assert.same({ 1, 2, 3, 4, 5, "main" }, log)
  end))

  it("a task arriving after a release does not overtake the waiter",
  async(function()
    local l = corun.lock()
    local log = {}
    l:acquire()
    local w = corun.spawn(function()
      l:acquire() log[#log + 1] = "waiter" l:release()
    end)
    corun.sleep(0)
    -- late is ready before the release makes the waiter ready, so it runs
    -- first, but may not barge: the lock already belongs to the waiter.
    local late = corun.spawn(function()
      l:acquire() add(log, "late") l:release()
    end)
    l:release()
    late:join()
    w:join()
    assert.same({ "waiter", "late" }, log)
  end))

  it("skips waiters that timed out or were cancelled", async_virtual(function()
    local l = corun.lock()
    l:acquire()
    local order = {}
    local function waiter(name, timeout)
      return corun.spawn(function()
        local ok, why = l:acquire(timeout)
        if ok then
          order[#order + 1] = name
          l:release()
        end
        return ok, why
      end)
    end
    local a, b, c, d = waiter("a", 1), waiter("b"), waiter("c", 10),
                       waiter("d")
    corun.sleep(2)
    b:cancel()
    l:release()
    assert.same(fail("timeout"), both(a:join()))
    join_cancelled(b)
    assert.is_true(c:join())
    assert.is_true(d:join())
    assert.same({ "c", "d" }, order)
    assert.is_false(l:locked())
  end))

  it("a waiter handed the lock and then cancelled keeps it until it "
     .. "releases", async(function()
    local l = corun.lock()
    local log = {}
    l:acquire()
    local t = corun.spawn(function()
      add(log, l:acquire())
      add(log, outcome(corun.sleep, 10))
      add(log, l:locked())
      l:release()
    end)
    corun.sleep(0)
    l:release()          -- handed to t
    t:cancel()           -- before t runs
    t:join()
    assert.same({ true, "cancelled", true }, log)
    assert.is_false(l:locked())
  end))

  it("release raises when not held or held by another task", async(function()
    local l = corun.lock()
    raises("not held", l.release, l)
    l:acquire()
    local e = corun.spawn(function() return catch(l.release, l) end):join()
    assert.truthy(tostring(e):find("held by another task", 1, true),
                  tostring(e))
    assert.is_true(l:locked())
    l:release()
    raises("not held", l.release, l)
  end))

  it("release from a call_soon callback raises", async(function()
    local l = corun.lock()
    local errs = {}
    l:acquire()
    corun.call_soon(function() errs[1] = catch(l.release, l) end)
    corun.sleep(0)
    l:release()
    corun.call_soon(function() errs[2] = catch(l.release, l) end)
    corun.sleep(0)
    assert.truthy(tostring(errs[1]):find("held by another task", 1, true),
                  tostring(errs[1]))
    assert.truthy(tostring(errs[2]):find("not held", 1, true),
                  tostring(errs[2]))
    assert.is_false(l:locked())
  end))

  it("acquiring a plain lock twice in one task raises", async(function()
    local l = corun.lock()
    l:acquire()
    raises("already holds the lock", l.acquire, l)
    raises("already holds the lock", l.acquire, l, 1)
    raises("already holds the lock", l.hold, l)
    l:release()              -- held once: one release frees it
    assert.is_false(l:locked())
  end))

  it("acquire and hold need a task", function()
    local l = corun.lock()
    raises("inside a task", l.acquire, l)
    raises("inside a task", l.hold, l)
    assert.is_false(l:locked())
  end)

  it("rejects a bad timeout", async(function()
    local l = corun.lock()
    raises("timeout", l.acquire, l, -1)
    raises("acquire", function() l:acquire("x") end)
    assert.is_false(l:locked())
  end))

  it("hold returns the lock; <close> releases it on normal exit",
  async(function()
    local l = corun.lock()
    do
      local g <close> = l:hold()
      assert.equal(l, g)
      assert.is_true(l:locked())
    end
    assert.is_false(l:locked())
  end))

  it("<close> of hold releases on error", async(function()
    local l = corun.lock()
    local e = catch(function()
      local _ <close> = l:hold()
      error("boom")
    end)
    assert.truthy(tostring(e):find("boom", 1, true))
    assert.is_false(l:locked())
  end))

  it("<close> of hold releases when the holder is cancelled", async(function()
    local l = corun.lock()
    local t = corun.spawn(function()
      local _ <close> = l:hold()
      corun.sleep(100)
    end)
    corun.sleep(0)
    assert.is_true(l:locked())
    t:cancel()
    join_cancelled(t)
    assert.is_false(l:locked())
    assert.is_true(l:acquire(0))
    l:release()
  end))

  it("hold parked and cancelled takes nothing", async(function()
    local l = corun.lock()
    l:acquire()
    local t = corun.spawn(function()
      local _ <close> = l:hold()
      return "got it"
    end)
    corun.sleep(0)
    t:cancel()
    join_cancelled(t)
    assert.is_true(l:locked())
    l:release()              -- still ours
    assert.is_false(l:locked())
  end))

  it("hold waits in line like acquire", async_virtual(function()
    local l = corun.lock()
    local log = {}
    l:acquire()
    local ts = {}
    for i = 1, 3 do
      ts[i] = corun.spawn(function()
        local _ <close> = l:hold()
        add(log, i)
        corun.sleep(1)
      end)
    end
    corun.sleep(0)
    l:release()
    for i = 1, 3 do ts[i]:join() end
    assert.same({ 1, 2, 3 }, log)
    assert.is_false(l:locked())
  end))

  it("with returns fn's results and releases", async(function()
    local l = corun.lock()
    local r = both(l:with(function(a, b)
      assert.is_true(l:locked())
      return a, nil, b
    end, 1, "x"))
    assert.same({ n = 3, 1, nil, "x" }, r)
    assert.is_false(l:locked())
    assert.same({ n = 0 }, both(l:with(function() end)))
  end))

  it("with releases and re-raises the same error object", async(function()
    local l = corun.lock()
    local err = {}
    assert.equal(err, catch(l.with, l, function() error(err) end))
    assert.is_false(l:locked())
    local e = catch(l.with, l, function() error("plain") end)
    assert.truthy(tostring(e):find("plain", 1, true))
    assert.is_false(l:locked())
  end))

  it("with releases when the task is cancelled inside fn", async(function()
    local l = corun.lock()
    local t = corun.spawn(function()
      return l:with(function() corun.sleep(100) end)
    end)
    corun.sleep(0)
    assert.is_true(l:locked())
    t:cancel()
    join_cancelled(t)
    assert.is_false(l:locked())
  end))

  it("with cancelled while waiting for the lock releases nothing",
  async(function()
    local l = corun.lock()
    l:acquire()
    local ran = false
    local t = corun.spawn(function()
      return l:with(function() ran = true end)
    end)
    corun.sleep(0)
    t:cancel()
    join_cancelled(t)
    assert.is_false(ran)
    assert.is_true(l:locked())
    l:release()
  end))

  it("with rejects a non-function", async(function()
    local l = corun.lock()
    raises("with", function() l:with(42) end)
    assert.is_false(l:locked())
  end))

  it("has a tostring", function()
    assert.truthy(tostring(corun.lock()):find("lock", 1, true))
  end)
end)

--[[ rlock ]]

describe("corun.rlock", function()
  after_each(helper.check)

  it("counts the owner's depth", async(function()
    local l = corun.rlock()
    assert.is_true(l:acquire())
    assert.is_true(l:acquire())
    assert.is_true(l:acquire(0))
    l:release()
    l:release()
    assert.is_true(l:locked())
    l:release()
    assert.is_false(l:locked())
    raises("not held", l.release, l)
  end))

  it("other tasks wait until it is fully released", async_virtual(function()
    local l = corun.rlock()
    l:acquire()
    l:acquire()
    local t = corun.spawn(function() return l:acquire(), corun.time() end)
    local t0 = corun.time()
    corun.sleep(1)
    l:release()
    corun.sleep(1)
    assert.is_false(t:done())
    l:release()
    local ok, at = t:join()
    assert.is_true(ok)
    assert.near(t0 + 2, at, 1e-9)
  end))

  it("the depth left is the new owner's own (starts at 1)", async(function()
    local l = corun.rlock()
    l:acquire()
    l:acquire()
    local t = corun.spawn(function()
      l:acquire()
      l:release()
      return l:locked()
    end)
    corun.sleep(0)
    l:release()
    l:release()
    assert.is_false(t:join())
  end))

  it("release by another task or a callback raises", async(function()
    local l = corun.rlock()
    l:acquire()
    local e = corun.spawn(function() return catch(l.release, l) end):join()
    assert.truthy(tostring(e):find("held by another task", 1, true))
    local e2
    corun.call_soon(function() e2 = catch(l.release, l) end)
    corun.sleep(0)
    assert.truthy(tostring(e2):find("held by another task", 1, true))
    assert.is_true(l:locked())
    l:release()
    assert.is_false(l:locked())
  end))

  it("nested hold and with release one level each", async(function()
    local l = corun.rlock()
    local r = l:with(function()
      do
        local g <close> = l:hold()
        assert.equal(l, g)
        local inner = l:with(function() return "inner" end)
        assert.equal("inner", inner)
      end
      assert.is_true(l:locked())
      return "outer"
    end)
    assert.equal("outer", r)
    assert.is_false(l:locked())
  end))

  it("<close> and with unwind every level on cancellation", async(function()
    local l = corun.rlock()
    local t = corun.spawn(function()
      local _ <close> = l:hold()
      l:with(function()
        local _ <close> = l:hold()
        corun.sleep(100)
      end)
    end)
    corun.sleep(0)
    t:cancel()
    join_cancelled(t)
    assert.is_false(l:locked())
  end))

  it("is FIFO with hand-off", async(function()
    local l = corun.rlock()
    local log = {}
    l:acquire()
    local ts = {}
    for i = 1, 4 do
      ts[i] = corun.spawn(function()
        l:acquire() l:acquire()
        add(log, i)
        corun.sleep(0)
        l:release() l:release()
      end)
    end
    corun.sleep(0)
    l:release()
    l:acquire()
    add(log, "main")
    l:release()
    for i = 1, 4 do ts[i]:join() end
    assert.same({ 1, 2, 3, 4, "main" }, log)
  end))
end)

--[[ semaphore ]]

describe("corun.semaphore", function()
  after_each(helper.check)

  it("defaults to one permit; acquire/release/value", async(function()
    local s = corun.semaphore()
    assert.equal(1, s:value())
    assert.same(both(true), both(s:acquire()))
    assert.equal(0, s:value())
    s:release()
    assert.equal(1, s:value())
  end))

  it("counts n permits; an unbounded one may go above n", async(function()
    local s = corun.semaphore(3)
    assert.equal(3, s:value())
    for _ = 1, 3 do assert.is_true(s:acquire()) end
    assert.equal(0, s:value())
    assert.same(fail("timeout"), both(s:acquire(0)))
    for _ = 1, 5 do s:release() end
    assert.equal(5, s:value())
  end))

  it("semaphore(0) starts empty", async_virtual(function()
    local s = corun.semaphore(0)
    assert.equal(0, s:value())
    local t0 = corun.time()
    assert.same(fail("timeout"), both(s:acquire(1.5)))
    assert.near(1.5, corun.time() - t0, 1e-9)
    assert.equal(0, s:value())
  end))

  it("acquire needs a task only when it must wait", function()
    local s = corun.semaphore(1)
    assert.is_true(s:acquire())
    raises("inside a task", s.acquire, s)
    raises("inside a task", s.acquire, s, 1)
    s:release()
    assert.equal(s, s:hold())
    s:release()
    assert.equal(1, s:value())
  end)

  it("release from a callback wakes waiters in arrival order",
  async(function()
    local s = corun.semaphore(0)
    local log = {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = corun.spawn(function() s:acquire() log[#log + 1] = i end)
    end
    corun.sleep(0)
    corun.call_soon(function()
      for _ = 1, 5 do s:release() end
      add(log, s:value())      -- every permit was handed off
    end)
    for i = 1, 5 do ts[i]:join() end
    assert.same({ 0, 1, 2, 3, 4, 5 }, log)
    assert.equal(0, s:value())
  end))

  it("a releaser that re-acquires at once queues behind the waiters",
  async(function()
    local s = corun.semaphore(1)
    local log = {}
    s:acquire()
    local ts = {}
    for i = 1, 3 do
      ts[i] = corun.spawn(function()
        s:acquire()
        add(log, i)
        corun.sleep(0)
        s:release()
      end)
    end
    corun.sleep(0)
    s:release()
    assert.equal(0, s:value())
    s:acquire()
    add(log, "main")
    s:release()
    for i = 1, 3 do ts[i]:join() end
    assert.same({ 1, 2, 3, "main" }, log)
    assert.equal(1, s:value())
  end))

  it("skips waiters that timed out or were cancelled", async_virtual(function()
    local s = corun.semaphore(0)
    local a = corun.spawn(function() return s:acquire(1) end)
    local b = corun.spawn(function() return s:acquire() end)
    local c = corun.spawn(function() return s:acquire() end)
    corun.sleep(2)
    b:cancel()
    s:release()
    assert.same(fail("timeout"), both(a:join()))
    join_cancelled(b)
    assert.is_true(c:join())
    assert.equal(0, s:value())
  end))

  it("a waiter handed a permit and then cancelled keeps it", async(function()
    local s = corun.semaphore(0)
    local t = corun.spawn(function()
      local _ <close> = s:hold()
      corun.sleep(100)
    end)
    corun.sleep(0)
    s:release()
    t:cancel()
    join_cancelled(t)
    assert.equal(1, s:value())   -- given back by the <close>
  end))

  it("hold returns the semaphore; <close> releases on exit, error and "
     .. "cancellation", async(function()
    local s = corun.semaphore(2)
    do
      local g <close> = s:hold()
      assert.equal(s, g)
      assert.equal(1, s:value())
    end
    assert.equal(2, s:value())
    local e = catch(function()
      local _ <close> = s:hold()
      error("boom")
    end)
    assert.truthy(tostring(e):find("boom", 1, true))
    assert.equal(2, s:value())
    local t = corun.spawn(function()
      local _ <close> = s:hold()
      local _ <close> = s:hold()
      corun.sleep(100)
    end)
    corun.sleep(0)
    assert.equal(0, s:value())
    t:cancel()
    join_cancelled(t)
    assert.equal(2, s:value())
  end))

  it("with returns fn's results and releases on error and cancellation",
  async(function()
    local s = corun.semaphore(1)
    assert.same({ n = 3, "a", nil, 3 },
                both(s:with(function(x) return x, nil, 3 end, "a")))
    assert.equal(1, s:value())
    local err = setmetatable({}, { __tostring = function() return "E" end })
    assert.equal(err, catch(s.with, s, function() error(err) end))
    assert.equal(1, s:value())
    local t = corun.spawn(function()
      s:with(function() corun.sleep(100) end)
    end)
    corun.sleep(0)
    assert.equal(0, s:value())
    t:cancel()
    join_cancelled(t)
    assert.equal(1, s:value())
  end))

  it("rejects a negative, fractional or non-number count", function()
    for _, ctor in ipairs { "semaphore", "bounded_semaphore" } do
      for _, bad in ipairs { "-1", "1.5", "'x'", "{}", "math.huge" } do
        local f = load("local corun = ... return corun." .. ctor .. "("
                       .. bad .. ")")
        local e = catch(f, corun)
        assert(e ~= nil, ctor .. "(" .. bad .. ") did not raise")
        assert(tostring(e):find(ctor, 1, true), tostring(e))
      end
      assert.equal(0, corun[ctor](0):value())
      assert.equal(7, corun[ctor](7):value())
      assert.equal(2, corun[ctor](2.0):value())
    end
  end)

  it("rejects a bad timeout", async(function()
    local s = corun.semaphore(0)
    raises("timeout", s.acquire, s, -0.5)
    assert.equal(0, s:value())
  end))

  it("has a tostring", function()
    assert.truthy(tostring(corun.semaphore(2)):find("semaphore", 1, true))
  end)
end)

describe("corun.bounded_semaphore", function()
  after_each(helper.check)

  it("raises when released above its initial value", async(function()
    local s = corun.bounded_semaphore(2)
    raises("released too many times", s.release, s)
    assert.equal(2, s:value())
    s:acquire()
    s:acquire()
    s:release()
    s:release()
    raises("released too many times", s.release, s)
    assert.equal(2, s:value())
    local z = corun.bounded_semaphore(0)
    raises("released too many times", z.release, z)
    assert.equal(0, z:value())
  end))

  it("defaults to one permit", function()
    local s = corun.bounded_semaphore()
    assert.equal(1, s:value())
    raises("released too many times", s.release, s)
  end)

  it("hands off to waiters, FIFO; release works from callbacks",
  async(function()
    local s = corun.bounded_semaphore(1)
    local log = {}
    s:acquire()
    local ts = {}
    for i = 1, 3 do
      ts[i] = corun.spawn(function()
        s:acquire()
        add(log, i)
        corun.call_soon(function() s:release() end)
      end)
    end
    corun.sleep(0)
    s:release()
    for i = 1, 3 do ts[i]:join() end
    corun.sleep(0)
    assert.same({ 1, 2, 3 }, log)
    assert.equal(1, s:value())
    raises("released too many times", s.release, s)
  end))

  it("hold and with give back exactly what they took", async(function()
    local s = corun.bounded_semaphore(2)
    do
      local _ <close> = s:hold()
      assert.equal(1, s:value())
      s:with(function() assert.equal(0, s:value()) end)
    end
    assert.equal(2, s:value())
  end))
end)

--[[ event ]]

describe("corun.event", function()
  after_each(helper.check)

  it("set, clear, is_set; wait returns true at once when set", function()
    local e = corun.event()
    assert.is_false(e:is_set())
    e:set()
    assert.is_true(e:is_set())
    e:set()
    assert.is_true(e:is_set())
    assert.same(both(true), both(e:wait()))   -- no task needed
    assert.same(both(true), both(e:wait(0)))
    e:clear()
    assert.is_false(e:is_set())
    e:clear()
    assert.is_false(e:is_set())
    raises("inside a task", e.wait, e)
  end)

  it("wait(timeout) returns nil, 'timeout'", async_virtual(function()
    local e = corun.event()
    local t0 = corun.time()
    assert.same(fail("timeout"), both(e:wait(2.5)))
    assert.near(2.5, corun.time() - t0, 1e-9)
    assert.same(fail("timeout"), both(e:wait(0)))
    raises("timeout", e.wait, e, -1)
  end))

  it("set wakes every waiter, in arrival order, at the time of the set",
  async_virtual(function()
    local e = corun.event()
    local log = {}
    local ts = {}
    local t0 = corun.time()
    for i = 1, 5 do
      ts[i] = corun.spawn(function()
        local ok = e:wait(i == 3 and 10 or nil)
        add(log, i)
        return ok, corun.time() - t0
      end)
    end
    corun.call_later(3, function() e:set() end)
    for i = 1, 5 do
      local ok, at = ts[i]:join()
      assert.is_true(ok)
      assert.near(3, at, 1e-9)
    end
    assert.same({ 1, 2, 3, 4, 5 }, log)
  end))

  it("woken waiters return true even if clear() runs before them",
  async(function()
    local e = corun.event()
    local ts = {}
    for i = 1, 3 do ts[i] = corun.spawn(function() return e:wait() end) end
    corun.sleep(0)
    e:set()
    e:clear()
    for i = 1, 3 do assert.is_true(ts[i]:join()) end
    assert.is_false(e:is_set())
  end))

  it("a wait after clear parks again", async_virtual(function()
    local e = corun.event()
    e:set()
    e:clear()
    local t = corun.spawn(function() return e:wait() end)
    corun.sleep(1)
    assert.is_false(t:done())
    e:set()
    assert.is_true(t:join())
  end))

  it("a cancelled waiter raises Cancelled; the others still get true",
  async(function()
    local e = corun.event()
    local a = corun.spawn(function() return e:wait() end)
    local b = corun.spawn(function() return e:wait() end)
    corun.sleep(0)
    a:cancel()
    join_cancelled(a)
    e:set()
    assert.is_true(b:join())
  end))

  it("a waiter woken and then cancelled returns true, then gets Cancelled",
  async(function()
    local e = corun.event()
    local log = {}
    local t = corun.spawn(function()
      add(log, e:wait())
      add(log, outcome(corun.sleep, 10))
    end)
    corun.sleep(0)
    e:set()
    t:cancel()
    t:join()
    assert.same({ true, "cancelled" }, log)
  end))

  it("has a tostring", function()
    assert.truthy(tostring(corun.event()):find("event", 1, true))
  end)
end)

--[[ condition ]]

describe("corun.condition", function()
  after_each(helper.check)

  it("acquire, release, locked, hold and with act on its lock",
  async(function()
    local c = corun.condition()
    assert.is_false(c:locked())
    assert.same(both(true), both(c:acquire()))
    assert.is_true(c:locked())
    raises("already holds the lock", c.acquire, c)
    c:release()
    assert.is_false(c:locked())
    raises("not held", c.release, c)
    do
      local g <close> = c:hold()
      assert.equal(c, g)
      assert.is_true(c:locked())
    end
    assert.is_false(c:locked())
    assert.same({ n = 2, 1, 2 },
                both(c:with(function() return 1, 2 end)))
    assert.is_false(c:locked())
  end))

  it("uses the lock it is given (lock or rlock)", async(function()
    local l = corun.lock()
    local c = corun.condition(l)
    c:acquire()
    assert.is_true(l:locked())
    l:release()
    assert.is_false(c:locked())
    local r = corun.rlock()
    local rc = corun.condition(r)
    r:acquire()
    rc:acquire()
    rc:release()
    assert.is_true(r:locked())
    r:release()
    assert.is_false(rc:locked())
  end))

  it("rejects something that is not a lock", function()
    assert.is_not_nil(catch(corun.condition, "x"))
    assert.is_not_nil(catch(corun.condition, corun.semaphore()))
    assert.is_not_nil(catch(corun.condition, corun.condition()))
  end)

  it("wait, notify and notify_all require holding the lock",
  async(function()
    local c = corun.condition()
    raises("not held by this task", c.wait, c)
    raises("not held by this task", c.wait, c, 1)
    raises("not held by this task", c.notify, c)
    raises("not held by this task", c.notify_all, c)
    raises("not held by this task", c.wait_for, c, function() end)
    local holder = corun.spawn(function() c:acquire() corun.sleep(100) end)
    corun.sleep(0)
    raises("not held by this task", c.wait, c)
    raises("not held by this task", c.notify, c)
    holder:cancel()
    join_cancelled(holder)
  end))

  it("wait must be called from a task", function()
    local c = corun.condition()
    raises("inside a task", c.wait, c)
  end)

  it("notify and notify_all from a callback raise", async(function()
    local c = corun.condition()
    local errs = {}
    c:acquire()
    corun.call_soon(function()
      errs[1] = catch(c.notify, c)
      errs[2] = catch(c.notify_all, c)
      errs[3] = catch(c.release, c)
    end)
    corun.sleep(0)
    c:release()
    assert.truthy(tostring(errs[1]):find("not held", 1, true))
    assert.truthy(tostring(errs[2]):find("not held", 1, true))
    assert.truthy(tostring(errs[3]):find("held by another task", 1, true))
  end))

  it("notify rejects a negative or fractional count", async(function()
    local c = corun.condition()
    c:acquire()
    raises("notify", function() c:notify(-1) end)
    raises("notify", function() c:notify(1.5) end)
    c:notify(0)
    c:notify()              -- no waiters: nothing happens
    c:notify_all()
    c:release()
  end))

  it("wait releases the lock and holds it again when it returns",
  async(function()
    local c = corun.condition()
    local log = {}
    local t = corun.spawn(function()
      c:acquire()
      add(log, "waiting")
      add(log, c:wait())
      add(log, c:locked())
      c:release()
    end)
    corun.sleep(0)
    assert.is_false(c:locked())          -- released by the wait
    c:acquire()
    c:notify()
    add(log, "notified")
    c:release()
    t:join()
    assert.same({ "waiting", "notified", true, true }, log)
    assert.is_false(c:locked())
  end))

  it("a notified waiter gets the lock only after the notifier releases it",
  async_virtual(function()
    local c = corun.condition()
    local t = corun.spawn(function()
      c:acquire()
      c:wait()
      local at = corun.time()
      c:release()
      return at
    end)
    corun.sleep(0)
    local t0 = corun.time()
    c:acquire()
    c:notify()
    corun.sleep(2)               -- still holding the lock
    assert.is_false(t:done())
    c:release()
    assert.near(t0 + 2, t:join(), 1e-9)
  end))

  it("wait(timeout) returns nil, 'timeout' holding the lock again",
  async_virtual(function()
    local c = corun.condition()
    local t0 = corun.time()
    c:acquire()
    assert.same(fail("timeout"), both(c:wait(1.5)))
    assert.near(1.5, corun.time() - t0, 1e-9)
    assert.is_true(c:locked())
    c:release()               -- held by this task: no error
    assert.is_false(c:locked())
  end))

  it("a timed-out wait re-acquires only when the lock is free",
  async_virtual(function()
    local c = corun.condition()
    local t0 = corun.time()
    local t = corun.spawn(function()
      c:acquire()
      local r = both(c:wait(1))
      r.at = corun.time() - t0
      r.locked = c:locked()
      c:release()
      return r
    end)
    corun.sleep(0)
    c:acquire()           -- held from 0 to 3: the timeout at 1 must wait
    corun.sleep(3)
    c:release()
    local r = t:join()
    assert.same({ nil, "timeout" }, { r[1], r[2] })
    assert.near(3, r.at, 1e-9)
    assert.is_true(r.locked)
  end))

  it("a cancelled wait raises Cancelled with the lock held again",
  async_virtual(function()
    local c = corun.condition()
    local log = {}
    local t0 = corun.time()
    local a = corun.spawn(function()
      c:acquire()
      local ok, e = pcall(c.wait, c)
      add(log, ok and "returned" or
               (corun.is_cancelled(e) and "cancelled" or tostring(e)))
      add(log, ("a holds at %g"):format(corun.time() - t0))
      add(log, c:locked())
      corun.sleep(1)        -- still holding it: b must wait
      add(log, ("a releases at %g"):format(corun.time() - t0))
      c:release()
    end)
    corun.sleep(0)
    c:acquire()
    a:cancel()                -- a is woken, but the lock is ours
    local b = corun.spawn(function()
      c:acquire()
      add(log, ("b holds at %g"):format(corun.time() - t0))
      c:release()
    end)
    corun.sleep(2)
    assert.is_false(a:done())  -- waiting for the lock, not yet raised
    assert.same({}, log)
    c:release()               -- a is first in line, then b
    a:join()
    b:join()
    assert.same({ "cancelled", "a holds at 2", true, "a releases at 3",
                  "b holds at 3" }, log)
    assert.is_false(c:locked())
  end))

  it("a wait in a task already cancelled raises without releasing the lock",
  async(function()
    local c = corun.condition()
    local log = {}
    local t = corun.spawn(function()
      c:acquire()
      corun.current():cancel()
      add(log, outcome(c.wait, c))
      add(log, c:locked())
      c:release()
    end)
    t:join()
    assert.same({ "cancelled", true }, log)
  end))

  it("hold/with around a cancelled wait release the lock", async(function()
    local c = corun.condition()
    local t1 = corun.spawn(function()
      local _ <close> = c:hold()
      c:wait()
    end)
    local t2 = corun.spawn(function()
      c:with(function() c:wait() end)
    end)
    corun.sleep(0)
    t1:cancel()
    t2:cancel()
    join_cancelled(t1)
    join_cancelled(t2)
    assert.is_false(c:locked())
  end))

  it("an rlock's depth is restored after a wait", async(function()
    local r = corun.rlock()
    local c = corun.condition(r)
    local log = {}
    local t = corun.spawn(function()
      r:acquire()
      r:acquire()
      c:acquire()                 -- depth 3
      add(log, c:wait())
      r:release()
      r:release()
      add(log, r:locked())  -- depth 1 left
      r:release()
      add(log, r:locked())
      add(log, tostring(catch(r.release, r)):find("not held", 1, true)
               ~= nil)
    end)
    corun.sleep(0)
    assert.is_false(r:locked())   -- fully released while waiting
    r:acquire()
    c:notify()
    r:release()
    t:join()
    assert.same({ true, true, false, true }, log)
  end))

  it("an rlock's depth is restored after a timed-out and a cancelled wait",
  async_virtual(function()
    local r = corun.rlock()
    local c = corun.condition(r)
    local function depth_after(fn)
      return corun.spawn(function()
        r:acquire() r:acquire()
        fn()
        local d = 0
        while r:locked() do
          r:release()
          d = d + 1
        end
        return d
      end)
    end
    local a = depth_after(function() c:wait(1) end)
    assert.equal(2, a:join())
    local b = depth_after(function() outcome(c.wait, c) end)
    corun.sleep(0)
    b:cancel()
    assert.equal(2, b:join())
  end))

  it("notify(n) wakes the first n waiters in arrival order; notify_all the "
     .. "rest", async(function()
    local c = corun.condition()
    local log = {}
    local ts = {}
    for i = 1, 6 do
      ts[i] = corun.spawn(function()
        c:acquire()
        c:wait()
        add(log, i)
        c:release()
      end)
    end
    corun.sleep(0)
    c:acquire()
    c:notify(2)
    c:release()
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ 1, 2 }, log)
    c:acquire()
    c:notify()
    c:release()
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ 1, 2, 3 }, log)
    c:acquire()
    c:notify_all()
    c:release()
    for i = 1, 6 do ts[i]:join() end
    assert.same({ 1, 2, 3, 4, 5, 6 }, log)
  end))

  it("notify(n) with fewer waiters wakes them all; later waiters need a new "
     .. "notify", async_virtual(function()
    local c = corun.condition()
    local function waiter()
      return corun.spawn(function()
        c:acquire()
        local ok, why = c:wait(5)
        c:release()
        return ok, why
      end)
    end
    local a, b = waiter(), waiter()
    corun.sleep(0)
    c:acquire()
    c:notify(10)
    c:release()
    local late = waiter()
    assert.is_true(a:join())
    assert.is_true(b:join())
    assert.same(fail("timeout"), both(late:join()))
  end))

  it("a notify(1) that lands on a task being cancelled is passed on",
  async_virtual(function()
    local c = corun.condition()
    local log = {}
    local a = corun.spawn(function()
      c:acquire()
      add(log, "a " .. tostring(outcome(c.wait, c)))
      c:release()
    end)
    local b = corun.spawn(function()
      c:acquire()
      add(log, "b " .. tostring(c:wait()))
      c:release()
    end)
    corun.sleep(0)
    c:acquire()
    c:notify(1)         -- a is woken...
    a:cancel()          -- ...and cancelled before it runs
    c:release()
    a:join()
    b:join(5)
    assert.same({ "a cancelled", "b true" }, log)
  end))

  it("a notified waiter cancelled while it waits for the lock passes the "
     .. "notification on", async_virtual(function()
    local c = corun.condition()
    local log = {}
    local a = corun.spawn(function()
      c:acquire()
      add(log, "a " .. tostring(outcome(c.wait, c)))
      c:release()
    end)
    local b = corun.spawn(function()
      c:acquire()
      add(log, "b " .. tostring(c:wait(5)))
      c:release()
    end)
    corun.sleep(0)
    c:acquire()
    c:notify(1)
    corun.sleep(0)      -- a resumes and queues for the lock we hold
    a:cancel()
    c:release()         -- a re-acquires, then raises Cancelled
    a:join()
    b:join()
    assert.same({ "a cancelled", "b true" }, log)
  end))

  it("a waiter cancelled before the notify does not take it",
  async(function()
    local c = corun.condition()
    local a = corun.spawn(function()
      local _ <close> = c:hold()
      c:wait()
    end)
    local b = corun.spawn(function()
      c:acquire() local ok = c:wait() c:release() return ok
    end)
    corun.sleep(0)
    a:cancel()
    join_cancelled(a)
    assert.is_false(c:locked())
    c:acquire()
    c:notify(1)
    c:release()
    assert.is_true(b:join())
  end))

  it("wait_for returns pred's value at once when it holds", async(function()
    local c = corun.condition()
    c:acquire()
    local calls = 0
    assert.same(both("yes"), both(c:wait_for(function()
      calls = calls + 1
      return "yes"
    end)))
    assert.equal(1, calls)
    assert.is_true(c:locked())
    c:release()
  end))

  it("wait_for waits for the predicate across notifies", async_virtual(function()
    local c = corun.condition()
    local n = 0
    local t = corun.spawn(function()
      c:acquire()
      local v = c:wait_for(function() return n >= 3 and n * 10 end)
      local held = c:locked()
      c:release()
      return v, held, corun.time()
    end)
    local t0 = corun.time()
    for _ = 1, 3 do
      corun.sleep(1)
      c:with(function()
        n = n + 1
        c:notify_all()
      end)
    end
    local v, held, at = t:join()
    assert.equal(30, v)
    assert.is_true(held)
    assert.near(t0 + 3, at, 1e-9)
  end))

  it("wait_for(pred, timeout) returns nil, 'timeout' at the deadline",
  async_virtual(function()
    local c = corun.condition()
    local t0 = corun.time()
    local stop = false
    corun.spawn(function()       -- notifies often, pred stays false
      while not stop do
        corun.sleep(0.25)
        c:with(function() c:notify_all() end)
      end
    end)
    c:acquire()
    assert.same(fail("timeout"), both(c:wait_for(function() return false end,
                                                 2)))
    assert.near(2, corun.time() - t0, 1e-9)
    assert.is_true(c:locked())
    assert.is_false(c:wait_for(function() return false end, 0) ~= nil)
    c:release()
    stop = true
    corun.sleep(0.5)
  end))

  it("wait_for rejects a bad predicate or timeout", async(function()
    local c = corun.condition()
    c:acquire()
    raises("wait_for", function() c:wait_for(42) end)
    raises("wait_for", function() c:wait_for(function() end, -1) end)
    c:release()
  end))

  it("has a tostring", function()
    assert.truthy(tostring(corun.condition()):find("condition", 1, true))
  end)
end)

--[[ barrier ]]

describe("corun.barrier", function()
  after_each(helper.check)

  it("returns arrival indices 0..n-1; the last arrival releases all",
  async(function()
    local b = corun.barrier(3)
    assert.equal(3, b:parties())
    assert.equal(0, b:n_waiting())
    assert.is_false(b:broken())
    local ts = {}
    for i = 1, 2 do ts[i] = corun.spawn(function() return b:wait() end) end
    corun.sleep(0)
    assert.equal(2, b:n_waiting())
    assert.same(both(2), both(b:wait()))   -- does not block
    assert.equal(0, b:n_waiting())
    assert.same(both(0), both(ts[1]:join()))
    assert.same(both(1), both(ts[2]:join()))
  end))

  it("barrier(1) never blocks", async(function()
    local b = corun.barrier(1)
    for _ = 1, 3 do assert.equal(0, b:wait()) end
  end))

  it("releases in groups of n across generations", async_virtual(function()
    local b = corun.barrier(3)
    local t0 = corun.time()
    local ts = {}
    for i = 1, 9 do
      ts[i] = corun.spawn(function()
        corun.sleep(i)
        local k = b:wait()
        return k, corun.time() - t0
      end)
    end
    for i = 1, 9 do
      local k, at = ts[i]:join()
      assert.equal((i - 1) % 3, k)
      assert.near(3 * math.ceil(i / 3), at, 1e-9)
    end
    assert.is_false(b:broken())
  end))

  it("the same tasks pass it round after round", async_virtual(function()
    local n, rounds = 4, 5
    local b = corun.barrier(n)
    local rnd = helper.lcg(3)
    local got = {}
    local ts = {}
    for i = 1, n do
      ts[i] = corun.spawn(function()
        for r = 1, rounds do
          corun.sleep(rnd(4) * 0.25)
          local k = assert(b:wait())
          got[r] = got[r] or {}
          got[r][#got[r] + 1] = k
        end
      end)
    end
    for i = 1, n do ts[i]:join() end
    for r = 1, rounds do
      table.sort(got[r])
      assert.same({ 0, 1, 2, 3 }, got[r])
    end
  end))

  it("a wait that times out breaks it for the others and later waits",
  async_virtual(function()
    local b = corun.barrier(3)
    local t0 = corun.time()
    local other = corun.spawn(function()
      local r = both(b:wait())
      r.at = corun.time() - t0
      return r
    end)
    corun.sleep(0)
    assert.same(fail("timeout"), both(b:wait(1)))
    assert.near(1, corun.time() - t0, 1e-9)
    local r = other:join()
    assert.same(fail("broken"), { n = r.n, r[1], r[2] })
    assert.near(1, r.at, 1e-9)
    assert.is_true(b:broken())
    assert.equal(0, b:n_waiting())
    assert.same(fail("broken"), both(b:wait()))   -- at once
    assert.same(fail("broken"), both(b:wait(5)))
    assert.near(1, corun.time() - t0, 1e-9)
    b:reset()
    assert.is_false(b:broken())
    local ts = {}
    for i = 1, 2 do ts[i] = corun.spawn(function() return b:wait() end) end
    corun.sleep(0)
    assert.equal(2, b:wait())
    assert.equal(0, ts[1]:join())
    assert.equal(1, ts[2]:join())
  end))

  -- issue 16: as in asyncio, a cancelled waiter leaves the count; the
  -- barrier is not broken (it used to be).
  it("a cancelled waiter just leaves the count", async(function()
    local b = corun.barrier(3)
    local x = corun.spawn(function() return b:wait() end)
    local y = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    x:cancel()
    join_cancelled(x)
    assert.equal(1, b:n_waiting())
    assert.is_false(b:broken())
    local z = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.same(both(2), both(b:wait()))
    assert.same(both(0), both(y:join()))
    assert.same(both(1), both(z:join()))
  end))

  it("an arrival right after a waiter is cancelled does not pass with it",
  async(function()
    local b = corun.barrier(2)
    local x = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    x:cancel()                 -- x is woken but has not run yet
    local y = corun.spawn(function()   -- runs after x
      assert.is_true(x:done())
      assert.equal(1, b:n_waiting())   -- the main task, not x
      return b:wait()
    end)
    assert.same(both(0), both(b:wait()))   -- passes with y, not with x
    join_cancelled(x)
    assert.same(both(1), both(y:join()))
    assert.is_false(b:broken())
  end))

  it("an arrival in the turn a wait times out does not complete the round "
     .. "with it", async_virtual(function()
    local b = corun.barrier(3)
    -- c's timer is armed first, so at t=1 c runs before a sees its timeout
    local c = corun.spawn(function() corun.sleep(1) return b:wait() end)
    local a = corun.spawn(function() return b:wait(1) end)
    local d = corun.spawn(function() return b:wait() end)
    assert.same(fail("timeout"), both(a:join()))
    assert.same(fail("broken"), both(d:join()))
    assert.same(fail("broken"), both(c:join()))
    assert.is_true(b:broken())
  end))

  it("a waiter released and then cancelled keeps its index", async(function()
    local b = corun.barrier(2)
    local log = {}
    local x = corun.spawn(function()
      add(log, b:wait())
      add(log, outcome(corun.sleep, 10))
    end)
    corun.sleep(0)
    assert.equal(1, b:wait())
    x:cancel()
    x:join()
    assert.same({ 0, "cancelled" }, log)
    assert.is_false(b:broken())
  end))

  it("abort breaks it: waiters and later waits get nil, 'broken'",
  async(function()
    local b = corun.barrier(3)
    local ts = {}
    for i = 1, 2 do ts[i] = corun.spawn(function() return b:wait() end) end
    corun.sleep(0)
    b:abort()
    assert.is_true(b:broken())
    for i = 1, 2 do assert.same(fail("broken"), both(ts[i]:join())) end
    assert.same(fail("broken"), both(b:wait()))
    b:abort()
    assert.is_true(b:broken())
  end))

  it("reset wakes waiters with nil, 'broken' and makes it usable again",
  async(function()
    local b = corun.barrier(2)
    local t = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(1, b:n_waiting())
    b:reset()
    assert.is_false(b:broken())
    assert.equal(0, b:n_waiting())
    assert.same(fail("broken"), both(t:join()))
    local u = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(1, b:wait())
    assert.equal(0, u:join())
  end))

  it("rejects a count that is not an integer >= 1", function()
    for _, bad in ipairs { "0", "-1", "1.5", "'x'", "nil", "" } do
      local f = load("local corun = ... return corun.barrier(" .. bad .. ")")
      local e = catch(f, corun)
      assert(e ~= nil, "barrier(" .. bad .. ") did not raise")
      assert(tostring(e):find("barrier", 1, true), tostring(e))
    end
  end)

  it("wait needs a task unless it is the last arrival", function()
    local b = corun.barrier(2)
    raises("inside a task", b.wait, b)
    assert.equal(0, b:n_waiting())
    raises("timeout", b.wait, b, -1)
    assert.equal(0, corun.barrier(1):wait())
  end)

  it("has a tostring", function()
    assert.truthy(tostring(corun.barrier(2)):find("barrier", 1, true))
  end)
end)
