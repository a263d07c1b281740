-- spec/task_spec.lua: tasks, cancellation and task errors (src/task.c).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local expect, closer, catch = helper.expect, helper.closer, helper.catch
local async, async_virtual = corun.async, cb.async_virtual

describe("corun.spawn", function()
  after_each(helper.check)

  it("returns a pending task that first runs at the next turn",
  async(function()
    local ran = false
    local t = corun.spawn(function() ran = true end)
    assert.equal("pending", t:status())
    assert.is_false(t:done())
    assert.is_false(ran)
    corun.sleep(0)
    assert.is_true(ran)
    assert.equal("done", t:status())
    assert.is_true(t:done())
  end))

  it("passes arguments and join returns every result", async(function()
    local t = corun.spawn(function(...) return ... end, 1, nil, "three", nil)
    local r = table.pack(t:join())
    assert.equal(4, r.n)
    assert.same({ 1, nil, "three", nil, n = 4 }, r)
  end))

  it("works outside a run: the task runs in the next run", function()
    local t = corun.spawn(function(x) return x * 2 end, 21)
    assert.equal("pending", t:status())
    assert.equal(42, corun.run(function() return t:join() end))
    assert.equal("done", t:status())
  end)

  it("rejects a non-function, naming spawn", function()
    for _, bad in ipairs { "nil", "'x'", "42", "{}" } do
      local f = load("local corun = ... return corun.spawn(" .. bad .. ")")
      local e = catch(f, corun)
      assert.truthy(tostring(e):find("spawn", 1, true), tostring(e))
    end
    assert.same({}, corun.tasks())
  end)
end)

describe("corun.sleep", function()
  after_each(helper.check)

  it("suspends for at least the delay", async_virtual(function()
    local t0 = corun.time()
    corun.sleep(2.5)
    assert.is_true(corun.time() - t0 >= 2.5)
  end))

  it("rejects bad input, naming sleep", async(function()
    for _, bad in ipairs { "-1", "'x'", "nil", "{}" } do
      local f = load("local corun = ... return corun.sleep(" .. bad .. ")")
      local e = catch(f, corun)
      assert.truthy(tostring(e):find("sleep", 1, true), tostring(e))
    end
  end))
end)

describe("corun.current", function()
  after_each(helper.check)

  it("is the running task inside a task and nil outside", function()
    assert.is_nil(corun.current())
    corun.run(function()
      local main = corun.current()
      assert.equal("main", main.name)
      local t
      t = corun.spawn(function() return corun.current() == t end)
      assert.is_true(t:join())
      assert.equal(main, corun.current())
      local in_cb
      corun.call_soon(function() in_cb = corun.current() end)
      corun.sleep(0)
      assert.is_nil(in_cb)
    end)
    assert.is_nil(corun.current())
  end)
end)

describe("task:join / task:result", function()
  after_each(helper.check)

  it("wakes every joiner with the results", async(function()
    local t = corun.spawn(function() corun.sleep(0.01) return "r" end)
    local joiners = {}
    for i = 1, 3 do
      joiners[i] = corun.spawn(function() return t:join() end)
    end
    for i = 1, 3 do assert.equal("r", joiners[i]:join()) end
    assert.equal("r", t:join())
    assert.equal("r", t:result())
  end))

  it("join(timeout) returns nil, 'timeout' and leaves the task running",
  async_virtual(function()
    local t = corun.spawn(function() corun.sleep(10) return "late" end)
    local t0 = corun.time()
    local v, why = t:join(1)
    assert.is_nil(v)
    assert.equal("timeout", why)
    assert.is_true(corun.time() - t0 >= 1)
    assert.is_true(corun.time() - t0 < 2)
    assert.is_false(t:done())
    assert.equal("late", t:join(100))
  end))

  it("result() raises 'not finished' on an unfinished task", async(function()
    local t = corun.spawn(function() corun.sleep(0) end)
    local e = catch(t.result, t)
    assert.truthy(tostring(e):find("not finished", 1, true))
    t:join()
    assert.is_nil(catch(t.result, t))
  end))

  it("join and result raise Cancelled for a cancelled task", async(function()
    local t = corun.spawn(corun.sleep, 100)
    corun.sleep(0)
    t:cancel("stop it")
    local e = catch(t.join, t)
    assert.is_true(corun.is_cancelled(e))
    e = catch(t.result, t)
    assert.is_true(corun.is_cancelled(e))
    assert.equal("stop it", e.msg)
  end))
end)

