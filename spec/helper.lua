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

--[[ Redis servers for the specs (spec/redis_spec.lua, redis_queue_spec.lua) ]]

-- A free loopback TCP port: bind port 0, read the port, close. Works inside
-- a task and outside a run.
function helper.free_port()
  local function pick()
    local s = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
    local port = s.port
    s:close()
    return port
  end
  if corun.current() then return pick() end
  return corun.run(pick)
end

-- Run a shell command, return its output. Without LD_PRELOAD: the ASan
-- stage preloads libasan, which redis-server and redis-cli do not need.
local function sh(cmd)
  local f = assert(io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1"))
  local out = f:read("a")
  f:close()
  return out
end

-- True once something answers redis-cli on port (NOAUTH counts).
local function answers(port)
  return not sh(("redis-cli -p %d ping"):format(port)):find("Could not connect")
end

-- Start a throwaway redis-server on a free loopback port (or on 'port'),
-- persistence off, extra arguments 'args' (a list, e.g. {"--requirepass",
-- "pw"}); waits until it answers. Returns port, stop: stop() ends that
-- server (SIGTERM; with no persistence it exits at once) and waits until
-- the port is closed. Blocks the calling thread while it waits.
function helper.redis_server(args, port)
  local extra = {}
  for i, a in ipairs(args or {}) do extra[i] = "'" .. a .. "'" end
  for _ = 1, 5 do
    local p = port or helper.free_port()
    local pid = sh(("redis-server --port %d --bind 127.0.0.1 --save '' "
      .. "--appendonly no --daemonize no %s >/dev/null 2>&1 & echo $!")
      :format(p, table.concat(extra, " "))):match("%d+")
    for _ = 1, 100 do
      if answers(p) then
        local function stop()
          os.execute("kill " .. pid .. " 2>/dev/null")
          for _ = 1, 100 do
            if not answers(p) then return end
            os.execute("sleep 0.05")
          end
        end
        return p, stop
      end
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute("sleep 0.05")
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  error("could not start redis-server" .. (port and " on port " .. port or ""))
end

-- The Redis server for the specs: CORUN_REDIS_URL (test/run.sh starts one;
-- it is only ever a server started for the tests) or, when it is unset, a
-- throwaway server of our own. Returns url, port, stop (a no-op for the
-- shared server).
function helper.redis()
  local url = os.getenv("CORUN_REDIS_URL")
  if url and url ~= "" then
    local port = tonumber(os.getenv("CORUN_REDIS_PORT"))
                 or tonumber(url:match(":(%d+)/?%d*$"))
    return url, port, function() end
  end
  local port, stop = helper.redis_server()
  return ("redis://127.0.0.1:%d/0"):format(port), port, stop
end

-- A prefix for Redis keys unique to this run of a spec file (the shared
-- server sees the plain and the ASan runs, and the examples).
function helper.redis_prefix(what)
  local p = ("spec:%s:%d:%d:"):format(what, os.time(), math.random(1 << 30))
  -- on a Redis Cluster (test/run.sh runs the queue specs on one): a hash
  -- tag, so that a queue's keys share a slot
  if (os.getenv("CORUN_REDIS_URL") or ""):find("[?&]cluster=1") then
    p = "{" .. p .. "}"
  end
  return p
end

-- Run program 'cmd' with 'args' as a child process, inside a task;
-- returns its status (the exit code, "signal NAME" if a signal ended it,
-- "hung" if it ran past 'limit' seconds, default 20: then it is killed),
-- stdout and stderr.
function helper.run_child(cmd, args, limit)
  local p = assert(corun.process.spawn(cmd, args,
    { stdin = "null", stdout = "pipe", stderr = "pipe" }))
  local out, err
  limit = limit or 20
  local ro = corun.spawn(function() out = p.stdout:read("a", limit + 5) end)
  local re = corun.spawn(function() err = p.stderr:read("a", limit + 5) end)
  local status, sig = p:wait(limit)
  if status == nil then
    p:kill("kill")
    p:wait()
    status = "hung"
  elseif sig then
    status = "signal " .. sig
  end
  ro:join()
  re:join()
  return status, out, err
end

-- All results of a call, as a table (so nil, "why" compares with same).
function helper.both(...) return { n = select("#", ...), ... } end

-- The results of an expected failure: nil, why.
function helper.fail(why) return { n = 2, nil, why } end

-- fn(...) must raise an error whose text contains 'text'.
function helper.raises(text, fn, ...)
  local e = helper.catch(fn, ...)
  assert(e ~= nil, "did not raise (expected '" .. text .. "')")
  assert(tostring(e):find(text, 1, true),
         ("expected '%s' in the error, got: %s"):format(text, tostring(e)))
  return e
end

-- The results ... must be nil, "CODE: message" (libuv's error name).
function helper.fails(code, ...)
  local r = helper.both(...)
  assert(r.n == 2 and r[1] == nil, "expected nil, err")
  assert(type(r[2]) == "string" and r[2]:find("^" .. code .. ": .+"),
         ("expected %s: ..., got %s"):format(code, tostring(r[2])))
end

return helper
