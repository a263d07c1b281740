-- asyncio_diff_8.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- A timeout argument returns nil, "timeout" and leaves the task alone;
-- corun.timeout(sec, fn) is asyncio.timeout / wait_for: it cancels fn at
-- the deadline and raises a Timeout error.
local corun = require "corun"
local ev = corun.event()
print(ev:wait(0.01))
local ok, err = pcall(corun.timeout, 0.01, function() ev:wait() end)
print(ok, corun.is_timeout(err), tostring(err))
print(corun.timeout(1, function() return "in time" end))