describe("task:status", function()
  after_each(helper.check)

  it("goes pending, running, done/failed/cancelled", async(function()
    local seen
    local t = corun.spawn(function()
      seen = corun.current():status()
      corun.sleep(0.01)
    end)
    assert.equal("pending", t:status())
    corun.sleep(0)
    assert.equal("running", seen)
    assert.equal("pending", t:status()) -- parked but not running
    t:join()
    assert.equal("done", t:status())

    local f = corun.spawn(error, "x")
    pcall(f.join, f)
    assert.equal("failed", f:status())
    assert.is_true(f:done())

    local c = corun.spawn(corun.sleep, 10)
    corun.sleep(0)
    c:cancel()
    pcall(c.join, c)
    assert.equal("cancelled", c:status())
    assert.is_true(c:done())
  end))
end)

describe("task:cancel", function()
  after_each(helper.check)

  local function blocked_in(kind, setup)
    it("wakes a task parked in " .. kind .. " at once; cleanup runs",
    async_virtual(function()
      local log = {}
      local suspend = setup()
      local t = corun.spawn(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        local ok, e = pcall(suspend)
        log[#log + 1] = ok and "returned"
                        or corun.is_cancelled(e) and "cancelled: " .. e.msg
                        or tostring(e)
        if not ok then error(e, 0) end
      end)
      corun.sleep(0)
      assert.equal("pending", t:status())
      local t0 = corun.time()
      assert.is_true(t:cancel("bye"))
      local e = catch(t.join, t)
      assert.is_true(corun.is_cancelled(e))
      assert.equal("bye", e.msg)
      assert.truthy(tostring(e):match("^cancelled"))
      assert.equal(t0, corun.time())
      assert.same({ "cancelled: bye", "closed" }, log)
      assert.equal("cancelled", t:status())
      assert.is_false(t:cancel())
    end))
  end

  blocked_in("sleep", function()
    return function() corun.sleep(100) end
  end)
  blocked_in("join", function()
    local other = corun.spawn(corun.sleep, 100)
    return function() other:join() end
  end)
  blocked_in("queue get", function()
    local q = corun.queue()
    return function() q:get() end
  end)
  blocked_in("queue put", function()
    local q = corun.queue(1)
    q:put_nowait("a")
    return function() q:put("b") end
  end)
  blocked_in("queue join", function()
    local q = corun.queue()
    q:put_nowait("a")
    return function() q:join() end
  end)

  it("a task cancelled while parked in put leaves the queue unchanged",
  async(function()
    local q = corun.queue(1)
    q:put("a")
    local t = corun.spawn(q.put, q, "b")
    corun.sleep(0)
    t:cancel()
    pcall(t.join, t)
    assert.equal(1, q:size())
    assert.equal("a", q:get())
    assert.same({ nil, "empty" }, { q:get_nowait() })
  end))

  it("a getter cancelled while parked does not take a later item",
  async(function()
    local q = corun.queue()
    local t = corun.spawn(q.get, q)
    corun.sleep(0)
    t:cancel()
    pcall(t.join, t)
    q:put("x")
    assert.equal("x", q:get_nowait())
  end))

  it("before the first run: the body never runs, status cancelled",
  async(function()
    local t = corun.spawn(expect(nil, 0))
    assert.is_true(t:cancel())
    corun.sleep(0)
    assert.equal("cancelled", t:status())
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
  end))

  it("returns false for a finished task", async(function()
    local t = corun.spawn(function() return 1 end)
    t:join()
    assert.is_false(t:cancel())
    assert.equal("done", t:status())
    assert.equal(1, t:result())
  end))

  it("a running task is cancelled at its next suspension", async(function()
    local log = {}
    local t = corun.spawn(function()
      assert.is_true(corun.current():cancel("self"))
      log[#log + 1] = "still running"
      local ok, e = pcall(corun.sleep, 1)
      log[#log + 1] = corun.is_cancelled(e) and e.msg or "not cancelled"
      error(e, 0)
    end)
    local e = catch(t.join, t)
    assert.is_true(corun.is_cancelled(e))
    assert.same({ "still running", "self" }, log)
  end))

  it("a task that swallows Cancelled ends done", async(function()
    local t = corun.spawn(function()
      local ok, e = pcall(corun.sleep, 100)
      assert(not ok and corun.is_cancelled(e))
      corun.sleep(0) -- still usable after the cancellation was delivered
      return "swallowed"
    end)
    corun.sleep(0)
    assert.is_true(t:cancel())
    assert.equal("swallowed", t:join())
    assert.equal("done", t:status())
  end))
end)

describe("to-be-closed variables", function()
  after_each(helper.check)

  -- A body whose <close> handler logs whether it runs in the task (guards
  -- such as lock:hold() need that) and, when 'suspend', sleeps (Lua 5.4
  -- lets __close yield). 'how' ends the body: "return", "error" or "park"
  -- (park, to be cancelled).
  local function guarded(log, suspend, how)
    return function()
      local me = corun.current()
      local _ <close> = closer(function()
        log[#log + 1] = corun.current() == me and "in task" or "outside"
        if suspend then
          corun.sleep(0)
          log[#log + 1] = "suspended"
        end
      end)
      corun.sleep(0)
      if how == "error" then error("fail with guard") end
      if how == "park" then corun.sleep(100) end
      return "returned"
    end
  end

  local function finish(how, t)
    if how == "park" then t:cancel() end
    local e, r = catch(t.join, t)
    if how == "return" then
      assert.is_nil(e)
      assert.equal("returned", r)
    elseif how == "error" then
      assert.truthy(tostring(e):match("^[^\n]*fail with guard"), tostring(e))
    else
      assert.is_true(corun.is_cancelled(e), tostring(e))
    end
  end

  for _, how in ipairs { "return", "error", "park" } do
    local what = how == "park" and "cancel" or how
    it("close in the task on " .. what, async(function()
      local log = {}
      local t = corun.spawn(guarded(log, false, how))
      corun.sleep(0)
      finish(how, t)
      assert.same({ "in task" }, log)
    end))
  end

  it("close can suspend on a normal return", async(function()
    local log = {}
    local t = corun.spawn(guarded(log, true, "return"))
    corun.sleep(0)
    finish("return", t)
    assert.same({ "in task", "suspended" }, log)
  end))

  -- Lua closes the variables of a coroutine that died in error without
  -- letting the handlers yield: suspending there is a clear error (which,
  -- as in Lua, replaces the original one). Cleanup that must suspend goes
  -- in a pcall-protected block, whose error path may yield.
  for _, how in ipairs { "error", "park" } do
    local what = how == "park" and "cancel" or how
    it("close cannot suspend on " .. what .. ": a clear error", async(
    function()
      local log = {}
      local t = corun.spawn(guarded(log, true, how))
      corun.sleep(0)
      if how == "park" then t:cancel() end
      local e = catch(t.join, t)
      assert.truthy(tostring(e):find("cannot suspend here", 1, true),
                    tostring(e))
      assert.same({ "in task" }, log)
      assert.equal("failed", t:status())
    end))
  end

  it("cleanup in a pcall-protected block can suspend after a cancel",
  async(function()
    local log = {}
    local t = corun.spawn(function()
      local ok, e = pcall(function()
        local _ <close> = closer(function()
          corun.sleep(0)
          log[#log + 1] = "closed after suspending"
        end)
        corun.sleep(100)
      end)
      log[#log + 1] = corun.is_cancelled(e) and "cancelled" or tostring(e)
      error(e, 0)
    end)
    corun.sleep(0)
    t:cancel()
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
    assert.same({ "closed after suspending", "cancelled" }, log)
    assert.equal("cancelled", t:status())
  end))
end)

describe("task:on_done", function()
  after_each(helper.check)

  it("calls cb(task) after the task finishes, in registration order",
  async(function()
    local log = {}
    local t = corun.spawn(corun.sleep, 0.01)
    t:on_done(expect(function(x) log[#log + 1] = { 1, x == t } end))
    t:on_done(expect(function(x) log[#log + 1] = { 2, x:done() } end))
    t:join()
    corun.sleep(0)
    assert.same({ { 1, true }, { 2, true } }, log)
  end))

  it("is scheduled (not called synchronously) for a finished task",
  async(function()
    local t = corun.spawn(function() end)
    t:join()
    local called = false
    t:on_done(expect(function(x) called = x end))
    assert.is_false(called)
    corun.sleep(0)
    assert.equal(t, called)
  end))

  it("runs for failed and cancelled tasks too", async(function()
    local f = corun.spawn(error, "x")
    local c = corun.spawn(corun.sleep, 10)
    f:on_done(expect())
    c:on_done(expect())
    corun.sleep(0)
    c:cancel()
    pcall(f.join, f)
    pcall(c.join, c)
    corun.sleep(0)
  end))
end)

describe("task names and introspection", function()
  after_each(helper.check)

  it("defaults to task-N, distinct, and is settable", async(function()
    local a, b = corun.spawn(function() end), corun.spawn(function() end)
    assert.truthy(a.name:match("^task%-%d+$"))
    assert.truthy(b.name:match("^task%-%d+$"))
    assert.not_equal(a.name, b.name)
    a.name = "renamed"
    assert.equal("renamed", a.name)
    a:join()
    b:join()
  end))

  it("tasks() lists the live tasks", async(function()
    local t = corun.spawn(corun.sleep, 1)
    local live = corun.tasks()
    local has_main, has_t = false, false
    for _, x in ipairs(live) do
      if x == corun.current() then has_main = true end
      if x == t then has_t = true end
    end
    assert.is_true(has_main and has_t)
    assert.equal(2, #live)
    t:join()
    assert.equal(1, #corun.tasks())
  end))

  it("dump() writes each live task's name, status and stack",
  async(function()
    local function parked_here() corun.sleep(10) end
    local t = corun.spawn(parked_here)
    t.name = "the-parked-one"
    corun.sleep(0)
    local f = io.tmpfile()
    corun.dump(f)
    f:seek("set")
    local text = f:read("a")
    f:close()
    assert.truthy(text:find("the-parked-one", 1, true), text)
    assert.truthy(text:find("main", 1, true), text)
    assert.truthy(text:find("pending", 1, true), text)
    assert.truthy(text:find("running", 1, true), text)
    assert.truthy(text:find("task_spec.lua", 1, true), text)
    t:cancel()
  end))
end)

describe("task errors", function()
  after_each(helper.check)

  local ERR_LINE
  local function failing_function()
    ERR_LINE = debug.getinfo(1, "l").currentline error("kaboom")
  end

  it("join re-raises the message with the task's traceback", async(function()
    local t = corun.spawn(function() failing_function() end)
    local e = catch(t.join, t)
    assert.is_string(e)
    assert.truthy(e:match("^[^\n]*kaboom"), e)
    assert.truthy(e:find("stack traceback:", 1, true), e)
    assert.truthy(e:find("failing_function", 1, true), e)
    assert.truthy(e:find("task_spec.lua:" .. ERR_LINE .. ": kaboom", 1, true),
                  e)
    assert.equal("failed", t:status())
    local e2 = catch(t.result, t)
    assert.truthy(tostring(e2):find("stack traceback:", 1, true))
  end))

  it("keeps the identity of a non-string error", async(function()
    local obj = setmetatable({}, { __tostring = function() return "obj" end })
    local t = corun.spawn(function() corun.sleep(0) error(obj) end)
    assert.equal(obj, catch(t.join, t))
    assert.equal(obj, catch(t.result, t))
    local n = corun.spawn(error, 42)
    local e = catch(n.join, n)
    assert.equal("number", type(e))
    assert.equal(42, e)
  end))
end)

describe("suspending outside a task", function()
  after_each(helper.check)

  local function raises_inside_a_task(f, ...)
    local e = catch(f, ...)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
  end

  it("raises outside any run", function()
    raises_inside_a_task(corun.sleep, 0)
    raises_inside_a_task(function() corun.queue():get() end)
    local t = corun.spawn(function() end)
    raises_inside_a_task(t.join, t)
    t:cancel()
    corun.run(function() end)
  end)

  it("raises from a plain callback", function()
    local e
    corun.run(function()
      corun.call_soon(expect(function() e = catch(corun.sleep, 0) end))
      corun.sleep(0.01)
    end)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
  end)

  it("raises from a foreign coroutine inside a task", async(function()
    local wrapped = coroutine.wrap(function()
      corun.sleep(0.01)
      return "resumed"
    end)
    raises_inside_a_task(wrapped)
    local co = coroutine.create(function() corun.queue():get() end)
    local ok, e = coroutine.resume(co)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("inside a task", 1, true), tostring(e))
    corun.sleep(0.01) -- the task itself still works
    assert.equal("running", corun.current():status())
  end))
end)
