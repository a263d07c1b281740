-- spec/helper.lua: helpers shared by the corun busted specs.
-- Use:  local helper = require "helper"
--       describe("x", function() after_each(helper.check) ... end)
-- Run from the repo root with
--   LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;" LUA_CPATH="build/?.so;;"

local corun = require "corun"

local helper = {}

-- Expectations made with expect() during the current test.
local expected = {}

-- luv-style expect: returns a wrapper around fn (or a no-op) that counts its
-- calls; helper.check() fails the test unless it was called exactly n times
-- (default 1).
function helper.expect(fn, n)
  local rec = { n = n or 1, count = 0,
                where = debug.traceback("expect() made here", 2) }
  expected[#expected + 1] = rec
  return function(...)
    rec.count = rec.count + 1
    if fn then return fn(...) end
  end
end

-- after_each check: every expect() was met and no live task remains. Live
-- tasks left behind are cancelled so that one failure does not cascade.
function helper.check()
  local recs = expected
  expected = {}
  local live = corun.tasks()
  local names = {}
  for i, t in ipairs(live) do
    names[i] = tostring(t.name) .. " (" .. t:status() .. ")"
    pcall(t.cancel, t)
  end
  if #live ~= 0 and corun.current() == nil then
    pcall(corun.run, function() end) -- let the cancellations finish
  end
  for _, rec in ipairs(recs) do
    if rec.count ~= rec.n then
      error(("expected %d call(s), got %d\n%s"):format(rec.n, rec.count,
            rec.where), 0)
    end
  end
  if #live ~= 0 then
    error("live tasks left after the test: " .. table.concat(names, ", "), 0)
  end
end

-- A to-be-closed value calling fn(err) when closed:
--   local _ <close> = helper.closer(function() log[#log+1] = "x" end)
function helper.closer(fn)
  return setmetatable({}, { __close = function(_, err) fn(err) end })
end

-- Deterministic pseudo-random numbers (a 31-bit LCG): rnd(n) in 1..n.
function helper.lcg(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) & 0x7fffffff
    return (s >> 8) % n + 1
  end
end

-- pcall that returns the error object of a failing fn (or nil on success)
-- plus all the results.
function helper.catch(fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return nil, table.unpack(r, 2, r.n) end
  return r[2]
end

function helper.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function helper.writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Run Lua code in a child lua5.4 (same LUA_PATH/LUA_CPATH); returns the
-- exit status, stdout and stderr.
function helper.run_lua(code)
  local src, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  helper.writefile(src, code)
  local _, _, status = os.execute(("timeout -s KILL 20 lua5.4 %s >%s 2>%s")
                                  :format(src, out, err))
  local o, e = helper.readfile(out), helper.readfile(err)
  os.remove(src)
  os.remove(out)
  os.remove(err)
  return status, o, e
end

return helper
