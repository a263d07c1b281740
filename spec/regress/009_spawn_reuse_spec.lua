-- spec/regress/009_spawn_reuse_spec.lua: a task that returned normally
-- leaves its coroutine to the next task spawned (issue 9 section 5). The
-- next task must see nothing of the previous one: not its to-be-closed
-- variables (closed once, by their own task), its hook, its context, its
-- locals or its identity; and the finished task's handle keeps reporting
-- its own results, status, name and parent, never the new task's.

local corun = require "corun"
local cb = require "corun.busted"
local async = cb.async

-- Run fn as a task to its end; returns the task.
local function done(fn, ...)
  local t = corun.spawn(fn, ...)
  t:join()
  return t
end

describe("coroutine reuse (regress 009)", function()
  it("a finished task's handle keeps its own results", async(function()
    local cos = {}
    local first = {}
    for i = 1, 20 do
      first[i] = done(function(a, b)
        cos[coroutine.running()] = true
        return a, b, i
      end, "r" .. i, i * 10)
      first[i].name = "first-" .. i
    end
    local later = {}
    for i = 1, 20 do
      later[i] = done(function() return "later" .. i end)
    end
    for i = 1, 20 do
      local a, b, c = first[i]:result()
      assert.same({ "r" .. i, i * 10, i }, { a, b, c })
      assert.equal("done", first[i]:status())
      assert.equal("first-" .. i, first[i].name)
      assert.is_nil(first[i].parent)
      assert.equal("later" .. i, later[i]:result())
    end
    local n = 0
    for _ in pairs(cos) do n = n + 1 end
    assert.is_true(n >= 1)
  end))

  it("the next task is itself, with its own parent and name",
  async(function()
    local main = corun.current()
    local seen
    done(function() seen = corun.current() end)
    local t = corun.spawn(function()
      local me = corun.current()
      return me, me.name, me.parent
    end)
    local me, name, parent = t:join()
    assert.equal(t, me)
    assert.are_not.equal(seen, me)
    assert.equal("task-" .. t.id, name)
    assert.equal(main, parent)
  end))

  it("to-be-closed variables are closed once, by their own task",
  async(function()
    local closes = {}
    local function closer(tag)
      return setmetatable({}, { __close = function()
        closes[#closes + 1] = tag .. ":" .. tostring(corun.current().name)
      end })
    end
    local a = corun.spawn(function()
      local x <close> = closer("a")
      corun.sleep(0)
      return 1
    end)
    a.name = "A"
    a:join()
    local b = corun.spawn(function()
      corun.sleep(0)
      return 2
    end)
    b.name = "B"
    b:join()
    local c = corun.spawn(function()
      local y <close> = closer("c")
      error("fails", 0)
    end)
    c.name = "C"
    pcall(c.join, c)
    done(function() return 3 end)
    assert.same({ "a:A", "c:C" }, closes)
  end))

  it("a hook set by a task does not run in the next one", async(function()
    local calls = 0
    done(function()
      debug.sethook(function() calls = calls + 1 end, "l")
      local x = 1
      x = x + 1
      return x
    end)
    local before = calls
    assert.is_true(before > 0)
    local t = corun.spawn(function()
      assert.is_nil(debug.gethook())
      local y = 0
      for i = 1, 10 do y = y + i end
      return y
    end)
    assert.equal(55, t:join())
    assert.equal(before, calls)
    for _ = 1, 5 do done(function() return debug.gethook() end) end
    assert.equal(before, calls)
  end))

  it("the context of a task does not leak into the next", async(function()
    local var = corun.context_var("default")
    done(function() var:set("from-first") return var:get() end)
    local t = corun.spawn(function() return var:get() end)
    assert.equal("default", t:join())
    assert.equal("default", var:get())
  end))

  it("no local of a previous task is visible", async(function()
    local secret = {}
    done(function()
      local a, b, c, d = secret, secret, secret, secret
      local function use() return a, b, c, d end
      use()
      return 1
    end)
    local found = false
    done(function()
      for lvl = 1, 3 do
        for i = 1, 40 do
          local ok, name, v = pcall(debug.getlocal, lvl, i)
          if ok and name ~= nil and v == secret then found = true end
        end
      end
    end)
    assert.is_false(found)
  end))

  it("a cancelled or failed task's coroutine is not kept, and the tasks "
     .. "after it run normally", async(function()
    local c = corun.spawn(function() corun.sleep(10) end)
    corun.sleep(0)
    c:cancel()
    pcall(c.join, c)
    local f = corun.spawn(function() error("x", 0) end)
    pcall(f.join, f)
    local results = {}
    for i = 1, 300 do  -- more than the pool keeps
      results[i] = corun.spawn(function() corun.sleep(0) return i end)
    end
    local sum = 0
    for i, r in ipairs(corun.gather(results)) do sum = sum + r end
    assert.equal(300 * 301 // 2, sum)
    assert.equal("cancelled", c:status())
    assert.equal("failed", f:status())
  end))

  it("a traceback shows only the new task's frames", async(function()
    local function first_task_frame() return 1 end
    done(first_task_frame)
    local t = corun.spawn(function()
      return debug.traceback("tb", 1)
    end)
    local tb = t:join()
    assert.is_nil(tb:find("first_task_frame", 1, true), tb)
  end))
end)
