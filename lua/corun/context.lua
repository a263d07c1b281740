--[[
** corun.context_var: values that follow a task and the tasks it spawns
** (Python's contextvars, as asyncio uses them).
**
**   local request_id = corun.context_var("-")
**   request_id:set("req-42")             -- this task and what it spawns
**   corun.spawn(function() print(request_id:get()) end)   --> req-42
**
** A context is a table from var to value that is never changed: set()
** makes a new one (copy on write) and makes it the calling task's. A
** spawned task starts with its parent's context table (src/task.c copies
** one reference, and only when the parent has a context); a callback
** scheduled with call_soon/call_later/call_at runs in the context it was
** scheduled from. Code outside any task (the main chunk of plain lua5.4)
** has a context of its own.
--]]

local core = require "corun.core"

local M = {}
local current, context, set_context = core.current, core.context, core.set_context

local EMPTY = {}
local outside = EMPTY       -- the context of code outside any task
local in_callback = nil     -- the context of the callback running now

local function get_ctx()
  local me = current()
  if me ~= nil then return context(me) or EMPTY end
  return in_callback or outside
end

local function put_ctx(ctx)
  local me = current()
  if me ~= nil then set_context(me, ctx)
  elseif in_callback ~= nil then in_callback = ctx
  else outside = ctx end
end

local MISSING = setmetatable({}, { __name = "corun.context_var (no value)" })

local Var = {}
Var.__index = Var
Var.__name = "corun.context_var"

local Token = {}
Token.__index = Token
Token.__name = "corun.context_token"

-- corun.context_var([default]) -> var
function M.context_var(default)
  return setmetatable({ default = default }, Var)
end

-- var:get([default]) -> the value in the calling context, else default
-- (the argument's, then the var's).
function Var:get(default)
  local v = get_ctx()[self]
  if v ~= nil then
    if v == MISSING then v = nil end
    return v
  end
  if default ~= nil then return default end
  return self.default
end

-- var:set(v) -> token for var:reset.
function Var:set(v)
  local old = get_ctx()
  local new = {}
  for k, x in pairs(old) do new[k] = x end
  new[self] = v == nil and MISSING or v
  put_ctx(new)
  return setmetatable({ var = self, old = old[self], ctx = new, used = false },
                      Token)
end

-- var:reset(token): back to the value before the set that made token.
function Var:reset(token)
  if getmetatable(token) ~= Token then
    error("bad argument #1 to 'reset' (token expected)", 2)
  end
  if token.var ~= self then
    error("bad argument #1 to 'reset' (the token was made by another var)", 2)
  end
  if token.used then
    error("bad argument #1 to 'reset' (the token has already been used)", 2)
  end
  local cur = get_ctx()
  if cur[self] ~= token.ctx[self] then
    error("bad argument #1 to 'reset' (the token was made in another context)", 2)
  end
  token.used = true
  local new = {}
  for k, x in pairs(cur) do new[k] = x end
  new[self] = token.old
  put_ctx(new)
end

-- var:with(v, fn, ...): fn(...) with the var set to v; reset afterwards,
-- also when fn fails.
function Var:with(v, fn, ...)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call) then
    error(("bad argument #2 to 'with' (function expected, got %s)"):format(type(fn)), 2)
  end
  local token = self:set(v)
  local res = table.pack(pcall(fn, ...))
  self:reset(token)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function Var:__tostring()
  return ("corun.context_var (default %s)"):format(tostring(self.default))
end

-- fn wrapped to run in context ctx (a scheduled callback).
local function in_context(ctx, fn)
  return function(...)
    local saved = in_callback
    in_callback = ctx
    local res = table.pack(pcall(fn, ...))
    in_callback = saved
    if not res[1] then error(res[2], 0) end
    return table.unpack(res, 2, res.n)
  end
end

-- call_soon/call_later/call_at that carry the caller's context; with no
-- context in use they are the C functions' own cost plus one test.
function M.wrap_scheduler(schedule, fnpos)
  return function(...)
    local ctx = get_ctx()
    if ctx == EMPTY then return schedule(...) end
    local args = table.pack(...)
    local fn = args[fnpos]
    local mt = getmetatable(fn)
    if type(fn) == "function" or (type(mt) == "table" and mt.__call) then
      args[fnpos] = in_context(ctx, fn)
    end
    return schedule(table.unpack(args, 1, args.n))
  end
end

-- fn, or fn wrapped to start in the context of the code outside any task
-- (corun.run's main task, as asyncio.run copies the caller's context).
function M.carry(fn)
  if outside == EMPTY then return fn end
  local ctx = outside
  return function(...)
    set_context(current(), ctx)
    return fn(...)
  end
end

return M
