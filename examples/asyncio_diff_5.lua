-- asyncio_diff_5.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- maxsize is an integer; nil is not an item (None is, in asyncio).
local corun = require "corun"
print(pcall(corun.queue, 1.3))           -- asyncio: Queue(maxsize=1.3) works
print(corun.queue(2.0):maxsize())        -- an integral float is fine
local q = corun.queue()
local ok, e = pcall(function() return q:put_nowait(nil) end)
print(ok, (e:gsub("^.-:%d+: ", "")))   -- (the message without its position)
print(q:put_nowait(false), q:get_nowait())   -- false is a valid item
