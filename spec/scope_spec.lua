-- spec/scope_spec.lua: cancel scopes and shields (lua/corun/scope.lua on
-- core.scope_cancel / core.shield / core.uncancel in src/task.c):
-- corun.move_on_after, move_on_at, deadline, shield, and corun.timeout
-- among them.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch, raises = helper.catch, helper.raises
local async_virtual = cb.async_virtual

local function pack(...) return table.pack(...) end

describe("corun.move_on_after / move_on_at", function()
  after_each(helper.check)

  it("returns true and the results when the body finishes", async_virtual(function()
    assert.same(pack(true, 1, nil, 3),
                pack(corun.move_on_after(1, function(a) corun.sleep(0.5)
                  return a, nil, 3 end, 1)))
  end))

  it("returns false when time runs out, at the deadline", async_virtual(function()
    local t0 = corun.time()
    local after = false
    assert.same(pack(false), pack(corun.move_on_after(2, function()
      corun.sleep(10)
      after = true
    end)))
    assert.equal(t0 + 2, corun.time())
    assert.is_false(after)
    assert.same(pack(false), pack(corun.move_on_at(corun.time() + 1,
                                                   corun.sleep, 5)))
    -- the task is not left cancelled: it can go on waiting
    corun.sleep(1)
    assert.equal(t0 + 4, corun.time())
  end))

  it("nests: the earlier deadline wins, whichever scope it is", async_virtual(function()
    local log = {}
    local t0 = corun.time()
    local ok = corun.move_on_after(5, function()
      log[#log + 1] = corun.move_on_after(1, corun.sleep, 10)  -- inner: 1 s
      log[#log + 1] = corun.time() - t0
      corun.move_on_after(10, corun.sleep, 100)  -- cannot extend the outer
      log[#log + 1] = "not reached"
    end)
    assert.is_false(ok)
    assert.same({ false, 1 }, log)
    assert.equal(t0 + 5, corun.time())
  end))

  it("lets other errors through, and a task cancel is not swallowed",
     async_virtual(function()
    raises("boom", corun.move_on_after, 1, function() error("boom") end)
    local t = corun.spawn(corun.move_on_after, 10, corun.sleep, 20)
    corun.sleep(1)
    t:cancel("stop")
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
  end))

  it("tells the body its deadline", async_virtual(function()
    assert.is_nil(corun.deadline())
    local t0 = corun.time()
    corun.move_on_after(5, function()
      assert.equal(t0 + 5, corun.deadline())
      corun.move_on_after(2, function() assert.equal(t0 + 2, corun.deadline()) end)
      corun.move_on_after(9, function() assert.equal(t0 + 5, corun.deadline()) end)
      corun.shield(function() assert.is_nil(corun.deadline()) end)
    end)
    assert.is_nil(corun.deadline())
  end))

  it("rejects bad input", async_virtual(function()
    raises("bad argument #1 to 'move_on_after' (seconds must be a number >= 0)",
           corun.move_on_after, -1, print)
    raises("bad argument #1 to 'move_on_after'", corun.move_on_after, 0 / 0, print)
    raises("bad argument #2 to 'move_on_after' (function expected, got number)",
           corun.move_on_after, 1, 5)
    raises("bad argument #1 to 'move_on_at' (time must be a number)",
           corun.move_on_at, "soon", print)
    raises("bad argument #1 to 'shield' (function expected, got nil)", corun.shield)
    raises("bad argument #2 to 'timeout'", corun.timeout, 1, {})
  end))

  it("accepts a callable table", async_virtual(function()
    local f = setmetatable({}, { __call = function(_, x) return x * 2 end })
    assert.same(pack(true, 8), pack(corun.move_on_after(1, f, 4)))
    assert.equal(8, corun.shield(f, 4))
  end))

  it("needs a task", function()
    raises("move_on_after: must be called from inside a task",
           corun.move_on_after, 1, print)
    raises("shield: must be called from inside a task", corun.shield, print)
  end)
end)

describe("corun.shield", function()
  after_each(helper.check)

  it("runs the body to its end and raises the cancel afterwards",
     async_virtual(function()
    local log = {}
    local t = corun.spawn(function()
      corun.shield(function()
        corun.sleep(5)            -- cancelled at 1 s: goes on sleeping
        log[#log + 1] = "shield done at " .. corun.time()
      end)
      log[#log + 1] = "not reached"
    end)
    local t0 = corun.time()
    corun.sleep(1)
    assert.is_true(t:cancel("stop"))
    local e = catch(t.join, t)
    assert.is_true(corun.is_cancelled(e))
    assert.equal("cancelled: stop", tostring(e))
    assert.same({ "shield done at " .. (t0 + 5) }, log)
  end))

  it("lets cleanup suspend after a cancel", async_virtual(function()
    local log = {}
    local q = corun.queue()
    local t = corun.spawn(function()
      local ok, err = pcall(corun.sleep, 100)
      assert(corun.is_cancelled(err))
      corun.shield(function()
        corun.sleep(1)            -- a graceful close
        q:put("given back")
      end)
      error(err, 0)
    end)
    corun.sleep(0)
    t:cancel()
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
    assert.equal("given back", q:get_nowait())
  end))

  it("holds back a scope outside it until it ends", async_virtual(function()
    local t0 = corun.time()
    local log = {}
    local ok = corun.move_on_after(1, function()
      corun.shield(function() corun.sleep(3) log[#log + 1] = corun.time() - t0 end)
      log[#log + 1] = "after the shield"
    end)
    assert.is_false(ok)
    assert.same({ 3 }, log)
    assert.equal(t0 + 3, corun.time())
  end))

  it("does not stop a scope inside it", async_virtual(function()
    local t0 = corun.time()
    local t = corun.spawn(function()
      return corun.shield(function()
        local r = corun.move_on_after(1, corun.sleep, 10)
        return r, corun.time() - t0
      end)
    end)
    corun.sleep(0.5)
    t:cancel()                    -- held back by the shield
    local e = catch(t.join, t)
    assert.is_true(corun.is_cancelled(e))  -- delivered when the shield ended
    assert.equal(t0 + 1, corun.time())
  end))

  it("nests: shield, scope, shield", async_virtual(function()
    local t0 = corun.time()
    local log = {}
    corun.shield(function()
      local ok = corun.move_on_after(1, function()
        corun.shield(function() corun.sleep(2) end)
        log[#log + 1] = "after inner shield"
        corun.sleep(10)
      end)
      log[#log + 1] = { ok, corun.time() - t0 }
    end)
    assert.same({ { false, 2 } }, log)
  end))

  it("passes the body's error on, and the cancel comes at the next suspension",
     async_virtual(function()
    local t = corun.spawn(function()
      local ok, err = pcall(corun.shield, function()
        corun.sleep(2)
        error("cleanup failed")
      end)
      assert.is_false(ok)
      assert.matches("cleanup failed", err)
      corun.sleep(1)              -- raises the cancel
      return "not reached"
    end)
    corun.sleep(1)
    t:cancel()
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
  end))

  it("keeps corun.timeout working inside", async_virtual(function()
    local e = catch(corun.shield, function()
      corun.timeout(1, corun.sleep, 5)
    end)
    assert.is_true(corun.is_timeout(e))
  end))
end)
