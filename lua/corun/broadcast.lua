--[[
** corun.broadcast and corun.watch: one sender, many receivers, in one
** thread.
**
**   local b = corun.broadcast(64)        -- keeps the last 64 messages
**   local sub = b:subscribe()            -- sees every message sent from now
**   b:send(v)                            -- never suspends
**   local v, why, k = sub:recv([timeout]) -- v | nil,"lagged",k | nil,"closed"
**
**   local w = corun.watch(initial)
**   w:set(v)                             -- receivers see only the latest
**   local r = w:subscribe(); r:changed([timeout]); print(r:get())
**
** A subscriber that falls more than 'capacity' messages behind is told by
** how many it lagged (nil, "lagged", k) and goes on from the oldest message
** still kept: memory stays bounded by the capacity, whatever the slowest
** subscriber does (tokio's broadcast channel). Waiting is on corun.event:
** each send sets the current event and puts a fresh one in its place.
--]]

local core = require "corun.core"

local M = {}
local event = core.event

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function check_timeout(fname, n, t)
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(fname, n, "timeout must be a number >= 0", 4)
  end
end

-- Wake every waiter of 'self' (it has an 'ev' field).
local function wake(self)
  local ev = self.ev
  self.ev = event()
  ev:set()
end

-- Wait on self.ev until ready(), the timeout, or close.
local function await(self, ready, timeout)
  local deadline = timeout and core.time() + timeout
  while not ready() do
    if self.closed then return nil, "closed" end
    local ok = self.ev:wait(deadline and math.max(0, deadline - core.time()))
    if not ok and not ready() then
      if self.closed then return nil, "closed" end
      return nil, "timeout"
    end
  end
  return true
end

--[[ broadcast ]]

local Broadcast = {}
Broadcast.__index = Broadcast
Broadcast.__name = "corun.broadcast"

local Sub = {}
Sub.__index = Sub
Sub.__name = "corun.broadcast.subscriber"

-- corun.broadcast([capacity]) -> broadcast keeping the last capacity
-- messages (default 64).
function M.broadcast(capacity)
  if capacity == nil then capacity = 64 end
  if math.type(capacity) ~= "integer" or capacity < 1 then
    argerror("broadcast", 1, "capacity must be an integer >= 1")
  end
  return setmetatable({ cap = capacity, buf = {}, head = 0, ev = event(),
                        closed = false }, Broadcast)
end

-- broadcast:send(v): to every subscriber; never suspends. Returns true,
-- or nil, "closed".
function Broadcast:send(v)
  if v == nil then argerror("send", 1, "nil is not a valid message") end
  if self.closed then return nil, "closed" end
  self.buf[self.head % self.cap] = v
  self.head = self.head + 1
  wake(self)
  return true
end

-- broadcast:subscribe() -> subscriber that receives what is sent from now.
function Broadcast:subscribe()
  return setmetatable({ b = self, next = self.head }, Sub)
end

-- broadcast:close(): subscribers receive what is kept, then nil, "closed".
function Broadcast:close()
  if self.closed then return end
  self.closed = true
  wake(self)
end

function Broadcast:__tostring()
  return ("corun.broadcast (%d sent%s)"):format(self.head,
                                                 self.closed and ", closed" or "")
end

-- subscriber:recv([timeout]) -> v | nil, "lagged", k | nil, "timeout" |
-- nil, "closed".
function Sub:recv(timeout)
  check_timeout("recv", 1, timeout)
  local b = self.b
  local ok, why = await(b, function() return self.next < b.head end, timeout)
  if not ok then return nil, why end
  local oldest = b.head - b.cap
  if self.next < oldest then
    local k = oldest - self.next
    self.next = oldest
    return nil, "lagged", k
  end
  local v = b.buf[self.next % b.cap]
  self.next = self.next + 1
  return v
end

-- subscriber:iter(): for v in sub:iter() do ... end until closed; a lag
-- raises (a loop that must see every message cannot go on silently).
function Sub:iter()
  return function()
    local v, why, k = self:recv()
    if v == nil and why == "lagged" then
      error(("broadcast: subscriber lagged by %d messages"):format(k), 2)
    end
    return v
  end
end

-- subscriber:pending() -> how many messages wait for this subscriber.
function Sub:pending()
  return self.b.head - math.max(self.next, self.b.head - self.b.cap)
end

--[[ watch ]]

local Watch = {}
Watch.__index = Watch
Watch.__name = "corun.watch"

local Rcv = {}
Rcv.__index = Rcv
Rcv.__name = "corun.watch.receiver"

-- corun.watch([initial]) -> watch holding one value.
function M.watch(initial)
  return setmetatable({ value = initial, version = 0, ev = event(),
                        closed = false }, Watch)
end

-- watch:set(v): replace the value and wake whoever waits for a change.
function Watch:set(v)
  if self.closed then return nil, "closed" end
  self.value = v
  self.version = self.version + 1
  wake(self)
  return true
end

-- watch:get() -> value, version.
function Watch:get() return self.value, self.version end

-- watch:subscribe() -> receiver that has seen the current value.
function Watch:subscribe()
  return setmetatable({ w = self, seen = self.version }, Rcv)
end

function Watch:close()
  if self.closed then return end
  self.closed = true
  wake(self)
end

function Watch:__tostring()
  return ("corun.watch (version %d%s)"):format(self.version,
                                               self.closed and ", closed" or "")
end

-- receiver:get() -> the latest value (and marks it seen), version.
function Rcv:get()
  self.seen = self.w.version
  return self.w.value, self.w.version
end

-- receiver:changed([timeout]) -> true once a value newer than the last one
-- seen is there (at once if it already is); nil, "timeout" | "closed".
function Rcv:changed(timeout)
  check_timeout("changed", 1, timeout)
  local w = self.w
  return await(w, function() return w.version > self.seen end, timeout)
end

return M
