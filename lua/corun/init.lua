--[[
** corun: the public module.
** Re-exports the C core (corun.core) and composes its primitives into the
** combinators: run, gather, wait, as_completed, timeout, group, dump.
** Everything here waits through C primitives (task joins, queues); nothing
** re-implements a scheduler or a wait list.
--]]

local core = require "corun.core"

local corun = {}
for _, name in ipairs {
  "version", "time", "stop", "call_soon", "call_later", "call_at",
  "spawn", "sleep", "current", "tasks", "is_cancelled", "is_timeout",
  "queue", "lifo_queue", "priority_queue",
  "lock", "rlock", "semaphore", "bounded_semaphore", "event", "condition",
  "barrier", "channel", "select", "thread", "pool", "loop",
} do
  corun[name] = core[name]
end

local spawn, current, queue = core.spawn, core.current, core.queue
local notify, time = core.notify, core.time
local is_cancelled, is_task = core.is_cancelled, core.is_task
local pack, unpack = table.pack, table.unpack

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

local function check_timeout(fname, n, t)
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(fname, n, "timeout must be a number >= 0", 4)
  end
end

-- A task failed or was cancelled (its result() would raise).
local failed = core.failed

-- The error object of a finished, failed or cancelled task.
local function error_of(t)
  local ok, err = pcall(t.result, t)
  if ok then return nil end
  return err
end

--[[ run ]]

-- corun.run([opts,] fn, ...): fn runs as the main task of a fresh run.
function corun.run(opts, ...)
  local mode = ""
  if type(opts) == "table" and not callable(opts) then
    if opts.clock ~= nil and opts.clock ~= "virtual" and opts.clock ~= "real" then
      argerror("run", 1, "clock must be \"virtual\" or \"real\"")
    end
    if not callable((...)) then
      argerror("run", 2, ("function expected, got %s"):format(type((...))))
    end
    if opts.clock == "virtual" then mode = "virtual" end
    return core.run(mode, ...)
  end
  if not callable(opts) then
    argerror("run", 1, ("function expected, got %s"):format(type(opts)))
  end
  return core.run(mode, opts, ...)
end

--[[ combinators ]]

local function tasks_of(fname, items, n)
  local tasks = {}
  for i = 1, n do
    local v = items[i]
    if is_task(v) then
      tasks[i] = v
    elseif callable(v) then
      tasks[i] = spawn(v)
    else
      argerror(fname, i, ("task or function expected, got %s"):format(type(v)), 4)
    end
  end
  return tasks
end

-- A queue that receives each of tasks[1..n] as it finishes.
local completion_queue = core.completion_queue

local function cancel_all(tasks, n)
  for i = 1, n do tasks[i]:cancel() end
end

-- Take n finished tasks from q; stop at the first failure unless
-- return_errors, and return that task.
local function collect(q, n, return_errors)
  local get = q.get
  for _ = 1, n do
    local t = get(q)
    if not return_errors and failed(t) then return t end
  end
end

-- gather(a, b, ...) or gather(list, {return_errors = true})
function corun.gather(...)
  local items, n, opts = pack(...), select("#", ...), nil
  local first = items[1]
  if n <= 2 and type(first) == "table" and not callable(first) then
    opts = items[2] or {}
    items = first
    n = #items
  end
  local tasks = tasks_of("gather", items, n)
  local q = completion_queue(tasks, n)
  local ok, bad = pcall(collect, q, n, opts ~= nil and opts.return_errors)
  if not ok then    -- gather itself was cancelled: so are its children
    cancel_all(tasks, n)
    error(bad, 0)
  end
  if bad then
    cancel_all(tasks, n)
    bad:result()    -- re-raises the failure
  end
  return core.firsts(tasks, n)
end

