-- asyncio_diff_11.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- gather: the first failure is re-raised and the other tasks are
-- cancelled (asyncio.gather leaves them running).
local corun = require "corun"
local slow = corun.spawn(function() corun.sleep(10) return "slow" end)
local ok, err = pcall(corun.gather, slow, function() error("boom", 0) end)
print(ok, (err:match("^[^\n]*")))   -- (its first line: then a traceback)
corun.sleep(0)
print("slow:", slow:status())
print(table.concat(corun.gather(function() return 1 end,
                                function() return 2 end), " "))
