-- spec/context_spec.lua: corun.context_var (lua/corun/context.lua; the
-- inheritance at spawn is in src/task.c).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local raises = helper.raises
local async = cb.async

describe("corun.context_var", function()
  after_each(helper.check)

  it("gives the default until set, and set/reset/with work", async(function()
    local v = corun.context_var("dflt")
    assert.equal("dflt", v:get())
    assert.equal("other", corun.context_var():get("other"))
    local tok = v:set("a")
    assert.equal("a", v:get())
    local tok2 = v:set("b")
    v:reset(tok2)
    assert.equal("a", v:get())
    v:reset(tok)
    assert.equal("dflt", v:get())
    assert.equal("in", v:with("in", v.get, v))
    assert.equal("dflt", v:get())
    assert.has_error(function() v:with("x", error, "boom", 0) end, "boom")
    assert.equal("dflt", v:get())     -- reset on error too
    v:set(nil)                        -- an explicit nil hides the default
    assert.is_nil(v:get())
  end))

  it("a spawned task starts with a copy of its parent's context", async(function()
    local v = corun.context_var()
    v:set("parent")
    local gate = corun.event()
    local child = corun.spawn(function()
      local before = v:get()
      gate:wait()
      local after_parent_set = v:get()
      v:set("child")
      local grandchild = corun.spawn(v.get, v)
      return before, after_parent_set, v:get(), grandchild:join()
    end)
    corun.sleep(0)
    v:set("parent changed")           -- does not reach the child
    gate:set()
    assert.same({ "parent", "parent", "child", "child" }, { child:join() })
    assert.equal("parent changed", v:get())   -- the child's set stayed there
  end))

  it("tasks with no context stay without one", async(function()
    local v = corun.context_var(0)
    local t = corun.spawn(function() return v:get() end)
    assert.equal(0, t:join())
  end))

  it("callbacks run in the context they were scheduled from", async(function()
    local v = corun.context_var("none")
    local q = corun.queue()
    v:set("scheduler")
    corun.call_soon(function(x) q:put(x .. v:get()) end, "soon:")
    corun.call_later(0.01, function() q:put("later:" .. v:get()) end)
    v:set("changed after")
    assert.equal("soon:scheduler", q:get())
    assert.equal("later:scheduler", q:get())
    assert.equal("changed after", v:get())
  end))

  it("rejects a token of another var, a used token, a token of another task",
     async(function()
    local a, b = corun.context_var(), corun.context_var()
    local ta = a:set(1)
    raises("bad argument #1 to 'reset' (the token was made by another var)",
           b.reset, b, ta)
    a:reset(ta)
    raises("bad argument #1 to 'reset' (the token has already been used)",
           a.reset, a, ta)
    raises("bad argument #1 to 'reset' (token expected)", a.reset, a, {})
    local tok = a:set(2)
    local t = corun.spawn(function()
      a:set(3)
      return pcall(a.reset, a, tok)
    end)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.matches("made in another context", err)
    raises("bad argument #2 to 'with' (function expected, got number)",
           a.with, a, 1, 5)
  end))

  it("reaches corun.run's main task from the code outside", function()
    local v = corun.context_var()
    local tok = v:set("outside")
    assert.equal("outside", corun.run(function() return v:get() end))
    v:reset(tok)
    assert.is_nil(corun.run(function() return v:get() end))
  end)
end)
