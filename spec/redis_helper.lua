-- spec/redis_helper.lua: the set-up the Redis queue specs share.
-- Inside a describe block, `local env = require("redis_helper").suite(name)`
-- adds the setup, teardown and after_each; each spec then makes its queue
-- with `corun.redis.queue(env.url, env.newname())` (spec/redis_queue_spec.lua
-- is written this way).
-- env.url, env.port: the server (CORUN_REDIS_URL, or a throwaway one);
-- env.newname(): a stream name unique to this run; env.script(code): the
-- path of a temporary file holding code (removed at teardown).

local corun = require "corun"
local helper = require "helper"

local M = {}

-- Inside a describe block: a Redis server for its tests and the usual
-- after_each check.
function M.suite(what)
  local env, n, files = {}, 0, {}
  -- busted's setup, teardown, after_each: in the spec file's environment
  local caller, G = debug.getinfo(2, "f").func, nil
  for i = 1, math.huge do
    local k, v = debug.getupvalue(caller, i)
    if k == nil then break end
    if k == "_ENV" then G = v end
  end
  local setup, teardown, after_each = G.setup, G.teardown, G.after_each
  setup(function()
    env.url, env.port, env.stop = helper.redis()
    env.prefix = helper.redis_prefix(what)
  end)
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
    env.stop()
  end)
  after_each(helper.check)
  function env.newname()
    n = n + 1
    return env.prefix .. n
  end
  function env.script(code)
    local path = os.tmpname()
    helper.writefile(path, code)
    files[#files + 1] = path
    return path
  end
  return env
end

-- redis-cli -p port args... (without the ASan preload): exit code, output.
function M.cli(port, ...)
  return corun.process.run("env",
    { "-u", "LD_PRELOAD", "redis-cli", "-p", tostring(port), ... })
end

-- A throwaway server with the append-only file on every write, in its own
-- directory (kept across restarts on the same port): url, port, restart,
-- stop. restart(signal) ends it ("term" or "kill") and starts it again.
function M.durable_server()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local args = { "--appendonly", "yes", "--appendfsync", "always",
                 "--dir", dir }
  local port, stop = helper.redis_server(args)
  local url = ("redis://127.0.0.1:%d/0"):format(port)
  local function restart(sig)
    if sig == "kill" then  -- by its process id, from INFO server
      local f = io.popen(("unset LD_PRELOAD; redis-cli -p %d info server")
                         :format(port))
      local pid = f:read("a"):match("process_id:(%d+)")
      f:close()
      if pid then os.execute("kill -KILL " .. pid .. "; sleep 0.2") end
    end
    stop()
    local _
    _, stop = helper.redis_server(args, port)
  end
  local function finish()
    stop()
    os.execute("rm -rf " .. dir)
  end
  return url, port, restart, finish
end

return M
