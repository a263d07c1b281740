--[[
** corun.busted: run busted spec bodies as corun tasks.
**   local corun = require "corun"
**   require "corun.busted"
**   it("waits", corun.async(function() corun.sleep(0.01) end))
** async(fn) runs fn as the main task of a corun.run with a real clock;
** async_virtual(fn) with a virtual clock (timers fire at once, in order).
** A task of the spec that failed with an error nobody retrieved (joined,
** gathered, ...) fails the spec, as the error of the spec body does.
--]]

local corun = require "corun"
local core = require "corun.core"

local M = {}

function M.async(fn)
  return function(...)
    return core.run("strict", fn, ...)
  end
end

function M.async_virtual(fn)
  return function(...)
    return core.run("strict virtual", fn, ...)
  end
end

corun.async = M.async
corun.async_virtual = M.async_virtual

return M
