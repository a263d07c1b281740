-- Plain callbacks share one FIFO ready queue with tasks: call_soon runs them
-- in the order scheduled, between tasks; call_later after a delay; call_at at
-- a point on the corun.time() clock. Port of the call_soon / call_later /
-- call_at demos in reference/threads-processes-asyncio-tour.txt.
local corun = require "corun"

local function hello(name)            -- a plain function, run as a callback
  print("[hello] Hello, " .. name)
end

local function work(t, name)          -- a task body
  print("[work" .. name .. "] start")
  corun.sleep(t)
  print("[work" .. name .. "] stop")
end

print("-- call_soon")
-- Everything below becomes ready in this order and runs in this order once
-- the main task parks in join().
corun.spawn(work, 1, "A")
corun.call_soon(hello, "Tom")
corun.spawn(work, 2, "B")
corun.spawn(work, 3, "C"):join()

print("-- call_later")
-- Jerry's timer is armed before A's sleep starts, so Jerry (1 s) comes
-- before A stops (1 s after A started); Tom (1.2 s) comes after.
corun.spawn(work, 1, "A")
corun.call_later(1.2, hello, "Tom")
corun.call_soon(hello, "Kitty")
local b = corun.spawn(work, 2, "B")
corun.call_later(1, hello, "Jerry")
b:join()

print("-- call_at")
-- The same schedule with absolute times on the loop clock.
local start = corun.time()
corun.spawn(work, 1, "A")
corun.call_at(start + 1.2, hello, "Tom")   -- = call_later(1.2, hello, "Tom")
corun.call_soon(hello, "Kitty")
b = corun.spawn(work, 2, "B")
corun.call_at(start + 1, hello, "Jerry")   -- = call_later(1, hello, "Jerry")
local nobody = corun.call_later(0.5, hello, "Nobody")
print("cancel Nobody:", nobody:cancel(), nobody:cancelled())
b:join()
