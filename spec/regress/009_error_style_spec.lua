-- spec/regress/009_error_style_spec.lua: one error style in the core
-- (issue 9 section 3): misuse raises `bad argument #N to 'name' (...)` as
-- luaL_argerror writes it (never hand-formatted), and errors name their
-- function.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

describe("error style", function()
  after_each(helper.check)

  it("the core's sources do not hand-format argument errors", function()
    for _, path in ipairs { "src/loop.c", "src/task.c", "src/queue.c",
                            "src/sync.c", "src/core.c", "src/aux.c",
                            "lua/corun/init.lua" } do
      local text = assert(helper.readfile(path), path)
      local n = 0
      for line in text:gmatch("[^\n]+") do
        n = n + 1
        -- the one formatter in C (cr_badarg) and in Lua (argerror)
        if line:find("bad argument #", 1, true) and
           not line:find([["bad argument #%d to '%s' (%s)"]], 1, true) then
          error(("%s:%d hand-formats an argument error: %s"):format(path, n, line))
        end
      end
    end
  end)

  it("errors name their function", async(function()
    local t = {}
    for i = 1, 60001 do t[i] = i end
    local ok, e = pcall(corun.call_soon, print, table.unpack(t))
    assert.is_false(ok)
    assert.truthy(e:find("call_soon: too many arguments", 1, true), e)
    ok, e = pcall(corun.call_later, 1, print, table.unpack(t))
    assert.truthy(e:find("call_later: too many arguments", 1, true), e)
    ok, e = pcall(corun.lock().release, corun.lock())
    assert.truthy(e:find("release: the lock is not held", 1, true), e)
    ok, e = pcall(corun.queue().task_done, corun.queue())
    assert.truthy(e:find("task_done: ", 1, true), e)
    ok, e = pcall(corun.barrier, 0)
    assert.truthy(e:find("^bad argument #1 to '[%w._]*barrier' %(must be >= 1%)"), e)
    ok, e = pcall(corun.condition().notify, corun.condition(), -1)
    assert.truthy(e:find("bad argument #2 to 'notify' %(must be >= 0%)"), e)
    local q = corun.queue()
    ok, e = pcall(function() q:put(nil) end)
    assert.truthy(e:find("bad argument #1 to 'put' (nil is not a valid item)", 1, true), e)
  end))
end)
