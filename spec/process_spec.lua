-- spec/process_spec.lua: child processes (src/process.c), process.run
-- (lua/corun/init.lua) and the process pool (lua/corun/process_pool.lua,
-- lua/corun/worker.lua).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, raises, fails = helper.both, helper.fail, helper.raises, helper.fails
local async = cb.async
local process = corun.process

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"



-- The results must be nil and an error starting with 'code: '.

-- Spawn, and make sure the child is gone at the end of the test (a child
-- left running would keep the loop alive).
local children = {}
local function spawn(cmd, args, opts)
  local p, err = process.spawn(cmd, args, opts)
  if p then children[#children + 1] = p end
  return p, err
end

local function reap()
  local list = children
  children = {}
  if #list == 0 then return end
  corun.run(function()
    for _, p in ipairs(list) do
      p:kill("kill")  -- nil, "ESRCH: ..." when it has exited
      p:wait()
    end
  end)
end

describe("corun.process.spawn", function()
  after_each(function()
    reap()
    helper.check()
  end)

  it("wait returns the exit code and no signal", async(function()
    for _, code in ipairs { 0, 1, 7, 255 } do
      local p = assert(spawn("sh", { "-c", "exit " .. code }))
      assert.same(both(code, nil), both(p:wait()))
      assert.same(both(code, nil), both(p:wait()))  -- again: same status
    end
  end))

  it("p.pid is the child's process id", async(function()
    local p = assert(spawn("sh", { "-c", "echo $$" }, { stdout = "pipe" }))
    assert(math.type(p.pid) == "integer" and p.pid > 0)
    assert.equal(tostring(p.pid), p.stdout:read("l"))
    assert.equal(0, p:wait())
    assert.truthy(tostring(p):find(tostring(p.pid), 1, true))
  end))

  it("kill with a name or a number: code 0 and the signal's name",
  async(function()
    local cases = { { nil, "term" }, { "term", "term" }, { "kill", "kill" },
                    { "int", "int" }, { "hup", "hup" }, { "usr1", "usr1" },
                    { "SIGTERM", "term" }, { 9, "kill" }, { 15, "term" } }
    for _, c in ipairs(cases) do
      local p = assert(spawn("sleep", { "10" }))
      assert.same(both(true), both(p:kill(c[1])))
      assert.same(both(0, c[2]), both(p:wait(5)))
    end
  end))

  it("a child killing itself reports the signal", async(function()
    local p = assert(spawn("sh", { "-c", "kill -9 $$" }))
    assert.same(both(0, "kill"), both(p:wait()))
  end))

  it("kill after exit: nil, 'ESRCH: ...'", async(function()
    local p = assert(spawn("true"))
    assert.equal(0, p:wait())
    fails("ESRCH", p:kill())
    fails("ESRCH", p:kill("kill"))
  end))

  it("kill with an unknown signal name raises", async(function()
    local p = assert(spawn("sleep", { "10" }))
    raises("unknown signal 'nosuch'", p.kill, p, "nosuch")
    p:kill("kill")
    p:wait()
  end))

  it("wait with a timeout: nil, 'timeout', and the status later",
  async(function()
    local p = assert(spawn("sleep", { "10" }))
    local t0 = corun.time()
    assert.same(fail("timeout"), both(p:wait(0.05)))
    assert(corun.time() - t0 >= 0.045)
    assert.same(fail("timeout"), both(p:wait(0)))
    p:kill()
    assert.same(both(0, "term"), both(p:wait(5)))
    assert.same(both(0, "term"), both(p:wait(0)))
    raises("timeout", p.wait, p, -1)
  end))

  it("several tasks can wait for one process", async(function()
    local p = assert(spawn("sh", { "-c", "sleep 0.05; exit 4" }))
    local ts = {}
    for i = 1, 3 do ts[i] = corun.spawn(function() return p:wait() end) end
    assert.equal(4, p:wait())
    for i = 1, 3 do assert.equal(4, ts[i]:join()) end
  end))

  it("a task cancelled in wait gets Cancelled; the child is unaffected",
  async(function()
    local p = assert(spawn("sleep", { "10" }))
    local t = corun.spawn(function() return p:wait() end)
    corun.sleep(0.01)
    t:cancel()
    assert(corun.is_cancelled(catch(t.join, t)))
    assert.same(fail("timeout"), both(p:wait(0.01)))
    p:kill("kill")
    assert.same(both(0, "kill"), both(p:wait()))
  end))

  it("stdin and stdout pipes: a line round trip through cat",
  async(function()
    local p = assert(spawn("cat", nil, { stdin = "pipe", stdout = "pipe" }))
    assert.is_nil(p.stderr)
    for i = 1, 100 do
      assert.is_true(p.stdin:write("line ", i, "\n"))
      assert.equal("line " .. i, p.stdout:read("l"))
    end
    p.stdin:close()
    assert.is_nil(p.stdout:read("l"))
    assert.same(both(0, nil), both(p:wait()))
  end))

  it("a large round trip through cat (writer and reader tasks)",
  async(function()
    local data = {}
    for i = 1, 40000 do data[i] = ("%08d:%s\n"):format(i, ("z"):rep(i % 50)) end
    data = table.concat(data)  -- about 1.3 MB
    local p = assert(spawn("cat", {}, { stdin = "pipe", stdout = "pipe" }))
    local writer = corun.spawn(function()
      for i = 1, #data, 10000 do
        assert(p.stdin:write(data:sub(i, i + 9999)))
      end
      p.stdin:close()
    end)
    local got = p.stdout:read("a")
    writer:join()
    assert.equal(#data, #got)
    assert.equal(data, got)
    assert.equal(0, p:wait())
  end))

  it("stderr as a pipe, separate from stdout", async(function()
    local p = assert(spawn("sh", { "-c", "echo out; echo err >&2; exit 2" },
                           { stdout = "pipe", stderr = "pipe" }))
    assert.equal("err\n", p.stderr:read("a"))
    assert.equal("out\n", p.stdout:read("a"))
    assert.equal(2, p:wait())
  end))

  it("'null' stdio: stdin reads nothing, output is dropped",
  async(function()
    local p = assert(spawn("cat", {}, { stdin = "null", stdout = "pipe" }))
    assert.equal("", p.stdout:read("a"))
    assert.equal(0, p:wait())
    p = assert(spawn("sh", { "-c", "echo dropped; echo kept >&2" },
                     { stdout = "null", stderr = "pipe" }))
    assert.is_nil(p.stdout)
    assert.equal("kept\n", p.stderr:read("a"))
    assert.equal(0, p:wait())
  end))

  it("arguments are passed as they are (numbers converted)",
  async(function()
    local p = assert(spawn("printf", { "[%s]", "a b", "", "$HOME", 42, 1.5 },
                           { stdout = "pipe" }))
    assert.equal("[a b][][$HOME][42][1.5]", p.stdout:read("a"))
    assert.equal(0, p:wait())
  end))

  it("env replaces the environment", async(function()
    local p = assert(spawn("/usr/bin/env", {},
      { env = { CORUN_A = "1", CORUN_B = "two words" }, stdout = "pipe" }))
    local lines = {}
    for line in p.stdout:read("a"):gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    table.sort(lines)
    assert.same({ "CORUN_A=1", "CORUN_B=two words" }, lines)
    assert.equal(0, p:wait())
  end))

  it("without env the environment is inherited", async(function()
    local p = assert(spawn("sh", { "-c", 'printf %s "$PATH"' },
                           { stdout = "pipe" }))
    assert.equal(os.getenv("PATH"), p.stdout:read("a"))
    assert.equal(0, p:wait())
  end))

  it("cwd sets the working directory; a missing one fails",
  async(function()
    local p = assert(spawn("pwd", {}, { cwd = "/", stdout = "pipe" }))
    assert.equal("/\n", p.stdout:read("a"))
    assert.equal(0, p:wait())
    fails("ENOENT", spawn("pwd", {}, { cwd = "/no/such/dir/corun" }))
  end))

  it("a missing executable: nil, 'ENOENT: ...'", async(function()
    assert.same(fail("ENOENT: no such file or directory"),
                both(spawn("corun-no-such-program-x")))
    fails("ENOENT", spawn("/no/such/program"))
    fails("EACCES", spawn("/etc/passwd"))  -- not executable
  end))

  it("bad options raise", async(function()
    raises("stdout", spawn, "true", {}, { stdout = "bogus" })
    raises("args[2] must be a string", spawn, "true", { "a", {} })
    raises("env", spawn, "true", {}, { env = { A = {} } })
    raises("cwd", spawn, "true", {}, { cwd = 42 })
  end))

  it("a running child keeps the runner alive", async(function()
    local code, out, err = process.run(CORUN, { "-e", [[
      local corun = require "corun"
      local p = corun.process.spawn("sleep", { "0.2" })
      corun.spawn(function() print("child exited", p:wait()) end)
    ]] })
    assert.equal(0, code, err)
    assert.equal("child exited\t0\tnil\n", out)
  end))
end)

describe("corun.process.run", function()
  after_each(helper.check)

  it("returns code, stdout, stderr and the signal", async(function()
    assert.same(both(3, "out\n", "err\n", nil),
      both(process.run("sh", { "-c", "echo out; echo err >&2; exit 3" })))
    assert.same(both(0, "", "", "term"),
      both(process.run("sh", { "-c", "kill -TERM $$" })))
  end))

  it("input is written to stdin", async(function()
    assert.same(both(0, "abc", "", nil),
                both(process.run("cat", {}, { input = "abc" })))
    local big = ("0123456789\n"):rep(50000)  -- 550 KB
    local code, out = process.run("cat", {}, { input = big })
    assert.equal(0, code)
    assert.equal(big, out)
  end))

  it("without input stdin is empty", async(function()
    assert.same(both(0, "", "", nil), both(process.run("cat")))
  end))

  it("env and cwd options", async(function()
    assert.same(both(0, "v /\n", "", nil), both(process.run("sh",
      { "-c", 'echo "$V" "$(pwd)"' }, { env = { V = "v" }, cwd = "/" })))
  end))

  it("a missing executable: nil, 'ENOENT: ...'", async(function()
    fails("ENOENT", process.run("corun-no-such-program-x"))
  end))
end)

--[[ the process pool ]]

-- The process id of the worker running a job (a job function: no upvalues).
local function worker_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

describe("corun.process.pool", function()
  after_each(helper.check)

  it("submit/wait: results, several values and nil holes", async(function()
    local pool = process.pool(2)
    assert.equal(2, pool:size())
    local f = pool:submit(function(a, b, t)
      return a + b, nil, t.list[2], { t.k, "x" }
    end, 1, 2, { list = { 10, 20 }, k = "v" })
    assert.same(both(3, nil, 20, { "v", "x" }), both(f:wait()))
    assert.is_true(f:done())
    assert.same(both(3, nil, 20, { "v", "x" }), both(f:join()))
    assert.same(both(), both(pool:submit(function() end):wait()))
    pool:close()
    pool:join()
  end))

  it("errors are re-raised by wait with the job's traceback",
  async(function()
    local pool = process.pool(1)
    local f = pool:submit(function() error("job went wrong") end)
    local e = raises("job went wrong", f.wait, f)
    assert.truthy(tostring(e):find("stack traceback:", 1, true))
    raises("42", function() pool:submit(function() error(42) end):wait() end)
    raises("cannot send results",
           function() pool:submit(function() return io.stdout end):wait() end)
    -- the worker survives errors: same process
    local a = pool:submit(worker_pid):wait()
    local again = pool:submit(function() error("again") end)
    assert.equal(a, pool:submit(worker_pid):wait())
    raises("again", again.wait, again)   -- retrieved: no report on stderr
    pool:close()
    pool:join()
  end))

  it("jobs that cannot be copied raise in submit", async(function()
    local pool = process.pool(1)
    local x = 1
    raises("upvalue 'x'", pool.submit, pool, function() return x end)
    raises("function expected", pool.submit, pool, 42)
    raises("cannot send", pool.submit, pool, worker_pid, io.stdout)
    pool:close()
    pool:join()
  end))

  it("map returns results in order; raises the first error",
  async(function()
    local pool = process.pool(2)
    local list = {}
    for i = 1, 30 do list[i] = i end
    local r = pool:map(function(x) return x * x end, list)
    for i = 1, 30 do assert.equal(i * i, r[i]) end
    assert.same({}, pool:map(function(x) return x end, {}))
    raises("three", pool.map, pool, function(x)
      if x == 3 then error("three") end
      return x
    end, { 1, 2, 3, 4 })
    pool:close()
    pool:join()
  end))

  it("jobs run in parallel on the workers", async(function()
    local pool = process.pool(2)
    local pids = pool:map(function()
      os.execute("sleep 0.1")
      local f = io.open("/proc/self/stat")
      local pid = f:read("n")
      f:close()
      return pid
    end, { 1, 2 })
    assert.are_not.equal(pids[1], pids[2])
    pool:close()
    pool:join()
  end))

  it("close: queued jobs still run, submit raises; join waits",
  async(function()
    local pool = process.pool(1)
    raises("close the pool first", pool.join, pool)
    local fs = {}
    for i = 1, 5 do fs[i] = pool:submit(function(x) return x + 100 end, i) end
    pool:close()
    raises("closed", pool.submit, pool, worker_pid)
    pool:join()
    for i = 1, 5 do
      assert.is_true(fs[i]:done())
      assert.equal(i + 100, fs[i]:wait())
    end
    pool:join()  -- again: returns at once
  end))

  it("size: n workers, default one per CPU; bad sizes raise",
  async(function()
    local pool = process.pool(3)
    assert.equal(3, pool:size())
    pool:close()
    pool:join()
    local dflt = process.pool()
    local cpus = require("corun.core").process.cpus()
    assert(cpus >= 1)
    assert.equal(cpus, dflt:size())
    dflt:close()
    dflt:join()
    raises("size", process.pool, 0)
    raises("size", process.pool, 1.5)
  end))

  it("a worker that exits fails only its job ('worker died') and is "
     .. "replaced", async(function()
    local pool = process.pool(1)
    local before = pool:submit(worker_pid):wait()
    local f = pool:submit(function() os.exit(3) end)
    local g = pool:submit(function(x) return x * 2 end, 21)
    raises("worker died (exit code 3)", f.wait, f)
    assert.equal(42, g:wait())
    local after = pool:submit(worker_pid):wait()
    assert.are_not.equal(before, after)
    pool:close()
    pool:join()
  end))

  it("a worker killed by a signal: 'worker died (exit code 0, signal "
     .. "kill)'; later jobs succeed", async(function()
    local pool = process.pool(2)
    local f = pool:submit(function()
      local s = io.open("/proc/self/stat")
      local pid = s:read("n")
      s:close()
      os.execute("kill -9 " .. pid)
      os.execute("sleep 5")  -- not reached
    end)
    local ok = pool:map(function(x) return x + 1 end, { 1, 2, 3, 4 })
    local e = raises("worker died", f.wait, f)
    assert.truthy(tostring(e):find("worker died (exit code 0, signal kill)",
                                   1, true))
    assert.same({ 2, 3, 4, 5 }, ok)
    assert.same({ 11, 12 }, pool:map(function(x) return x + 1 end, { 10, 11 }))
    pool:close()
    pool:join()
  end))

  it("cancel: a queued job never runs; a started one cannot be cancelled",
  async(function()
    local marker = os.tmpname()
    os.remove(marker)
    local pool = process.pool(1)
    local a = pool:submit(function() os.execute("sleep 0.2") return "a" end)
    local b = pool:submit(function(path)
      local f = io.open(path, "w")
      f:write("ran")
      f:close()
    end, marker)
    local c = pool:submit(function() return "c" end)
    corun.sleep(0.05)
    assert.is_false(a:cancel())  -- started
    assert.is_true(b:cancel())
    assert.is_false(b:cancel())
    assert.is_true(b:done())
    assert(corun.is_cancelled(catch(b.wait, b)))
    assert.equal("a", a:wait())
    assert.equal("c", c:wait())
    pool:close()
    pool:join()
    assert.is_nil(io.open(marker))
  end))

  it("wait with a timeout", async(function()
    local pool = process.pool(1)
    local f = pool:submit(function() os.execute("sleep 0.2") return 1 end)
    assert.same(fail("timeout"), both(f:wait(0.02)))
    assert.is_false(f:done())
    assert.equal(1, f:wait(5))
    pool:close()
    pool:join()
  end))

  it("from plain lua5.4 via corun.run; what a job prints goes to stderr "
     .. "and does not corrupt results", async(function()
    local status, out, err = helper.run_lua([[
      local corun = require "corun"
      print(corun.run(function()
        local pool = corun.process.pool(2)
        local r = pool:map(function(x)
          print("noise", x)
          io.write(string.pack(">s4", "fake frame"), "\n")
          io.stdout:flush()
          return x * 10
        end, { 1, 2, 3 })
        pool:close()
        pool:join()
        return table.concat(r, ",")
      end))
    ]])
    assert.equal(0, status, err)
    assert.equal("10,20,30\n", out)
    for x = 1, 3 do
      assert.truthy(err:find("noise\t" .. x, 1, true))
    end
  end))

  it("finds the runner next to corun/core.so without CORUN_BIN",
  async(function()
    local code, out, err = process.run("sh", { "-c",
      'unset CORUN_BIN; exec timeout -s KILL 20 lua5.4 -e "$1"', "sh", [[
        local corun = require "corun"
        print(corun.run(function()
          local pool = corun.process.pool(1)
          local r = pool:submit(function() return "found" end):wait()
          pool:close()
          pool:join()
          return r
        end))
      ]] })
    assert.equal(0, code, err)
    assert.equal("found\n", out)
  end))
end)
