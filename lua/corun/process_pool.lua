--[[
** corun.process_pool: corun.process.pool([n]), the master side of the
** master-worker pattern. Each worker is a separate `corun` process (running
** corun.worker) fed one job at a time by a task of the master over its
** stdio. A worker that crashes or exits fails only the job it held (its
** future raises "worker died ...") and is replaced; the master never dies
** with a worker. Jobs are functions without upvalues other than _ENV, with
** arguments and results the codec can copy (no handles: they cannot leave
** the process).
--]]

local core = require "corun.core"

local pack, unpack = table.pack, table.unpack
local spawn = core.spawn

--[[ futures: corun's one future type (src/future.c), completed here with
     _start (false: it was cancelled before it started), _resolve and
     _fail. A failed job whose error nobody retrieved is reported when its
     future is released, and makes the runner exit 1. ]]

--[[ the workers ]]

local function runner_path()
  local env = os.getenv("CORUN_BIN")
  if env and env ~= "" then return env end
  local exe = core.process.exe()
  if exe and exe:match("/corun$") then return exe end
  local so = package.searchpath("corun.core", package.cpath)
  local dir = so and so:match("^(.*)/corun/core%.so$")
  if dir then
    for _, p in ipairs { dir .. "/bin/corun", dir .. "/../../../bin/corun" } do
      local f = io.open(p)
      if f then f:close() return p end
    end
  end
  return "corun"
end

local function start(pool)
  local p, err = core.process.spawn(pool.runner,
    { "-e", 'require("corun.worker")()' },
    { stdin = "pipe", stdout = "pipe", stderr = "inherit",
      keepalive = false })  -- an idle pool does not keep the runner alive
  if not p then error("process.pool: cannot start a worker: " .. err, 0) end
  p.stdin:_ref(false)   -- an idle worker keeps nothing alive: only a job
  p.stdout:_ref(false)  -- in flight does (see ask)
  return p
end

-- The largest answer frame accepted: a longer header is taken as garbage.
local MAXANSWER = 1 << 30

-- Send one job to worker process p; return the answer frame, or nil when
-- the worker died with it (nil, why when its answer was corrupt), or false
-- when it was dead before (the job was never sent).
local function ask(p, frame)
  if not p.stdin:write(string.pack(">s4", frame)) then return false end
  p:_ref(true)          -- until the answer, or the end of its pipe
  p.stdout:_ref(true)   -- (the child's exit may be seen before that)
  local why
  local ok, answer = pcall(function()
    local header = p.stdout:read(4)
    if header == nil or #header < 4 then return nil end
    local n = string.unpack(">I4", header)
    if n > MAXANSWER then
      why = ("corrupt answer from the worker (a frame of %d bytes)")
        :format(n)
      return nil
    end
    local data = p.stdout:read(n)
    if data == nil or #data < n then return nil end  -- died mid-answer
    return data
  end)
  p.stdout:_ref(false)
  p:_ref(false)
  if not ok then error(answer, 0) end
  return answer, why
end

-- The outcome in answer frame s: true, results (a table) or false, error;
-- nil, why when the frame is not a valid answer.
local function decode(s)
  local ok, res = pcall(function() return pack(core.codec_load(s)) end)
  if not ok then
    return nil, "corrupt answer from the worker: "
      .. tostring(res):gsub("^[^\n]-:%d+: ", "")
  end
  if res[1] == true then return true, pack(unpack(res, 2, res.n)) end
  if res[1] == false and type(res[2]) == "string" then return false, res[2] end
  return nil, "corrupt answer from the worker: not an answer"
end

local function died(p)
  p.stdin:close()
  p:_ref(true)
  local code, sig = p:wait()
  return ("worker died (exit code %s%s)"):format(tostring(code),
    sig and ", signal " .. sig or "")
end

-- The master's task for one worker slot: feed it jobs until the pool is
-- closed and drained; replace the process when it dies.
local function manage(pool)
  local p = start(pool)
  local ok, err = pcall(function()
    for job in pool.jobs:iter() do
      if job.future:_start() then
        if p:wait(0) ~= nil then  -- it died while idle: replace it first
          died(p)
          p = start(pool)
        end
        local answer, why = ask(p, job.frame)
        if answer == false then  -- died while idle: its replacement does it
          died(p)
          p = start(pool)
          answer, why = ask(p, job.frame)
        end
        local done, res
        if answer then done, res = decode(answer) end
        if done == nil then
          why = why or res
          if why then p:kill("kill") end  -- out of step: replace it
          local death = died(p)
          job.future:_fail(why or death)
          p = start(pool)
        elseif done then
          job.future:_resolve(unpack(res, 1, res.n))
        else
          job.future:_fail(res)
        end
      end
    end
  end)
  p.stdin:close()
  if not ok then p:kill("kill") end
  p:_ref(true)  -- the child's exit is what we wait for now
  p:wait()
  if not ok then error(err, 0) end
end

--[[ the pool ]]

local Pool = {}
Pool.__index = Pool

-- pool:submit(fn, ...) -> future
function Pool:submit(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'submit' (function expected)", 2)
  end
  if self.jobs:closed() then error("submit: the pool is closed", 2) end
  local ok, frame = pcall(core.codec_dump, fn, ...)
  if not ok then error((frame:gsub("^[^\n]-:%d+: ", "")), 2) end
  local f = core.future()
  self.jobs:put({ frame = frame, future = f })
  return f
end

-- pool:map(fn, list) -> results in list order (raises the first error).
function Pool:map(fn, list)
  local futures, results = {}, {}
  for i = 1, #list do futures[i] = self:submit(fn, list[i]) end
  for i = 1, #list do
    local ok, r = pcall(futures[i].wait, futures[i])
    if not ok then
      -- as Python's Executor.map: the jobs not started never run; the
      -- running ones are waited for, so their errors count as retrieved
      for j = i + 1, #list do
        local f = futures[j]
        if not f:cancel() and not core.is_cancelled(r) then
          local ok2, e2 = pcall(f.wait, f)
          if not ok2 and core.is_cancelled(e2) then error(e2, 0) end
        end
      end
      error(r, 0)
    end
    results[i] = r
  end
  return results
end

-- pool:close(): queued jobs still run; then the workers exit.
function Pool:close()
  self.jobs:close()
end

-- pool:join(): wait until the closed pool's workers have exited.
function Pool:join()
  if not self.jobs:closed() then error("join: close the pool first", 2) end
  for _, t in ipairs(self.managers) do t:join() end
end

function Pool:size()
  return #self.managers
end

local M = {}

function M.new(n)
  n = n or core.process.cpus()
  if math.type(n) ~= "integer" or n < 1 or n > 1024 then
    error("bad argument #1 to 'pool' (size must be 1..1024)", 3)
  end
  local pool = setmetatable({ jobs = core.queue(), managers = {},
                              runner = runner_path() }, Pool)
  for i = 1, n do pool.managers[i] = spawn(manage, pool) end
  return pool
end

return M
