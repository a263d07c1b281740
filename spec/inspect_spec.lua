-- spec/inspect_spec.lua: a live dump of every task on every loop when the
-- runner gets SIGQUIT (src/inspect.c), and the ways to turn it off.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local RUNNER = os.getenv("CORUN_BIN")
if RUNNER == nil then
  local pwd = io.popen("pwd")
  RUNNER = pwd:read("l") .. "/build/bin/corun"
  pwd:close()
end

-- A script whose tasks are blocked in different places, on the main loop
-- and in a thread; it prints "ready", waits for 'gate' seconds, then lets
-- everything finish and prints "finished".
local SCRIPT = [[
local corun = require "corun"
local q, lock = corun.queue(), corun.lock()
local consumer = corun.spawn(function() return q:get() end)
consumer.name = "consumer"
lock:acquire()
local locker = corun.spawn(function() lock:acquire() lock:release() end)
locker.name = "locker"
local ch = corun.channel()
local th = corun.thread(function(ch)
  local c = require "corun"
  local t = c.spawn(function() return ch:recv() end)
  t.name = "in-thread"
  return t:join()
end, ch)
%s
print("ready"); io.stdout:flush()
local done = corun.event()
corun.signal.on("usr1", function() done:set() end)
done:wait(30)
q:put(1); lock:release(); ch:send("x")
print(consumer:join(), th:join())
print("finished")
]]

local function start(extra, env)
  local path = os.tmpname()
  helper.writefile(path, SCRIPT:format(extra or ""))
  -- cwd /tmp: a process killed by SIGQUIT may leave a core file there
  local p = corun.process.spawn(RUNNER, { path },
                                { stdout = "pipe", stderr = "pipe", env = env,
                                  cwd = "/tmp" })
  assert.equal("ready", p.stdout:read("l"))
  return p, path
end

local function finish(p, path)
  p:kill("usr1")
  local out = p.stdout:read("a")
  local err = p.stderr:read("a")
  local code = p:wait()
  os.remove(path)
  return code, out, err
end

describe("SIGQUIT to the runner", function()
  after_each(helper.check)

  it("writes every task of every loop with what it waits on, and goes on",
     async(function()
    local p, path = start()
    corun.sleep(0.2)           -- the thread's task is parked by now
    assert.is_true(p:kill("quit"))
    corun.sleep(0.5)
    local code, out, err = finish(p, path)
    assert.equal(0, code)
    assert.equal("1\tx\nfinished\n", out)
    assert.matches("corun: tasks of loop 1 %(the main thread%)", err)
    assert.matches("corun: tasks of loop 2 %(a corun thread%)", err)
    assert.matches("'consumer' %(pending%) waiting in 'get' on corun.queue", err)
    assert.matches("'locker' %(pending%) waiting in 'acquire' on corun.lock", err)
    assert.matches("'in%-thread' %(pending%) waiting in 'recv' on corun.channel", err)
    assert.matches("'main' %(pending%) waiting in 'wait' on corun.event", err)
    assert.matches("stack traceback:", err)
  end))

  it("stays off when the script watches \"quit\" itself, or CORUN_SIGQUIT=0",
     async(function()
    local p, path = start([[corun.signal.on("quit", function() print("mine") end)]])
    corun.sleep(0.2)
    p:kill("quit")
    corun.sleep(0.3)
    local code, out, err = finish(p, path)
    assert.equal(0, code)
    assert.equal("mine\n1\tx\nfinished\n", out)
    assert.is_nil(err:find("tasks of loop", 1, true))

    local env = {}
    for _, k in ipairs { "PATH", "LUA_PATH", "LUA_CPATH", "LD_PRELOAD",
                         "ASAN_OPTIONS", "UBSAN_OPTIONS", "HOME" } do
      env[k] = os.getenv(k)
    end
    env.CORUN_SIGQUIT = "0"
    p, path = start(nil, env)
    corun.sleep(0.2)
    p:kill("quit")              -- the default action: the process dies
    local _, sig = p:wait()
    os.remove(path)
    assert.equal("quit", sig)
  end))
end)

-- The environment of this process plus 'extra'.
local function env_with(extra)
  local env = {}
  for _, k in ipairs { "PATH", "LUA_PATH", "LUA_CPATH", "LD_PRELOAD",
                       "ASAN_OPTIONS", "UBSAN_OPTIONS", "HOME" } do
    env[k] = os.getenv(k)
  end
  for k, v in pairs(extra) do env[k] = v end
  return env
end

local SLOW = [[
local corun = require "corun"
local t = corun.spawn(function()
  local c0 = os.clock()
  while os.clock() - c0 < 0.3 do end   -- 0.3 s of CPU without suspending
  return "done"
end)
t.name = "busy"
print(t:join())
local s = corun.stats()
print(s.longest_step ~= nil and s.longest_step >= 0.25)
local k = corun.spawn(function() while true do end end)
k.name = "runaway"
local ok, err = pcall(k.join, k)
print(ok, err:match("^[^\n]*"))
]]

local function run_slow(extra)
  local path = os.tmpname()
  helper.writefile(path, SLOW)
  local p = corun.process.spawn(RUNNER, { path }, { stdout = "pipe",
    stderr = "pipe", env = env_with(extra) })
  local out, err = p.stdout:read("a"), p.stderr:read("a")
  local code = p:wait(60)
  os.remove(path)
  return code, out, err
end

describe("slow steps (CORUN_SLOW, CORUN_SLOW_LIMIT)", function()
  after_each(helper.check)

  it("reports a task running long without suspending, and stops a runaway",
     async(function()
    local code, out, err = run_slow { CORUN_SLOW = "0.1", CORUN_SLOW_LIMIT = "2" }
    assert.equal(0, code)
    assert.matches("^done\ntrue\nfalse\t[^\n]*task 'runaway' ran for [%d.]+ s "
                   .. "without suspending %(over CORUN_SLOW_LIMIT%)\n$", out)
    assert.matches("corun: task 'busy' has run for [%d.]+ s without suspending\n"
                   .. "stack traceback:\n[^\n]*in function", err)
    assert.matches("corun: task 'runaway' has run for", err)
  end))

  it("is off by default: no report, no longest_step", async(function()
    local s = corun.stats()
    assert.is_nil(s.longest_step)
    assert.is_true(s.spawned >= 1 and s.alive >= 1 and s.switches >= 1)
  end))
end)

describe("corun.stats", function()
  after_each(helper.check)

  it("counts tasks, switches, timers and the ready queue", async(function()
    local before = corun.stats()
    local ts = {}
    for i = 1, 3 do ts[i] = corun.spawn(corun.sleep, 10) end
    local failing = corun.spawn(error, "x")
    local s = corun.stats()
    assert.equal(before.spawned + 4, s.spawned)
    assert.equal(before.alive + 4, s.alive)
    assert.is_true(s.ready >= 4)
    corun.sleep(0)
    s = corun.stats()
    assert.equal(before.timers + 3, s.timers)
    assert.equal(before.failed + 1, s.failed)
    assert.is_true(s.switches >= before.switches + 5)
    pcall(failing.join, failing)
    for _, t in ipairs(ts) do t:cancel() end
    corun.sleep(0)
    assert.equal(before.alive, corun.stats().alive)
    assert.equal("number", math.type(s.handles) and "number")
  end))
end)