local function in_order(tasks, n, pick)
  local yes, no = {}, {}
  for i = 1, n do
    local t = tasks[i]
    if pick(t) then yes[#yes + 1] = t else no[#no + 1] = t end
  end
  return yes, no
end

-- wait(tasks, {timeout =, return_when = "all" | "first" | "first_error"})
function corun.wait(tasks, opts)
  if type(tasks) ~= "table" then argerror("wait", 1, "list of tasks expected") end
  opts = opts or {}
  local when = opts.return_when or "all"
  if when ~= "all" and when ~= "first" and when ~= "first_error" then
    argerror("wait", 2, "return_when must be \"all\", \"first\" or \"first_error\"")
  end
  check_timeout("wait", 2, opts.timeout)
  local n = #tasks
  for i = 1, n do
    if not is_task(tasks[i]) then argerror("wait", 1, ("item %d is not a task"):format(i)) end
  end
  local q = completion_queue(tasks, n)
  local deadline = opts.timeout and time() + opts.timeout
  local finished = 0
  while finished < n do
    local t = q:get(deadline and math.max(0, deadline - time()))
    if t == nil then break end
    finished = finished + 1
    if when == "first" or (when == "first_error" and failed(t)) then break end
  end
  return in_order(tasks, n, function(t) return t:done() end)
end

-- for t in as_completed(tasks, [timeout]) do ... end
function corun.as_completed(tasks, timeout)
  if type(tasks) ~= "table" then argerror("as_completed", 1, "list of tasks expected") end
  check_timeout("as_completed", 2, timeout)
  local n = #tasks
  local list = tasks_of("as_completed", tasks, n)
  local q = completion_queue(list, n)
  local deadline = timeout and time() + timeout
  local left = n
  return function()
    if left == 0 then return nil end
    local t = q:get(deadline and math.max(0, deadline - time()))
    if t == nil then error(core.timeout_error(timeout), 2) end
    left = left - 1
    return t
  end
end

-- timeout(sec, fn, ...): fn runs in the current task with a deadline.
function corun.timeout(sec, fn, ...)
  if type(sec) ~= "number" or sec ~= sec or sec < 0 then
    argerror("timeout", 1, "seconds must be a number >= 0")
  end
  if not callable(fn) then argerror("timeout", 2, "function expected") end
  local me = current()
  if me == nil then error("timeout: must be called from inside a task", 2) end
  local fired = false
  local h = core.call_later(sec, function()
    fired = true
    me:cancel()
  end)
  local res = pack(pcall(fn, ...))
  h:cancel()
  if fired and core.uncancel(me) == 0 and not res[1] and is_cancelled(res[2]) then
    error(core.timeout_error(sec), 2)
  end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--[[ group: structured concurrency ]]

local Group = {}
Group.__index = Group

function Group:spawn(fn, ...)
  if self.closed then error("group: spawn after the group has finished", 2) end
  if not callable(fn) then argerror("spawn", 1, "function expected") end
  local t = spawn(fn, ...)
  notify(t, self.q)
  self.live = self.live + 1
  self.tasks[#self.tasks + 1] = t
  return t
end

function Group:cancel()
  for _, t in ipairs(self.tasks) do t:cancel() end
end

-- Wait for every child; the first failure cancels the rest.
local function drain(g, err)
  while g.live > 0 do
    local ok, t = pcall(g.q.get, g.q)
    if not ok then        -- the group's own task was cancelled
      err = err or t
      g:cancel()
    else
      g.live = g.live - 1
      if t:status() == "failed" then
        local e = error_of(t)
        if err == nil then
          err = e
          g:cancel()
        end
      end
    end
  end
  return err
end

function corun.group(body)
  if not callable(body) then argerror("group", 1, "function expected") end
  local g = setmetatable({ q = queue(), live = 0, tasks = {} }, Group)
  local res = pack(pcall(body, g))
  local err
  if not res[1] then
    err = res[2]
    g:cancel()
  end
  err = drain(g, err)
  g.closed = true
  if err ~= nil then error(err, 0) end
  return unpack(res, 2, res.n)
end

--[[ with: run fn holding a lock, a semaphore or a condition's lock ]]

local function with(self, fn, ...)
  if not callable(fn) then argerror("with", 1, "function expected") end
  self:acquire()
  local res = pack(pcall(fn, ...))
  self:release()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

for _, class in ipairs { "corun.lock", "corun.semaphore", "corun.condition" } do
  core.methods(class).with = with
end

-- condition:wait_for(pred, [timeout]): wait until pred() is true; returns
-- its value, or nil, "timeout". The lock must be held, as for wait.
local function wait_for(self, pred, timeout)
  if not callable(pred) then argerror("wait_for", 1, "function expected") end
  check_timeout("wait_for", 2, timeout)
  local deadline = timeout and time() + timeout
  local r = pred()
  while not r do
    local ok, why = self:wait(deadline and math.max(0, deadline - time()))
    r = pred()
    if not ok and not r then return nil, why end
  end
  return r
end
core.methods("corun.condition").wait_for = wait_for

--[[ pools ]]

local Pool = core.methods("corun.pool")

-- pool:join(): wait until the closed pool has finished its queued work.
function Pool:join()
  self:_finished():wait()
end

-- pool:map(fn, list): fn over list on the pool; results in list order.
function Pool:map(fn, list)
  if type(list) ~= "table" then argerror("map", 2, "list expected") end
  local futures, results = {}, {}
  for i = 1, #list do futures[i] = self:submit(fn, list[i]) end
  for i = 1, #list do results[i] = futures[i]:wait() end
  return results
end

local default_pool

-- corun.to_thread(fn, ...): run fn on the default pool (one worker per
-- CPU) and return its results; only the calling task waits.
function corun.to_thread(fn, ...)
  default_pool = default_pool or core.pool()
  return default_pool:submit(fn, ...):wait()
end

--[[ introspection ]]

function corun.dump(file)
  file = file or io.stderr
  file:write(core.dump_string())
  if file.flush then file:flush() end
end

corun.tcp = { connect = core.tcp.connect }

-- tcp.listen(host, port, handler, [opts]): each connection's stream is
-- closed when its handler ends, also when it fails.
function corun.tcp.listen(host, port, handler, opts)
  if not callable(handler) then argerror("listen", 3, "function expected") end
  return core.tcp.listen(host, port, function(stream)
    local _ <close> = stream
    return handler(stream)
  end, opts)
end
-- corun.redis, corun.tls and corun.http load on first use: corun may be
-- built without hiredis, OpenSSL or libcurl, and then only code that uses
-- them hears about it.
local lazy = { redis = "corun.redis", tls = "corun.tls", http = "corun.http" }
setmetatable(corun, {__index = function(t, k)
  local name = lazy[k]
  if name then
    local m = require(name)
    rawset(t, k, m)
    return m
  end
end})

--[[ processes ]]

corun.process = { spawn = core.process.spawn }

-- process.pool([n]): n worker processes (default: one per CPU).
function corun.process.pool(n)
  return require("corun.process_pool").new(n)
end

-- process.run(cmd, [args], [opts]) -> code, stdout, stderr, signal
-- (opts as for spawn, plus input = a string written to its stdin).
function corun.process.run(cmd, args, opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.stdout, o.stderr = "pipe", "pipe"
  o.stdin = opts.input and "pipe" or opts.stdin or "null"
  o.input = nil
  local p, err = core.process.spawn(cmd, args, o)
  if not p then return nil, err end
  local out, errs
  local reader = spawn(function() out = p.stdout:read("a") end)
  local ereader = spawn(function() errs = p.stderr:read("a") end)
  if opts.input then
    p.stdin:write(opts.input)
    p.stdin:close()
  end
  local code, sig = p:wait()
  reader:join()
  ereader:join()
  return code, out, errs, sig
end

corun.fs = core.fs
corun.signal = core.signal
return corun
