-- asyncio_diff_10.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- Cancellation is a raised error object, and pcall catches it: re-raise
-- it (asyncio's CancelledError is a BaseException that `except Exception`
-- lets through).
local corun = require "corun"
local t = corun.spawn(function()
  local ok, err = pcall(corun.sleep, 10)
  print("pcall caught:", ok, corun.is_cancelled(err))
  if corun.is_cancelled(err) then error(err, 0) end   -- re-raise it
  print("not reached")
end)
corun.sleep(0)
t:cancel()
local ok, err = pcall(t.join, t)
print(ok, corun.is_cancelled(err))
print(t:status())
