-- spec/runner_spec.lua: the corun runner binary (src/main.c), driven through
-- the shell with temporary scripts.

local helper = require "helper"
local readfile, writefile = helper.readfile, helper.writefile

local function is_file(path)
  return os.execute("test -f '" .. path .. "' && test -x '" .. path .. "'")
    == true
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

local ROOT do
  local p = io.popen("pwd")
  ROOT = p:read("l")
  p:close()
end
-- CORUN_RUNNER selects another build (e.g. a sanitizer one).
local RUNNER = os.getenv("CORUN_RUNNER") or ROOT .. "/build/bin/corun"
if not is_file(RUNNER) then RUNNER = ROOT .. "/build/corun" end

local tmpfiles = {}
local function tmpname(suffix)
  local base = os.tmpname() -- creates the file
  tmpfiles[#tmpfiles + 1] = base
  if not suffix then return base end
  tmpfiles[#tmpfiles + 1] = base .. suffix
  return base .. suffix
end

local function script(code)
  local path = tmpname(".lua")
  writefile(path, code)
  return path
end

-- Run the runner with a raw argument string; returns status, stdout, stderr.
-- A watchdog (timeout) turns a hang into status 124.
local function corun(args, stdin)
  local out, err = tmpname(), tmpname()
  local cmd = ("timeout -s KILL 20 %s %s >%s 2>%s"):format(
    shell_quote(RUNNER), args, out, err)
  if stdin then
    local inp = tmpname()
    writefile(inp, stdin)
    cmd = cmd .. " <" .. inp
  end
  local _, _, code = os.execute(cmd)
  return code, readfile(out), readfile(err)
end

local function run_script(code, args)
  return corun(shell_quote(script(code)) .. " " .. (args or ""))
end

local PRELUDE = 'local corun = require "corun"\n'

describe("the corun runner", function()
  after_each(function()
    for _, f in ipairs(tmpfiles) do os.remove(f) end
    tmpfiles = {}
    helper.check()
  end)

  it("exists", function()
    assert.is_true(is_file(RUNNER), RUNNER)
  end)

  it("runs a script and exits 0", function()
    local code, out = run_script('print("hello", 1 + 1)')
    assert.equal(0, code)
    assert.equal("hello\t2\n", out)
  end)

  it("runs the script as a task", function()
    local code, out = run_script(PRELUDE .. [[
      corun.sleep(0.01)
      print(corun.current():status())
    ]])
    assert.equal(0, code)
    assert.equal("running\n", out)
  end)

  it("sets arg and ... as lua does", function()
    local path = script([[
      print(arg[0], #arg, arg[1], arg[2], select("#", ...), ...)
    ]])
    local code, out = corun(shell_quote(path) .. " one 'two words'")
    assert.equal(0, code)
    assert.equal(path .. "\t2\tone\ttwo words\t2\tone\ttwo words\n", out)
  end)

  it("exits 1 when the main chunk fails, with the error on stderr",
  function()
    local code, out, err = run_script('print("before")\nerror("main boom")')
    assert.equal(1, code)
    assert.equal("before\n", out)
    assert.truthy(err:find("main boom", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("cancels the other tasks when the main chunk fails", function()
    local code, out = run_script(PRELUDE .. [[
      corun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          print("task cleanup")
        end })
        corun.sleep(30)
      end)
      corun.sleep(0)
      error("main boom")
    ]])
    assert.equal(1, code)
    assert.equal("task cleanup\n", out)
  end)

  it("exits 1 on an unretrieved task error, naming the task", function()
    local code, out, err = run_script(PRELUDE .. [[
      local t = corun.spawn(function()
        corun.sleep(0.01)
        error("task boom")
      end)
      t.name = "worker-x"
      print("main done")
    ]])
    assert.equal(1, code)
    assert.equal("main done\n", out)
    assert.truthy(err:find("worker-x", 1, true), err)
    assert.truthy(err:find("task boom", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("exits 0 when a task error was retrieved", function()
    local code, out, err = run_script(PRELUDE .. [[
      local t = corun.spawn(error, "handled")
      print(pcall(t.join, t))
    ]])
    assert.equal(0, code, err)
    assert.truthy(out:find("^false\thandled"), out)
  end)

  it("exits 1 when a callback fails, and keeps running", function()
    local code, out, err = run_script(PRELUDE .. [[
      corun.call_soon(function() error("cb boom") end)
      corun.sleep(0.01)
      print("after")
    ]])
    assert.equal(1, code)
    assert.equal("after\n", out)
    assert.truthy(err:find("cb boom", 1, true), err)
  end)

  it("stays alive until timers and tasks are finished", function()
    local code, out = run_script(PRELUDE .. [[
      corun.spawn(function() corun.sleep(0.2) print("task") end)
      corun.call_later(0.3, function() print("timer") end)
      print("main")
    ]])
    assert.equal(0, code)
    assert.equal("main\ntask\ntimer\n", out)
  end)

  it("exits when only tasks blocked forever remain; their cleanup runs",
  function()
    local code, out = run_script(PRELUDE .. [[
      corun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          print("blocked cleanup")
        end })
        corun.queue():get()
      end)
      print("main")
    ]])
    assert.equal(0, code)
    assert.equal("main\nblocked cleanup\n", out)
  end)

  it("exits 1 with a deadlock error when the main chunk is blocked forever",
  function()
    local code, out, err = run_script(PRELUDE .. [[
      local _ <close> = setmetatable({}, { __close = function()
        print("main cleanup")
      end })
      corun.queue():get()
    ]])
    assert.equal(1, code)
    assert.equal("main cleanup\n", out)
    assert.truthy(err:find("deadlock", 1, true), err)
  end)

  it("exits 1 on a syntax error in the script", function()
    local code, out, err = run_script("x = = 1")
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find("near '='", 1, true), err)
  end)

  it("runs -e code", function()
    local code, out = corun([[-e 'local corun = require "corun"
      corun.sleep(0.01) print(6 * 7)']])
    assert.equal(0, code)
    assert.equal("42\n", out)
    code = corun([[-e 'error("e boom")']])
    assert.equal(1, code)
  end)

  it("runs a script from stdin with -", function()
    local code, out = corun("-", PRELUDE .. 'corun.sleep(0) print("stdin")')
    assert.equal(0, code)
    assert.equal("stdin\n", out)
  end)

  it("prints its version", function()
    local code, out = corun("--version")
    assert.equal(0, code)
    assert.truthy(out:find("corun 0.1.0", 1, true), out)
  end)

  it("prints help", function()
    local code, out, err = corun("--help")
    assert.equal(0, code)
    local text = out .. err
    assert.truthy(text:find("-e", 1, true), text)
    assert.truthy(text:lower():find("usage", 1, true), text)
  end)

  it("exits 2 with a one-line error for a missing script", function()
    local code, out, err = corun("/nonexistent/dir/missing.lua")
    assert.equal(2, code)
    assert.equal("", out)
    assert.truthy(err:find("missing.lua", 1, true), err)
    assert.truthy(err:match("^[^\n]+\n$"), err)
  end)

  -- Start the runner on 'code' in the background, wait until it printed
  -- "ready", send SIGINT; returns the exit status (as a string) and stdout.
  -- A watchdog kills a runner that ignores the signal (status 137).
  local function interrupt(code)
    local path = script(PRELUDE .. code)
    local out, err = tmpname(), tmpname()
    local wrapper = tmpname(".sh")
    writefile(wrapper, [[
runner=$1 script=$2 out=$3 err=$4
"$runner" "$script" >"$out" 2>"$err" &
pid=$!
i=0
until grep -q ready "$out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 200 ]; then kill -KILL $pid; echo never-ready; exit 0; fi
  sleep 0.05
done
kill -INT $pid
( sleep 5; kill -KILL $pid ) >/dev/null 2>&1 &
wd=$!
wait $pid
status=$?
kill $wd 2>/dev/null
echo $status
]])
    local p = io.popen(("sh %s %s %s %s %s 2>/dev/null"):format(
      shell_quote(wrapper), shell_quote(RUNNER), shell_quote(path), out, err))
    local status = p:read("l")
    p:close()
    return status, readfile(out), readfile(err)
  end

  local CLEANUP = [[
    local _ <close> = setmetatable({}, { __close = function()
      print("cleanup ran")
    end })
    print("ready")
    io.stdout:flush()
  ]]

  it("exits 130 after SIGINT, once the main task's cleanup ran", function()
    local status, out, err = interrupt(CLEANUP .. [[
      corun.sleep(30)
      print("not reached")
    ]])
    assert.equal("130", status, err)
    assert.equal("ready\ncleanup ran\n", out)
  end)

  it("handles SIGINT while tasks keep the loop busy", function()
    local status, out, err = interrupt(CLEANUP .. [[
      corun.spawn(function() while true do corun.sleep(0) end end)
      while true do corun.sleep(0) end
    ]])
    assert.equal("130", status, err)
    assert.equal("ready\ncleanup ran\n", out)
  end)

  it("cancels the remaining tasks on SIGINT after the main chunk ended",
  function()
    local status, out, err = interrupt([[
      corun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          print("task cleanup")
        end })
        corun.sleep(30)
      end)
      print("ready")
      io.stdout:flush()
    ]])
    assert.equal("130", status, err)
    assert.equal("ready\ntask cleanup\n", out)
  end)
end)
