-- asyncio_diff_12.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- condition:notify needs the lock held by the calling task (asyncio only
-- checks that the lock is locked, by anyone).
local corun = require "corun"
local cond = corun.condition()
local holder = corun.spawn(function()
  cond:acquire()
  corun.sleep(0.05)
  cond:release()
end)
corun.sleep(0)
print(cond:locked(), pcall(cond.notify, cond))
holder:join()
cond:with(function() cond:notify() print("notify with the lock: ok") end)
