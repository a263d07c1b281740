-- spec/regress/009_callable_spec.lua: a callable table (a table whose
-- metatable has __call) works everywhere the API takes a function
-- (issue 9 section 2, issue 10 #8). Before the fix, call_soon passed the
-- __call metafield as an extra trailing argument and task:on_done accepted
-- a callable table but never called it.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async, async_virtual = cb.async, cb.async_virtual

-- A callable table that calls f with the arguments after self and records
-- how many it got.
local function C(f)
  return setmetatable({}, { __call = function(_, ...)
    return f(...)
  end })
end

describe("callable tables", function()
  after_each(helper.check)

  it("corun.run runs one as the main task", function()
    assert.equal(7, corun.run(C(function(a) return a + 1 end), 6))
    assert.equal(8, corun.run({ clock = "virtual" }, C(function(a) return a end), 8))
  end)

  it("spawn", async(function()
    local t = corun.spawn(C(function(a, b) return a + b, select("#", a, b) end), 1, 2)
    assert.same({ 3, 2 }, { t:join() })
  end))

  it("call_soon passes exactly the arguments given", async(function()
    local got
    corun.call_soon(C(function(...) got = table.pack(...) end), "a")
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ n = 1, "a" }, got)
    corun.call_soon(C(function(...) got = table.pack(...) end))
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ n = 0 }, got)
  end))

  it("call_later and call_at pass exactly the arguments given",
  async_virtual(function()
    local a, b
    corun.call_later(1, C(function(...) a = table.pack(...) end), 1, 2)
    corun.call_at(corun.time() + 2, C(function(...) b = table.pack(...) end), "x")
    corun.sleep(3)
    assert.same({ n = 2, 1, 2 }, a)
    assert.same({ n = 1, "x" }, b)
  end))

  it("task:on_done, before and after the task finished", async(function()
    local seen = {}
    local t = corun.spawn(function() corun.sleep(0) return 5 end)
    t:on_done(C(function(tt) seen[#seen + 1] = tt:result() end))
    t:on_done(C(function(tt) seen[#seen + 1] = tt:result() + 1 end))
    t:join()
    corun.sleep(0)
    t:on_done(C(function(tt) seen[#seen + 1] = tt:result() + 2 end))
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ 5, 6, 7 }, seen)
    -- a task with exactly one callable-table callback
    local one
    local u = corun.spawn(function() return 9 end)
    u:on_done(C(function(tt) one = tt:result() end))
    u:join()
    corun.sleep(0)
    assert.equal(9, one)
  end))

  it("priority_queue's less", async(function()
    local q = corun.priority_queue(0, C(function(a, b) return a > b end))
    for _, v in ipairs { 3, 1, 4, 1, 5, 9, 2, 6 } do q:put(v) end
    local out = {}
    while not q:empty() do out[#out + 1] = q:get() end
    assert.same({ 9, 6, 5, 4, 3, 2, 1, 1 }, out)
  end))

  it("condition:wait_for's predicate", async(function()
    local c, ready = corun.condition(), false
    corun.spawn(function()
      c:acquire()
      ready = true
      c:notify_all()
      c:release()
    end)
    c:acquire()
    assert.equal(true, c:wait_for(C(function() return ready end), 5))
    c:release()
  end))

  it("lock:with, semaphore:with, condition:with", async(function()
    local f = C(function(a, b) return a .. b end)
    assert.equal("ab", corun.lock():with(f, "a", "b"))
    assert.equal("cd", corun.semaphore(1):with(f, "c", "d"))
    assert.equal("ef", corun.condition():with(f, "e", "f"))
  end))

  it("corun.timeout", async(function()
    assert.equal(3, corun.timeout(5, C(function(a) return a end), 3))
  end))

  it("gather, as_completed and group", async(function()
    assert.same({ 1, 2 }, corun.gather(C(function() return 1 end),
                                       C(function() return 2 end)))
    local n = 0
    for t in corun.as_completed({ C(function() return 1 end) }) do
      n = n + t:result()
    end
    assert.equal(1, n)
    local r = corun.group(C(function(g)
      local t = g:spawn(C(function(x) return x * 3 end), 4)
      return t
    end))
    assert.equal(12, r:result())
  end))

  it("signal.on", async(function()
    local h = corun.signal.on("usr1", C(function() end))
    h:cancel()
  end))

  it("tcp.listen's handler", async(function()
    local got
    local s = assert(corun.tcp.listen("127.0.0.1", 0, C(function(st)
      got = st:read("l")
    end)))
    local c = assert(corun.tcp.connect("127.0.0.1", s.port))
    c:write("hi\n")
    c:close()
    for _ = 1, 200 do
      if got then break end
      corun.sleep(0.01)
    end
    s:close()
    assert.equal("hi", got)
  end))

  it("thread and pool submit refuse one with a clear error", async(function()
    local ok, err = pcall(corun.thread, C(function() end))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("function expected", 1, true), err)
    local p = corun.pool(1)
    ok, err = pcall(p.submit, p, C(function() end))
    p:close()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("function expected", 1, true), err)
  end))

  it("a non-callable value is refused, the stack left balanced",
  async(function()
    local notc = setmetatable({}, { __index = {} })
    for _, f in ipairs {
      function() corun.spawn(notc) end,
      function() corun.call_soon(notc) end,
      function() corun.call_later(1, notc) end,
      function() corun.priority_queue(0, notc) end,
      function() corun.spawn(function() end):on_done(notc) end,
    } do
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.truthy(err:find("function expected, got table", 1, true), err)
    end
    corun.sleep(0)
  end))
end)
