-- asyncio_diff_13.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- priority_queue orders by `<` or a less(a, b) function; no tuples, so put
-- a {priority, item} pair with a less that compares the priorities.
local corun = require "corun"
local q = corun.priority_queue(0, function(a, b) return a[1] < b[1] end)
q:put_nowait({ 2, "write docs" })
q:put_nowait({ 1, "fix bug" })
q:put_nowait({ 3, "lunch" })
while not q:empty() do print(table.unpack(q:get_nowait())) end
