-- spec/group_errors_spec.lua: corun.group keeps every failure (err.errors).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async_virtual = cb.async_virtual

describe("corun.group failures", function()
  after_each(helper.check)

  it("carries every failure, with task names, in order", async_virtual(function()
    local e = catch(corun.group, function(g)
      local a = g:spawn(function() corun.sleep(1) error("a failed") end)
      a.name = "fetch-a"
      local b = g:spawn(function()
        local ok, err = pcall(corun.sleep, 100)   -- cancelled by a's failure
        error("b's cleanup failed too")           -- counted: not a cancel
      end)
      b.name = "fetch-b"
      g:spawn(function() corun.sleep(100) end)    -- just cancelled: not counted
    end)
    assert.equal(2, #e.errors)
    assert.equal("fetch-a", e.errors[1].task)
    assert.matches("a failed", tostring(e.errors[1].error))
    assert.equal("fetch-b", e.errors[2].task)
    assert.matches("b's cleanup failed too", tostring(e.errors[2].error))
    local text = tostring(e)
    assert.matches("^2 tasks of the group failed:", text)
    assert.matches("%[1%] fetch%-a: .*a failed", text)
    assert.matches("%[2%] fetch%-b: .*cleanup failed too", text)
  end))

  it("one failure: tostring is that error's, values keep their identity",
     async_virtual(function()
    local obj = setmetatable({}, { __tostring = function() return "my error" end })
    local e = catch(corun.group, function(g)
      g:spawn(function() error(obj) end)
    end)
    assert.equal(1, #e.errors)
    assert.equal(obj, e.errors[1].error)
    assert.equal("my error", tostring(e))
  end))

  it("counts the body's own failure", async_virtual(function()
    local e = catch(corun.group, function(g)
      g:spawn(function()
        pcall(corun.sleep, 100)
        error("child cleanup failed")
      end)
      corun.sleep(1)
      error("body failed", 0)
    end)
    assert.equal(2, #e.errors)
    assert.equal("(group body)", e.errors[1].task)
    assert.equal("body failed", e.errors[1].error)
  end))

  it("a cancelled group with no failure raises Cancelled", async_virtual(function()
    local t = corun.spawn(corun.group, function(g)
      g:spawn(corun.sleep, 100)
      corun.sleep(100)
    end)
    corun.sleep(1)
    t:cancel()
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
  end))
end)
