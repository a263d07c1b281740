-- A lock admits one task at a time; release hands it to the first waiter.
-- Part 1 ports the asyncio Lock demo of reference/asyncio-sync-primitives.txt
-- (acquire/release, lock:hold() as `async with`); part 2 the two-worker lock
-- demo of reference/threads-processes-asyncio-tour.txt.
local corun = require "corun"

print("-- acquire, release, hold")

local function coro1(lock)
  print("coro1 waiting for the lock")
  do
    local _ <close> = lock:hold()      -- async with lock:
    print("coro1 acquired lock")
  end                                   -- released here, on every exit path
  print("coro1 released lock")
end

local function coro2(lock)
  print("coro2 waiting for the lock")
  lock:acquire()
  local ok, err = pcall(function()      -- try:
    print("coro2 acquired lock")
  end)
  print("coro2 released lock")          -- finally:
  lock:release()
  if not ok then error(err, 0) end
end

local lock = corun.lock()
print("acquiring the lock before starting coroutines")
lock:acquire()
print("lock acquired: " .. tostring(lock:locked()))

-- In asyncio a call_later callback releases the lock. In corun a lock
-- belongs to the task that acquired it: releasing it from a plain callback
-- (or from another task) raises, so a bug cannot free a lock someone else
-- is using. Here the callback only reports that; the owner (this main task)
-- releases the lock itself a little later.
corun.call_later(0.05, function()
  local ok, err = pcall(lock.release, lock)
  print("callback tries to release: " .. tostring(ok) .. ", " .. err)
end)

print("waiting for coroutines")
local tasks = { corun.spawn(coro1, lock), corun.spawn(coro2, lock) }
corun.sleep(0.1)                        -- the callback fires meanwhile
print("main releasing lock")
lock:release()                          -- hand-off: coro1 now owns the lock
corun.wait(tasks)

print("-- the second worker sees the first one's append")

local l = {}
local lock2 = corun.lock()

local function work(name)
  print(string.rep("\\", 12) .. " " .. name)
  return lock2:with(function()          -- async with lock:
    print(name .. " start")
    if l[1] == "x" then return name end -- released by with() on return too
    print(string.rep("+", 10) .. " " .. name)
    corun.sleep(0)                      -- let the other task run
    print(string.rep("-", 10) .. " " .. name)
    l[#l + 1] = "x"
    print(name .. " end")
    return name
  end)
end

local function one()
  print(work("one") .. " ok")
end

local function two()
  print(string.rep("/", 11))
  print(work("two") .. " ok")
end

corun.wait({ corun.spawn(one), corun.spawn(two) })
