-- spec/regress/010_cancel_msg_spec.lua: a task cancelled again during its
-- cleanup with another message gets the latest message (issue 10 #18).
-- Before the fix the second Cancelled carried the first message.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

describe("cancelling again with another message", function()
  after_each(helper.check)

  it("the second Cancelled carries the latest message", async(function()
    local got = {}
    local t = corun.spawn(function()
      local _, e1 = pcall(corun.sleep, 10)
      got[1] = e1.msg
      local _, e2 = pcall(corun.sleep, 10)   -- cleanup that sleeps
      got[2] = e2.msg
      local _, e3 = pcall(corun.sleep, 10)
      got[3] = e3.msg
    end)
    corun.sleep(0)
    t:cancel("first")
    corun.sleep(0)
    t:cancel("second")
    corun.sleep(0)
    t:cancel()              -- no message: the last one stays
    t:join()
    assert.same({ "first", "second", "second" }, got)
  end))

  it("two requests before delivery: the latest message", async(function()
    local t = corun.spawn(function() corun.sleep(10) end)
    corun.sleep(0)
    t:cancel("a")
    t:cancel("b")
    local ok, e = pcall(t.join, t)
    assert.is_false(ok)
    assert.equal("b", e.msg)
  end))
end)
