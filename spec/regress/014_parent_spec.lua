-- spec/regress/014_parent_spec.lua: task.parent, corun.tasks({tree = true})
-- and corun.dump's tree (issue 14). A task's parent is the task that
-- spawned it (nil for the main task and for tasks spawned from callbacks);
-- a live child still reports a parent that has finished; a finished task
-- forgets its parent, so that a task respawning itself keeps no chain of
-- ancestors alive. The parent shares the task's aux value with its name,
-- done callbacks and context: all of them must keep working together.

local corun = require "corun"
local cb = require "corun.busted"
local async = cb.async

local function dump_text()
  local f = io.tmpfile()
  corun.dump(f)
  f:seek("set")
  local text = f:read("a")
  f:close()
  return text
end

describe("task.parent (regress 014)", function()
  it("is the task that spawned it, at every level", async(function()
    local main = corun.current()
    local gc
    local c = corun.spawn(function()
      gc = corun.spawn(corun.sleep, 0.01)
      return gc:join()
    end)
    corun.sleep(0)
    assert.equal(main, c.parent)
    assert.equal(c, gc.parent)
    assert.equal(c, gc.parent)  -- reading it changes nothing
    c:join()
  end))

  it("is nil for the main task and for tasks spawned by callbacks",
  async(function()
    assert.is_nil(corun.current().parent)
    local t
    corun.call_soon(function() t = corun.spawn(function() end) end)
    corun.sleep(0)
    assert.is_nil(t.parent)
    t:join()
    assert.is_nil(t.parent)
  end))

  it("still reports a parent that has finished", async(function()
    local child
    local p = corun.spawn(function()
      child = corun.spawn(corun.sleep, 0.02)
      return "p done"
    end)
    assert.equal("p done", p:join())
    assert.equal("done", p:status())
    assert.equal(p, child.parent)
    assert.equal("p done", child.parent:result())
    child:join()
  end))

  it("is nil once the task has finished", async(function()
    local t = corun.spawn(function() return 1 end)
    assert.equal(corun.current(), t.parent)
    t:join()
    assert.is_nil(t.parent)
    assert.equal(1, t:result())
  end))

  it("keeps working beside a name, done callbacks, a context and a cancel "
     .. "message", async(function()
    local var = corun.context_var("none")
    var:set("ctx-1")
    local seen = {}
    local main = corun.current()
    local t = corun.spawn(function()
      corun.sleep(0.01)
      return var:get()
    end)
    assert.equal(main, t.parent)
    t.name = "worker"
    t:on_done(function(x) seen[#seen + 1] = "a:" .. x.name end)
    t:on_done(function(x) seen[#seen + 1] = "b:" .. x:status() end)
    assert.equal(main, t.parent)
    assert.equal("worker", t.name)
    assert.equal("ctx-1", t:join())
    corun.sleep(0)
    assert.same({ "a:worker", "b:done" }, seen)
    -- a named child of a task with a context, then cancelled with a message
    local u = corun.spawn(corun.sleep, 1)
    u.name = "sleeper"
    assert.equal(main, u.parent)
    corun.sleep(0)
    u:cancel("stop")
    local ok, e = pcall(u.join, u)
    assert.is_false(ok)
    assert.equal("stop", e.msg)
    assert.equal("sleeper", u.name)
    assert.is_nil(u.parent)
  end))

  it("a single done callback that is a queue (as_completed) is not taken "
     .. "for the parent", async(function()
    local a = corun.spawn(function() corun.sleep(0.01) return "a" end)
    local b = corun.spawn(function() return "b" end)
    local got = {}
    for t in corun.as_completed({ a, b }) do got[#got + 1] = t:result() end
    assert.same({ "b", "a" }, got)
    local done = corun.wait({ corun.spawn(function() return 3 end) })
    assert.equal(1, #done)
  end))

  it("a task respawning itself keeps no chain of ancestors alive",
  async(function()
    local alive = setmetatable({}, { __mode = "k" })
    local N = 2000
    local last = corun.event()
    local function gen(i)
      alive[corun.current()] = true
      if i < N then corun.spawn(gen, i + 1) else last:set() end
    end
    corun.spawn(gen, 1)
    last:wait()
    corun.sleep(0)
    collectgarbage()
    collectgarbage()
    local n = 0
    for _ in pairs(alive) do n = n + 1 end
    assert.is_true(n <= 2, "tasks still alive: " .. n)
  end))
end)

describe("corun.tasks({tree = true}) (regress 014)", function()
  it("returns the roots, each task under the task that spawned it",
  async(function()
    local main = corun.current()
    local a, b, a1, a2
    a = corun.spawn(function()
      a1 = corun.spawn(corun.sleep, 1)
      a2 = corun.spawn(corun.sleep, 1)
      corun.sleep(1)
    end)
    b = corun.spawn(corun.sleep, 1)
    corun.sleep(0)
    local roots = corun.tasks({ tree = true })
    assert.equal(1, #roots)
    assert.equal(main, roots[1].task)
    local kids = roots[1].children
    assert.equal(2, #kids)
    assert.equal(a, kids[1].task)
    assert.equal(b, kids[2].task)
    assert.equal(2, #kids[1].children)
    assert.equal(a1, kids[1].children[1].task)
    assert.equal(a2, kids[1].children[2].task)
    assert.same({}, kids[1].children[1].children)
    assert.same({}, kids[2].children)
    -- a child whose parent has finished is a root of its own
    a:cancel()
    pcall(a.join, a)
    roots = corun.tasks({ tree = true })
    assert.equal(3, #roots)
    assert.equal(main, roots[1].task)
    assert.equal(a1, roots[2].task)
    assert.equal(a2, roots[3].task)
    assert.equal(a, roots[2].task.parent)
    -- without the option: the flat list, as before
    assert.equal(4, #corun.tasks())
    assert.equal(4, #corun.tasks({}))
    for _, t in ipairs({ a1, a2, b }) do t:cancel() end
    corun.sleep(0)
  end))

  it("rejects what is not a table", async(function()
    local ok, e = pcall(corun.tasks, 5)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("bad argument #1 to 'tasks'", 1, true), e)
  end))
end)

describe("corun.dump's tree (regress 014)", function()
  it("indents each task under the task that spawned it", async(function()
    local p = corun.spawn(function()
      local c = corun.spawn(corun.sleep, 1)
      c.name = "the-child"
      corun.sleep(1)
    end)
    p.name = "the-parent"
    local other = corun.spawn(corun.sleep, 1)
    other.name = "the-other"
    corun.sleep(0)
    corun.sleep(0)  -- the child starts
    local text = dump_text()
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    local at = {}
    for i, l in ipairs(lines) do
      local ind, name = l:match("^( *)corun%.task '([^']+)'")
      if name then at[name] = { i = i, indent = #ind } end
    end
    assert.equal(0, at.main.indent, text)
    assert.equal(2, at["the-parent"].indent, text)
    assert.equal(4, at["the-child"].indent, text)
    assert.equal(2, at["the-other"].indent, text)
    assert.is_true(at.main.i < at["the-parent"].i, text)
    assert.is_true(at["the-parent"].i < at["the-child"].i, text)
    assert.is_true(at["the-child"].i < at["the-other"].i, text)
    -- the stack lines of a child are indented with it
    local nxt = lines[at["the-child"].i + 1]
    assert.truthy(nxt:match("^    stack traceback:"), text)
    -- the parent finishes: its child is a root that says who spawned it
    p:cancel()
    pcall(p.join, p)
    text = dump_text()
    assert.truthy(text:find("\ncorun.task 'the-child' (pending), spawned by "
      .. "corun.task 'the-parent' (cancelled)\n", 1, true), text)
    for _, t in ipairs(corun.tasks()) do
      if t ~= corun.current() then t:cancel() end
    end
    corun.sleep(0)
  end))
end)
