-- asyncio_diff_3.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- A task woken with an item (or a permit) keeps it; Cancelled comes at its
-- next suspension. asyncio gives the item to the next getter instead.
local corun = require "corun"
local q = corun.queue()
local getter = corun.spawn(function()
  local item = q:get()
  print("getter got", item)
  corun.sleep(0)                         -- Cancelled is raised here
  print("not reached")
end)
corun.sleep(0)                           -- the getter waits in get
q:put_nowait("x")                        -- handed to the getter now
getter:cancel()                          -- too late to take x back
local ok, err = pcall(getter.join, getter)
print(ok, corun.is_cancelled(err), getter:status())
print("left in the queue:", q:size())
