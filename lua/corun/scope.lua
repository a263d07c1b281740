--[[
** Cancel scopes and shields: corun.timeout, corun.move_on_after,
** corun.move_on_at, corun.deadline and corun.shield (Trio's scopes).
**
**   local ok, v = corun.move_on_after(1, fetch, url)  -- false: time ran out
**   corun.shield(function() conn:close_gracefully() end)  -- a cancel waits
**
** Each task has a stack of frames: one per scope (with its deadline) and
** one per shield. A scope whose deadline passes makes one cancel request
** (core.scope_cancel) and, on its way out, withdraws it (core.uncancel)
** and swallows the Cancelled error if it was its own. A shield blocks the
** task's cancel requests (core.shield) and those of the scopes outside it;
** scopes inside a shield still work. A request a shield held back is
** delivered when the shield ends.
--]]

local core = require "corun.core"

local M = {}
local current, is_cancelled, uncancel = core.current, core.is_cancelled, core.uncancel
local scope_cancel, time = core.scope_cancel, core.time
local pack, unpack = table.pack, table.unpack

-- task -> its frames, innermost last; gone with the task.
local frames = setmetatable({}, { __mode = "k" })

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 4)
end

local function enter(fname, fn, n)
  if not callable(fn) then
    argerror(fname, n, ("function expected, got %s"):format(type(fn)))
  end
  local me = current()
  if me == nil then error(fname .. ": must be called from inside a task", 4) end
  local st = frames[me]
  if st == nil then st = {}; frames[me] = st end
  return me, st
end

-- The index of the innermost shield frame of st at or below i, or 0.
local function shield_below(st, i)
  for j = i, 1, -1 do
    if st[j].shield then return j end
  end
  return 0
end

-- Run fn(...) in a scope ending at time 'at'. Returns expired, results
-- (pack of pcall): expired is true when the body was cancelled by this
-- scope's own deadline.
local function scoped(me, st, at, fn, ...)
  local frame = { deadline = at }
  st[#st + 1] = frame
  local depth = #st
  local function expire()
    frame.fired = true
    -- A shield opened inside this scope holds the request back.
    if shield_below(st, #st) > depth then
      frame.held = true
      scope_cancel(me, "count")
    else
      scope_cancel(me, "both")
    end
  end
  local h = at ~= math.huge and core.call_at(at, expire) or nil
  local res = pack(pcall(fn, ...))
  if h then h:cancel() end
  st[depth] = nil
  if not frame.fired then return false, res end
  local left = uncancel(me)
  if res[1] or not is_cancelled(res[2]) then return false, res end
  local s = shield_below(st, depth - 1)
  local mine
  if s > 0 then     -- requests from outside the shield cannot be it
    mine = true
    for j = s + 1, depth - 1 do
      if st[j].fired then mine = false end
    end
  else
    mine = left == 0
  end
  return mine, res
end

local function check_delay(fname, sec)
  if type(sec) ~= "number" or sec ~= sec or sec < 0 then
    argerror(fname, 1, "seconds must be a number >= 0")
  end
end

-- timeout(sec, fn, ...): results of fn, or a raised Timeout error.
function M.timeout(sec, fn, ...)
  check_delay("timeout", sec)
  local me, st = enter("timeout", fn, 2)
  local expired, res = scoped(me, st, time() + sec, fn, ...)
  if expired then error(core.timeout_error(sec), 2) end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

local function move_on(me, st, at, fn, ...)
  local expired, res = scoped(me, st, at, fn, ...)
  if expired then return false end
  if not res[1] then error(res[2], 0) end
  return true, unpack(res, 2, res.n)
end

-- move_on_after(sec, fn, ...): true, results of fn; or false when time ran out.
function M.move_on_after(sec, fn, ...)
  check_delay("move_on_after", sec)
  local me, st = enter("move_on_after", fn, 2)
  return move_on(me, st, time() + sec, fn, ...)
end

-- move_on_at(t, fn, ...): the same with a deadline on corun.time()'s clock.
function M.move_on_at(t, fn, ...)
  if type(t) ~= "number" or t ~= t then
    argerror("move_on_at", 1, "time must be a number")
  end
  local me, st = enter("move_on_at", fn, 2)
  return move_on(me, st, t, fn, ...)
end

-- The deadline in force for frames st (the earliest of the scopes inside
-- the innermost shield), or nil.
function M.deadline_of(st)
  local d
  for j = #st, 1, -1 do
    local f = st[j]
    if f.shield then break end
    if f.deadline and (d == nil or f.deadline < d) then d = f.deadline end
  end
  return d
end

-- corun.deadline() -> the deadline in force for the calling task, or nil.
function M.deadline()
  local me = current()
  local st = me and frames[me]
  if st == nil then return nil end
  return M.deadline_of(st)
end

-- shield(fn, ...): fn runs to its end even if the task is cancelled
-- meanwhile; the cancellation is raised when the shield ends.
function M.shield(fn, ...)
  local me, st = enter("shield", fn, 1)
  st[#st + 1] = { shield = true }
  local depth = #st
  core.shield(me, true)
  local res = pack(pcall(fn, ...))
  st[depth] = nil
  local below = shield_below(st, depth - 1)
  -- Scopes between this shield and the next one out whose deadline passed
  -- while it ran: their requests are delivered now.
  local held = false
  for j = below + 1, depth - 1 do
    if st[j].held then st[j].held = nil; held = true end
  end
  if below == 0 then        -- raises a cancel request it held back,
    core.shield(me, false, res[1])  -- or leaves it for the next suspension
  end
  if held then
    scope_cancel(me, "deliver")
    if res[1] then core.sleep(0) end  -- raises it
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

return M
