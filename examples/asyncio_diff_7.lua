-- asyncio_diff_7.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- Expected outcomes are return values, not exceptions: nil and a reason.
local corun = require "corun"
local q = corun.queue(1)
print(q:get_nowait())                    -- asyncio: raises QueueEmpty
q:put_nowait("a")
print(q:put_nowait("b"))                 -- QueueFull
print(q:put("b", 0.01))                  -- TimeoutError (wait_for)
local bar = corun.barrier(2)
bar:abort()
print(bar:wait())                        -- BrokenBarrierError
q:close()
print(q:put("c"))                        -- QueueShutDown
