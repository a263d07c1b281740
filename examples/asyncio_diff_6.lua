-- asyncio_diff_6.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- close() is shutdown(immediate=False): puts fail, gets drain what is left.
-- There is no immediate mode; drain by hand to drop the rest.
local corun = require "corun"
local q = corun.queue()
q:put_nowait(1)
q:put_nowait(2)
q:close()
print(q:put(3))                          -- asyncio: raises QueueShutDown
print(q:get(), q:get())
print(q:get())
-- shutdown(immediate=True), by hand: drop the items and mark them done
local r = corun.queue()
for i = 1, 3 do r:put_nowait(i) end
r:close()
while r:get_nowait() do r:task_done() end
print(r:size(), r:join())
