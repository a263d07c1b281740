-- context_pipeline.lua: a request id that follows each request through a
-- producer/consumer pipeline (corun.context_var, as Python's contextvars
-- carry one through asyncio tasks). Each request is handled by a task of
-- its own; the id set there reaches the tasks it spawns and the callbacks
-- it schedules, and the log function finds it without being passed it.
local corun = require "corun"

local request_id = corun.context_var("-")
local lines = {}

local function log(msg)
  lines[#lines + 1] = ("[%s] %s"):format(request_id:get(), msg)
end

local results = corun.queue()

local function handle(n)
  request_id:set(("req-%d"):format(n))
  log("received")
  -- a sub-task inherits the id
  local lookup = corun.spawn(function()
    corun.sleep(0.01 * (4 - n))
    log("looked up")
    return n * 10
  end)
  local value = lookup:join()
  -- so does a callback scheduled from here
  corun.call_soon(function() log("callback ran") end)
  corun.sleep(0)
  results:put({ id = request_id:get(), value = value })
end

log("main starts")
local handlers = {}
for n = 1, 3 do handlers[n] = corun.spawn(handle, n) end
for _, h in ipairs(handlers) do h:join() end
log("main ends")

table.sort(lines)
for _, line in ipairs(lines) do print(line) end
while not results:empty() do
  local r = results:get()
  print(r.id, r.value)
end
