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
  "barrier", "channel", "select", "thread", "pool", "loop", "stats",
} do
  corun[name] = core[name]
end

local spawn, current, queue = core.spawn, core.current, core.queue
local notify, time = core.notify, core.time
local is_cancelled, is_task = core.is_cancelled, core.is_task
local pack, unpack = table.pack, table.unpack

-- context_var: lua/corun/context.lua
local context = require "corun.context"
corun.context_var = context.context_var
corun.call_soon = context.wrap_scheduler(core.call_soon, 1)
corun.call_later = context.wrap_scheduler(core.call_later, 2)
corun.call_at = context.wrap_scheduler(core.call_at, 2)

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

local this_file = debug.getinfo(1, "S").source

-- Raise an argument error spelled as luaL_argerror writes it
-- (n == 0: "calling 'fname' on bad self"), positioned at the first caller
-- outside this file, however deep in this file it is raised.
local function argerror(fname, n, msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if info == nil or info.source ~= this_file then break end
    level = level + 1
  end
  if n == 0 then
    error(("calling '%s' on bad self (%s)"):format(fname, msg), level)
  end
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level)
end

-- "<what> expected, got <type of v>"
local function expected(what, v)
  return ("%s expected, got %s"):format(what, type(v))
end

local function check_timeout(fname, n, t)
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(fname, n, "timeout must be a number >= 0")
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

-- Inside the runner's main chunk, corun.run(fn, ...) runs fn as a task on
-- the running loop and returns its results (asyncio.run-style scripts).
local script_main = core.script_main

-- (levels: 1 here, 2 corun.run, 3 its caller)
local function run_in_script(opts, ...)
  if type(opts) == "table" and not callable(opts) then
    if opts.clock == "virtual" then
      error("corun.run: the runner's loop has a real clock (run the script "
            .. "with lua5.4 for a virtual one)", 3)
    end
    if not callable((...)) then
      argerror("run", 2, ("function expected, got %s"):format(type((...))), 4)
    end
    return spawn(...):join()
  end
  if not callable(opts) then
    argerror("run", 1, ("function expected, got %s"):format(type(opts)), 4)
  end
  return spawn(opts, ...):join()
end

-- corun.run([opts,] fn, ...): fn runs as the main task of a fresh run.
function corun.run(opts, ...)
  if script_main() then
    local res = pack(run_in_script(opts, ...))  -- not a tail call: levels
    return unpack(res, 1, res.n)
  end
  local mode = ""
  if type(opts) == "table" and not callable(opts) then
    if opts.clock ~= nil and opts.clock ~= "virtual" and opts.clock ~= "real" then
      argerror("run", 1, "clock must be \"virtual\" or \"real\"")
    end
    if not callable((...)) then
      argerror("run", 2, ("function expected, got %s"):format(type((...))))
    end
    if opts.clock == "virtual" then mode = "virtual" end
    return core.run(mode, context.carry((...)), select(2, ...))
  end
  if not callable(opts) then
    argerror("run", 1, ("function expected, got %s"):format(type(opts)))
  end
  return core.run(mode, context.carry(opts), ...)
end

--[[ combinators ]]

