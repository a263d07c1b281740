-- asyncio_diff_9.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- A cancelled barrier waiter just leaves the count (as in asyncio); a wait
-- that times out breaks the barrier (as threading.Barrier's does; with
-- asyncio, wait_for cancels, which does not break it).
local corun = require "corun"
local bar = corun.barrier(3)
local a = corun.spawn(function() return bar:wait() end)
local b = corun.spawn(function() return bar:wait() end)
corun.sleep(0)
a:cancel()
corun.sleep(0)
print("after a cancel:", bar:n_waiting(), bar:broken())
print("main times out:", bar:wait(0.01))
print("b:", b:join())
print("broken:", bar:broken(), bar:state())
bar:reset()
print("after reset:", bar:state())
