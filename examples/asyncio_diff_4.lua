-- asyncio_diff_4.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- put_nowait to a waiting getter hands the item over at once.
local corun = require "corun"
local q = corun.queue()
local getter = corun.spawn(function() return q:get() end)
corun.sleep(0)
q:put_nowait("a")
print(q:size(), q:empty())               -- asyncio: 1 False until it runs
print(getter:join())
