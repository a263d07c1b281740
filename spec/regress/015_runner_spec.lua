-- spec/regress/015_runner_spec.lua: issue 15, items 4 and 8.
-- 4. Inside the runner's main chunk corun.run(fn, ...) runs fn as a task on
--    the running loop and returns its results; from any other task it is
--    still an error, which points at the caller's line.
-- 8. A deadlock report lists every blocked task with what it waits on and
--    its stack; corun.run's deadlock error points at the user's code.

local ROOT do
  local p = io.popen("pwd")
  ROOT = p:read("l")
  p:close()
end
local RUNNER = os.getenv("CORUN_BIN") or ROOT .. "/build/bin/corun"

local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

local tmp = {}
local function script(code)
  local path = os.tmpname() .. ".lua"
  tmp[#tmp + 1] = path
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  return path
end

-- run cmd; returns exit code, stdout, stderr
local function run(cmd)
  local errf = os.tmpname()
  tmp[#tmp + 1] = errf
  local p = io.popen(cmd .. " 2>" .. q(errf))
  local out = p:read("a")
  local ok, _, code = p:close()
  local f = io.open(errf)
  local err = f:read("a")
  f:close()
  return ok and 0 or code, out, err
end

describe("issue 15: the runner", function()
  teardown(function()
    for _, p in ipairs(tmp) do os.remove(p) end
  end)

  it("corun.run(main, ...) in the main chunk runs main on the running loop",
     function()
    local path = script([[
local corun = require "corun"
local function main(a, b)
  corun.sleep(0.01)
  return a + b, "x"
end
print(corun.run(main, 1, 2))
print(corun.run({ clock = "real" }, main, 3, 4))
local ok, e = pcall(corun.run, function() error("inner", 0) end)
print(ok, (e:match("^[^\n]*")))
local t = corun.spawn(function()
  return pcall(corun.run, function() end)
end)
local ok, err = t:join()
print(ok, err:match("cannot be called from inside a running loop") ~= nil)
print(select("#", corun.run(function() end)))
local ok2, e2 = pcall(function()
  corun.run({ clock = "virtual" }, function() end)
end)
print(e2:match("^[^:]*:(%d+): corun.run: the runner's loop has a real clock"))
]])
    local code, out, err = run(q(RUNNER) .. " " .. q(path))
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("3\tx\n7\tx\nfalse\tinner\nfalse\ttrue\n0\n17\n", out)
  end)

  it("a nested corun.run's error names the caller's line, not init.lua",
     function()
    local path = script([[
local corun = require "corun"
local ok, e = pcall(corun.run, function()
  corun.run(function() end)
end)
print(e:match("^[^\n]*"))
]])
    local code, out, err = run("lua5.4 " .. q(path))
    assert.equal(0, code, err)
    assert.equal(path .. ":3: corun.run: cannot be called from inside a "
                 .. "running loop (spawn a task or join one instead)\n", out)
  end)

  it("corun.run's deadlock error points at the caller and lists the tasks",
     function()
    local path = script([[
local corun = require "corun"
local ok, e = pcall(function()
  corun.run(function()
    corun.spawn(function() corun.event():wait() end)
    corun.queue():get()
  end)
end)
io.write(e)
]])
    local code, out, err = run("lua5.4 " .. q(path))
    assert.equal(0, code, err)
    assert.equal(path .. ":3: corun.run: deadlock: the main task is blocked",
                 out:match("^[^\n]*"):match("^.-blocked"))
    assert.truthy(out:find("corun.task 'main' (pending) waiting in 'get' on "
                           .. "corun.queue", 1, true), out)
    assert.truthy(out:find("corun.task 'task-2' (pending) waiting in 'wait' "
                           .. "on corun.event", 1, true), out)
    assert.truthy(out:find(path .. ":5:", 1, true), out)
    assert.truthy(out:find(path .. ":4:", 1, true), out)
  end)

  it("the runner's deadlock report lists every blocked task and its stack",
     function()
    local path = script([[
local corun = require "corun"
local lock = corun.lock()
lock:acquire()
corun.spawn(function()
  lock:acquire()
end)
corun.queue():get()
]])
    local code, out, err = run(q(RUNNER) .. " " .. q(path))
    assert.equal(1, code)
    assert.equal("", out)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("corun: deadlock: the main chunk is blocked and nothing "
                 .. "left can wake it", lines[1])
    assert.truthy(lines[2]:find("^corun.task 'main' %(pending%) waiting in "
                                .. "'get' on corun.queue"), err)
    assert.truthy(err:find("corun.task 'task-2' (pending) waiting in "
                           .. "'acquire' on corun.lock", 1, true), err)
    assert.truthy(err:find(path .. ":7: in main chunk", 1, true), err)
    assert.truthy(err:find(path .. ":5:", 1, true), err)
    assert.falsy(err:find("corun: cancelled", 1, true), err)
  end)
end)
