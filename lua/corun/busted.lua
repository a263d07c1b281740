--[[
** corun.busted: run busted spec bodies as corun tasks.
**   local corun = require "corun"
**   require "corun.busted"
**   it("waits", corun.async(function() corun.sleep(0.01) end))
** async(fn) runs fn as the main task of a corun.run with a real clock;
** async_virtual(fn) with a virtual clock (timers fire at once, in order).
--]]

local corun = require "corun"

local M = {}

function M.async(fn)
  return function(...)
    return corun.run(fn, ...)
  end
end

function M.async_virtual(fn)
  return function(...)
    return corun.run({ clock = "virtual" }, fn, ...)
  end
end

corun.async = M.async
corun.async_virtual = M.async_virtual

return M
