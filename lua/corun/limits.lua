--[[
** corun.limiter and corun.rate: a capacity limiter that knows its
** borrowers (Trio's CapacityLimiter) and a token bucket.
**
**   local lim = corun.limiter(10)        -- at most 10 tasks inside
**   local _ <close> = lim:hold()         -- or lim:with(fn, ...)
**   local r = corun.rate(100, 1)         -- 100 takes a second, bursts of 100
**   r:take()                             -- suspends until a token is there
**
** Both are built on corun's FIFO-fair semaphore and lock: waiters are
** served in arrival order, and a cancelled waiter takes nothing.
--]]

local core = require "corun.core"

local M = {}
local current, time, sleep = core.current, core.time, core.sleep
local pack, unpack = table.pack, table.unpack

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

local function check_count(fname, n, v, what)
  if math.type(v) ~= "integer" or v < 1 then
    argerror(fname, n, what .. " must be an integer >= 1", 4)
  end
end

local function check_timeout(fname, n, t)
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(fname, n, "timeout must be a number >= 0", 4)
  end
end

local function me_or_error(fname)
  local me = current()
  if me == nil then error(fname .. ": must be called from inside a task", 3) end
  return me
end

--[[ limiter ]]

local Limiter = {}
Limiter.__index = Limiter
Limiter.__name = "corun.limiter"

-- corun.limiter(n) -> limiter with n tokens.
function M.limiter(n)
  check_count("limiter", 1, n, "size")
  return setmetatable({ sem = core.semaphore(n), size = n, held = {}, count = 0 },
                      Limiter)
end

-- limiter:acquire([timeout]) -> true | nil, "timeout". A task cannot
-- borrow twice (that is what makes it a limiter, not a semaphore).
function Limiter:acquire(timeout)
  check_timeout("acquire", 1, timeout)
  local me = me_or_error("acquire")
  if self.held[me] then
    error("acquire: this task already holds a token of this limiter", 2)
  end
  local ok, why = self.sem:acquire(timeout)
  if not ok then return nil, why end
  self.held[me] = true
  self.count = self.count + 1
  return true
end

-- limiter:release(): give back the calling task's token.
function Limiter:release()
  local me = current()
  if me == nil or not self.held[me] then
    error("release: the calling task holds no token of this limiter", 2)
  end
  self.held[me] = nil
  self.count = self.count - 1
  self.sem:release()
end

-- limiter:hold() -> the limiter, whose __close releases.
function Limiter:hold()
  local ok, why = self:acquire()
  if not ok then error("hold: " .. tostring(why), 2) end
  return self
end
Limiter.__close = function(self) self:release() end

function Limiter:with(fn, ...)
  if not callable(fn) then argerror("with", 1, "function expected") end
  self:acquire()
  local res = pack(pcall(fn, ...))
  self:release()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

-- limiter:borrowers() -> list of the tasks holding a token.
function Limiter:borrowers()
  local list = {}
  for t in pairs(self.held) do list[#list + 1] = t end
  return list
end

function Limiter:available() return self.size - self.count end
function Limiter:total() return self.size end
function Limiter:__tostring()
  return ("corun.limiter (%d of %d available)"):format(self:available(), self.size)
end

--[[ rate: a token bucket ]]

local Rate = {}
Rate.__index = Rate
Rate.__name = "corun.rate"

-- corun.rate(n, [per]) -> a bucket of n tokens refilled at n per 'per'
-- seconds (default 1): bursts of up to n, n takes per 'per' on average.
function M.rate(n, per)
  check_count("rate", 1, n, "tokens")
  if per == nil then per = 1 end
  if type(per) ~= "number" or per ~= per or per <= 0 or per == math.huge then
    argerror("rate", 2, "period must be a number > 0")
  end
  return setmetatable({ n = n, per = per, tokens = n, stamp = time(),
                        lock = core.lock() }, Rate)
end

local function refill(self)
  local now = time()
  local t = self.tokens + (now - self.stamp) * self.n / self.per
  self.tokens = t < self.n and t or self.n
  self.stamp = now
end

-- rate:take([k]): suspend until k tokens (default 1) are there, then take
-- them. Takers are served in arrival order: one waiting for many tokens
-- is not overtaken by later ones asking for few.
function Rate:take(k)
  if k == nil then k = 1 end
  if math.type(k) ~= "integer" or k < 1 or k > self.n then
    argerror("take", 1, ("tokens must be an integer from 1 to %d"):format(self.n))
  end
  me_or_error("take")
  local _ <close> = self.lock:hold()
  refill(self)
  while self.tokens < k do
    sleep((k - self.tokens) * self.per / self.n)
    refill(self)
  end
  self.tokens = self.tokens - k
  return true
end

-- rate:try_take([k]) -> true, or false when fewer than k tokens are there
-- (or another task is waiting for its turn).
function Rate:try_take(k)
  if k == nil then k = 1 end
  if math.type(k) ~= "integer" or k < 1 or k > self.n then
    argerror("try_take", 1, ("tokens must be an integer from 1 to %d"):format(self.n))
  end
  if self.lock:locked() then return false end
  refill(self)
  if self.tokens < k then return false end
  self.tokens = self.tokens - k
  return true
end

-- rate:available() -> the tokens there now (a float).
function Rate:available()
  refill(self)
  return self.tokens
end

function Rate:__tostring()
  return ("corun.rate (%d per %g s)"):format(self.n, self.per)
end

return M