-- Futures (pool:submit, corun.thread, process pools) in combinators: each
-- is waited for by a task of its own, which returns pack(pcall(wait)) so
-- that a job's error stays the future's (reported once, by the future).
local function is_future(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "corun.future"
end

local function wait_future(f)
  return pack(pcall(f.wait, f))
end

-- The tasks for items[1..n] (tasks; functions, spawned; futures, waited
-- for by a task), and nil or a table from such a waiter task to its future.
local function tasks_of(fname, items, n)
  local tasks, futures = {}, nil
  for i = 1, n do
    local v = items[i]
    if is_task(v) then
      tasks[i] = v
    elseif callable(v) then
      tasks[i] = spawn(v)
    elseif is_future(v) then
      tasks[i] = spawn(wait_future, v)
      futures = futures or {}
      futures[tasks[i]] = v
    else
      argerror(fname, i, ("task, function or future expected, got %s")
               :format(type(v)))
    end
  end
  return tasks, futures
end

-- Finished task t failed (for a future's waiter: the future failed).
local function failed_item(t, futures)
  if futures ~= nil and futures[t] ~= nil then
    return not t:result()[1]
  end
  return failed(t)
end

-- What a combinator hands back for task t: t, or the future it waited for.
local function shown(t, futures)
  return futures ~= nil and futures[t] or t
end

-- A queue that receives each of tasks[1..n] as it finishes.
local completion_queue = core.completion_queue

-- gather(a, b, ...) or gather(list, {return_errors = true}). The wait is
-- core.gather (gather.c): joins in list order, failing fast. A future is
-- waited for by a task of its own that raises the job's error, so that a
-- failed job fails the gather at once.
local core_gather = core.gather

local function wait_raising(f) return f:wait() end

function corun.gather(...)
  local n, first = select("#", ...), ...
  local items, reterr = nil, false
  if n <= 2 and type(first) == "table" and not callable(first)
     and not is_future(first) then
    local opts = select(2, ...)
    items, n, reterr = first, #first, opts ~= nil and opts.return_errors
  else
    items = pack(...)
  end
  local res = core_gather(items, n, reterr)
  if res ~= false then return res end
  -- false: an item is a future, and nothing was done yet
  local list = {}
  for j = 1, n do
    local v = items[j]
    list[j] = is_future(v) and spawn(wait_raising, v) or v
  end
  res = pack(pcall(core_gather, list, n, reterr))
  if not res[1] then    -- jobs not started yet never run
    for j = 1, n do
      if is_future(items[j]) then items[j]:cancel() end
    end
    error(res[2], 0)
  end
  return res[2]
end

local function in_order(tasks, n, pick, futures)
  local yes, no = {}, {}
  for i = 1, n do
    local t = tasks[i]
    if pick(t) then yes[#yes + 1] = shown(t, futures)
    else no[#no + 1] = shown(t, futures) end
  end
  return yes, no
end

-- wait(items, {timeout =, return_when = "all" | "first" | "first_error"})
function corun.wait(items, opts)
  if type(items) ~= "table" then
    argerror("wait", 1, expected("list of tasks, functions or futures", items))
  end
  if opts ~= nil and type(opts) ~= "table" then
    argerror("wait", 2, expected("options table", opts))
  end
  opts = opts or {}
  local when = opts.return_when or "all"
  if when ~= "all" and when ~= "first" and when ~= "first_error" then
    argerror("wait", 2, "return_when must be \"all\", \"first\" or \"first_error\"")
  end
  check_timeout("wait", 2, opts.timeout)
  local n = #items
  local tasks, futures = tasks_of("wait", items, n)
  local q = completion_queue(tasks, n)
  local deadline = opts.timeout and time() + opts.timeout
  local finished = 0
  while finished < n do
    local t = q:get(deadline and math.max(0, deadline - time()))
    if t == nil then break end
    finished = finished + 1
    if when == "first" or (when == "first_error" and failed_item(t, futures))
    then break end
  end
  return in_order(tasks, n, function(t) return t:done() end, futures)
end

-- for t in as_completed(items, [timeout]) do ... end
function corun.as_completed(items, timeout)
  if type(items) ~= "table" then
    argerror("as_completed", 1,
             expected("list of tasks, functions or futures", items))
  end
  check_timeout("as_completed", 2, timeout)
  local n = #items
  local list, futures = tasks_of("as_completed", items, n)
  local q = completion_queue(list, n)
  local deadline = timeout and time() + timeout
  local left = n
  return function()
    if left == 0 then return nil end
    local t = q:get(deadline and math.max(0, deadline - time()))
    if t == nil then error(core.timeout_error(timeout), 2) end
    left = left - 1
    return shown(t, futures)
  end
end

-- timeout, move_on_after, move_on_at, deadline, shield: lua/corun/scope.lua
local scope = require "corun.scope"
corun.timeout, corun.move_on_after, corun.move_on_at = scope.timeout,
  scope.move_on_after, scope.move_on_at
corun.deadline, corun.shield = scope.deadline, scope.shield

--[[ group: structured concurrency ]]

local Group = {}
Group.__index = Group

function Group:spawn(fn, ...)
  if self.closed then error("group: spawn after the group has finished", 2) end
  if not callable(fn) then argerror("spawn", 1, expected("function", fn)) end
  local t = spawn(fn, ...)
  notify(t, self.q)
  self.live = self.live + 1
  self.tasks[#self.tasks + 1] = t
  return t
end

function Group:cancel()
  for _, t in ipairs(self.tasks) do t:cancel() end
end

-- The error a failed group raises: every failure, in the order they came.
local GroupError = {}
GroupError.__name = "corun.group_error"
GroupError.__index = GroupError
function GroupError.__tostring(e)
  local list = e.errors
  if #list == 1 then return tostring(list[1].error) end
  local out = { ("%d tasks of the group failed:"):format(#list) }
  for i, f in ipairs(list) do
    out[#out + 1] = ("[%d] %s: %s"):format(i, tostring(f.task), tostring(f.error))
  end
  return table.concat(out, "\n")
end

local function add_failure(g, name, e)
  g.errors[#g.errors + 1] = { task = name, error = e }
  if #g.errors == 1 then g:cancel() end
end

-- Wait for every child; the first failure cancels the rest. Children that
-- end cancelled are not failures; one whose cleanup raised another error
-- while it was being cancelled is.
local function drain(g)
  local cancelled
  while g.live > 0 do
    local ok, t = pcall(g.q.get, g.q)
    if not ok then        -- the group's own task was cancelled
      cancelled = cancelled or t
      g:cancel()
    else
      g.live = g.live - 1
      if t:status() == "failed" then add_failure(g, t.name, error_of(t)) end
    end
  end
  return cancelled
end

function corun.group(body)
  if not callable(body) then argerror("group", 1, expected("function", body)) end
  local g = setmetatable({ q = queue(), live = 0, tasks = {}, errors = {} }, Group)
  local res = pack(pcall(body, g))
  local cancelled
  if not res[1] then
    if is_cancelled(res[2]) then
      cancelled = res[2]
      g:cancel()
    else
      add_failure(g, "(group body)", res[2])
    end
  end
  cancelled = drain(g) or cancelled
  g.closed = true
  if #g.errors > 0 then
    error(setmetatable({ errors = g.errors }, GroupError), 0)
  end
  if cancelled ~= nil then error(cancelled, 0) end
  return unpack(res, 2, res.n)
end

--[[ with: run fn holding a lock, a semaphore or a condition's lock ]]

local with_classes = { "corun.lock", "corun.semaphore", "corun.condition" }
local with_self = {}  -- method table -> true, for the classes above
local function with(self, fn, ...)
  local mt = getmetatable(self)
  if type(mt) ~= "table" or not with_self[mt.__index] then
    argerror("with", 0, expected("lock, semaphore or condition", self))
  end
  if not callable(fn) then argerror("with", 1, expected("function", fn)) end
  self:acquire()
  local res = pack(pcall(fn, ...))
  self:release()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

for _, class in ipairs(with_classes) do
  local methods = core.methods(class)
  methods.with = with
  with_self[methods] = true
end

-- condition:wait_for(pred, [timeout]): wait until pred() is true; returns
-- its value, or nil, "timeout". The lock must be held, as for wait.
local Condition = core.methods("corun.condition")
local function wait_for(self, pred, timeout)
  local mt = getmetatable(self)
  if type(mt) ~= "table" or mt.__index ~= Condition then
    argerror("wait_for", 0, expected("condition", self))
  end
  if not callable(pred) then argerror("wait_for", 1, expected("function", pred)) end
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

-- pool:map(fn, list): fn over list on the pool; results in list order;
-- raises the first error in list order (after cancelling the jobs not
-- started and waiting for the running ones).
function Pool:map(fn, list)
  if type(list) ~= "table" then argerror("map", 2, expected("list", list)) end
  local futures, results = {}, {}
  for i = 1, #list do futures[i] = self:submit(fn, list[i]) end
  for i = 1, #list do
    local ok, r = pcall(futures[i].wait, futures[i])
    if not ok then
      -- as Python's Executor.map: the jobs not started never run; the
      -- running ones are waited for, so their errors count as retrieved
      for j = i + 1, #list do
        local f = futures[j]
        if not f:cancel() and not is_cancelled(r) then
          local ok2, e2 = pcall(f.wait, f)
          if not ok2 and is_cancelled(e2) then error(e2, 0) end
        end
      end
      error(r, 0)
    end
    results[i] = r
  end
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

-- corun.tasks([opts]): the live tasks in id order; with {tree = true} the
-- roots of the task tree instead, each a node {task =, children = {nodes}},
-- a task under the task that spawned it (t.parent). A root's parent is nil
-- or has finished.
local core_tasks = core.tasks

function corun.tasks(opts)
  if opts ~= nil and type(opts) ~= "table" then
    argerror("tasks", 1, expected("table or nil", opts))
  end
  local list = core_tasks()
  if opts == nil or not opts.tree then return list end
  local nodes, roots = {}, {}
  for i = 1, #list do
    local t = list[i]
    local node = { task = t, children = {} }
    nodes[t] = node
    local p = t.parent
    local up = p ~= nil and nodes[p] or nil
    local into = up ~= nil and up.children or roots
    into[#into + 1] = node
  end
  return roots
end

function corun.dump(file)
  file = file or io.stderr
  local ok, write = pcall(function() return file.write end)
  if not ok or not callable(write) then
    argerror("dump", 1, expected("file (a value with a write method)", file))
  end
  file:write(core.dump_string())
  if file.flush then file:flush() end
end

corun.tcp = { connect = core.tcp.connect }

-- tcp.listen(host, port, handler, [opts]): each connection's stream is
-- closed when its handler ends, also when it fails.
function corun.tcp.listen(host, port, handler, opts)
  if not callable(handler) then argerror("listen", 3, expected("function", handler)) end
  return core.tcp.listen(host, port, function(stream)
    local _ <close> = stream
    return handler(stream)
  end, opts)
end
--[[ streams ]]

local Stream = core.methods("corun.stream")

-- for line in stream:lines([fmt]) do ... end: read(fmt) (default "l")
-- until the end of the stream; an I/O error is raised.
function Stream:lines(fmt)
  fmt = fmt or "l"
  return function()
    local v, err = self:read(fmt)
    if v == nil and err ~= nil and err ~= "closed" then error(err, 2) end
    return v
  end
end

-- A standard stream redirected to a regular file: the stream API over the
-- io file (reading or writing a file does not wait for a peer).
local FileStream = { lines = Stream.lines }
FileStream.__index = FileStream

function FileStream:_fill()
  local c = self.f:read(4096)
  if c == nil then return false end
  self.buf = self.buf .. c
  return true
end

-- Up to delimiter d; fmt "l" also drops a "\r" before it, "L" keeps it.
function FileStream:_until(d, fmt)
  local from = 1
  while true do
    local i = self.buf:find(d, from, true)
    if i then
      local j, r = i + #d - 1, nil
      if fmt == "L" then r = self.buf:sub(1, j)
      elseif fmt == "l" and i > 1 and self.buf:byte(i - 1) == 13 then
        r = self.buf:sub(1, i - 2)
      else r = self.buf:sub(1, i - 1) end
      self.buf = self.buf:sub(j + 1)
      return r
    end
    from = math.max(1, #self.buf - #d + 2)
    if not self:_fill() then
      if self.buf == "" then return nil end
      local r = self.buf
      self.buf = ""
      return r
    end
  end
end

function FileStream:read(fmt)
  if self.closed then return nil, "closed" end
  fmt = fmt or "l"
  if type(fmt) == "number" then
    while #self.buf < fmt and self:_fill() do end
    if self.buf == "" and fmt > 0 then return nil end
    local r = self.buf:sub(1, fmt)
    self.buf = self.buf:sub(fmt + 1)
    return r
  end
  fmt = tostring(fmt):gsub("^%*", "")
  if fmt == "a" then
    while self:_fill() do end
    local r = self.buf
    self.buf = ""
    return r
  elseif fmt == "l" or fmt == "L" then
    return self:_until("\n", fmt)
  end
  argerror("read", 1, "invalid format (use a size, \"l\", \"L\" or \"a\")")
end

function FileStream:read_until(d)
  if type(d) ~= "string" or d == "" then
    argerror("read_until", 1, "delimiter must be a non-empty string")
  end
  if self.closed then return nil, "closed" end
  return self:_until(d, "u")
end

function FileStream:write(...)
  if self.closed then return nil, "closed" end
  local ok, err = self.f:write(...)
  if not ok then return nil, err end
  self.f:flush()
  return true
end

function FileStream:close()
  self.closed = true
  return true
end
FileStream.__close = FileStream.close

function FileStream:peername()
  return nil, "ENOTSOCK: not a TCP stream"
end

-- corun.stdin, corun.stdout, corun.stderr: streams over fds 0, 1 and 2,
-- made on first use.
local stdio = { stdin = { 0, io.stdin }, stdout = { 1, io.stdout },
                stderr = { 2, io.stderr } }
-- Optional parts load on first use: corun may be built without hiredis,
-- and then only code that uses Redis hears about it.
-- corun.tls and corun.http likewise need OpenSSL and libcurl.
local lazy = { redis = "corun.redis", socket = "corun.socket",
               tls = "corun.tls", http = "corun.http", ssl = "corun.ssl" }

setmetatable(corun, { __index = function(t, k)
  local name = lazy[k]
  if name ~= nil then
    local m = require(name)
    rawset(t, k, m)
    return m
  end
  local std = stdio[k]
  if std == nil then return nil end
  local s, err = core.stdio(std[1])
  if s == false then
    s = setmetatable({ f = std[2], buf = "" }, FileStream)
  elseif s == nil then
    error("corun." .. k .. ": " .. err, 2)
  end
  rawset(t, k, s)
  return s
end })

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
corun.dns = core.dns
corun.udp = core.udp
corun.signal = core.signal

--[[ limiters, rates, broadcast and watch (composed in their own files) ]]

local limits, broadcast = require "corun.limits", require "corun.broadcast"
corun.limiter, corun.rate = limits.limiter, limits.rate
corun.broadcast, corun.watch = broadcast.broadcast, broadcast.watch
return corun
