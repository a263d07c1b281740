-- asyncio_diff_1.lua: an entry of docs/asyncio.md, "coming from asyncio".
-- Locks belong to the task that acquired them (asyncio.Lock has no owner;
-- Trio's Lock is owned too).
local corun = require "corun"
local function msg(ok, e) return ok, (tostring(e):match("%a+: [^\n]*")) end

local lock = corun.lock()
lock:acquire()
local other = corun.spawn(function() return lock:release() end)
print(msg(pcall(other.join, other)))     -- another task may not release it
corun.call_soon(function() print(msg(pcall(lock.release, lock))) end)
corun.sleep(0)                           -- nor may a plain callback
print(msg(pcall(lock.acquire, lock)))    -- acquiring it twice raises
lock:release()                           -- (asyncio: deadlock)
