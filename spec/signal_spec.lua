-- spec/signal_spec.lua: corun.signal (src/signal.c): wait and on, and the
-- runner's SIGINT default when a script handles "int" itself.
-- Signals are only sent while this process watches them (else their
-- default action would end busted); "int" is tested on runner processes.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async = cb.async
local signal = corun.signal

local PID = tonumber(io.open("/proc/self/stat"):read("l"):match("^%d+"))

-- Send signal 'name' to this process (os.execute blocks until sent).
local function kill(name)
  assert(os.execute(("kill -%s %d"):format(name:upper(), PID)))
end

-- Send it from a child process after 'delay' seconds.
local function kill_later(name, delay)
  assert(os.execute(("(sleep %s; kill -%s %d) >/dev/null 2>&1 &")
                    :format(delay, name:upper(), PID)))
end

local function both(...) return { n = select("#", ...), ... } end

local function raises(text, fn, ...)
  local e = catch(fn, ...)
  assert(e ~= nil, "did not raise (expected '" .. text .. "')")
  assert(tostring(e):find(text, 1, true),
         ("expected '%s' in the error, got: %s"):format(text, tostring(e)))
end

-- Sleep until pred() holds (at most 'max' seconds).
local function until_true(pred, max)
  local deadline = corun.time() + (max or 5)
  while not pred() and corun.time() < deadline do corun.sleep(0.005) end
  return pred()
end

describe("corun.signal", function()
  after_each(helper.check)

  describe("wait", function()
    it("returns the name when the signal arrives", async(function()
      local t = corun.spawn(signal.wait, "usr1")
      corun.sleep(0.01)
      kill("usr1")
      assert.same(both("usr1"), both(t:join()))
    end))

    it("wakes on a signal sent by a child process", async(function()
      kill_later("usr2", 0.05)
      local t0 = corun.time()
      assert.same(both("usr2"), both(signal.wait("usr2", 5)))
      assert.is_true(corun.time() - t0 < 4)
    end))

    it("keeps the loop alive while it waits", function()
      kill_later("hup", 0.05)
      -- nothing else can wake the main task: no deadlock error
      assert.equal("hup", corun.run(signal.wait, "hup"))
    end)

    it("wakes every waiting task", async(function()
      local tasks = {}
      for i = 1, 5 do tasks[i] = corun.spawn(signal.wait, "winch") end
      corun.sleep(0.01)
      kill("winch")
      for i = 1, 5 do assert.equal("winch", tasks[i]:join()) end
    end))

    it("times out", async(function()
      local t0 = corun.time()
      assert.same(both(nil, "timeout"), both(signal.wait("usr1", 0.03)))
      assert.is_true(corun.time() - t0 >= 0.03)
      assert.same(both(nil, "timeout"), both(signal.wait("term", 0)))
    end))

    it("can be cancelled", async(function()
      local t = corun.spawn(signal.wait, "usr1")
      corun.sleep(0.01)
      t:cancel()
      assert.is_true(corun.is_cancelled(catch(t.join, t)))
      -- the watcher is still usable
      local u = corun.spawn(signal.wait, "usr1", 5)
      corun.sleep(0.01)
      kill("usr1")
      assert.equal("usr1", u:join())
    end))

    it("works with corun.timeout", async(function()
      local e = catch(corun.timeout, 0.02, signal.wait, "usr2")
      assert.is_true(corun.is_timeout(e), tostring(e))
    end))

    it("only sees signals that arrive while it waits", async(function()
      local h = signal.on("usr1", function() end)  -- keeps the process safe
      kill("usr1")
      corun.sleep(0.02)
      assert.same(both(nil, "timeout"), both(signal.wait("usr1", 0.02)))
      h:cancel()
    end))

    it("does not keep the loop alive once it is over", function()
      corun.run(function() signal.wait("usr2", 0.01) end)
      local t0 = os.time()
      corun.run(function() end)
      assert.is_true(os.time() - t0 < 2)
    end)
  end)

  describe("on", function()
    it("calls fn(name) each time the signal arrives", async(function()
      local got = {}
      local h = signal.on("usr1", function(name) got[#got + 1] = name end)
      kill("usr1")
      assert.is_true(until_true(function() return #got == 1 end))
      kill("usr1")
      assert.is_true(until_true(function() return #got == 2 end))
      assert.same({ "usr1", "usr1" }, got)
      assert.is_true(h:cancel())
    end))

    it("runs fn as a callback, not in the libuv callback", async(function()
      local where
      local h = signal.on("usr2", function()
        where = corun.current() == nil and "callback" or "task"
        corun.call_soon(function() end)  -- may use the loop
      end)
      kill("usr2")
      assert.is_true(until_true(function() return where ~= nil end))
      assert.equal("callback", where)
      h:cancel()
    end))

    it("calls every handler, in registration order", async(function()
      local log = {}
      local a = signal.on("hup", function() log[#log + 1] = "a" end)
      local b = signal.on("hup", function() log[#log + 1] = "b" end)
      local c = signal.on("usr1", function() log[#log + 1] = "c" end)
      kill("hup")
      assert.is_true(until_true(function() return #log == 2 end))
      assert.same({ "a", "b" }, log)
      a:cancel()
      kill("hup")
      assert.is_true(until_true(function() return #log == 3 end))
      assert.same({ "a", "b", "b" }, log)
      b:cancel()
      c:cancel()
    end))

    it("wakes waiters and handlers alike", async(function()
      local n = 0
      local h = signal.on("usr2", function() n = n + 1 end)
      local t = corun.spawn(signal.wait, "usr2")
      corun.sleep(0.01)
      kill("usr2")
      assert.equal("usr2", t:join())
      assert.is_true(until_true(function() return n == 1 end))
      h:cancel()
    end))

    it("stops after cancel", async(function()
      local n = 0
      local h = signal.on("usr1", function() n = n + 1 end)
      local keep = signal.on("usr1", function() end)  -- so usr1 is caught
      assert.is_false(h:cancelled())
      assert.is_true(h:cancel())
      assert.is_false(h:cancel())
      assert.is_true(h:cancelled())
      assert.truthy(tostring(h):find("corun.signal_handler (usr1, "
                                     .. "cancelled)", 1, true))
      kill("usr1")
      corun.sleep(0.05)
      assert.equal(0, n)
      keep:cancel()
    end))

    it("does not keep the loop alive by itself", function()
      local h
      local t0 = os.time()
      corun.run(function()
        h = signal.on("term", function() end)
      end)
      assert.is_true(os.time() - t0 < 2)
      assert.is_false(h:cancelled())  -- still registered after the run
      assert.is_true(h:cancel())
    end)

    it("keeps its handlers across runs", function()
      local n = 0
      local h = signal.on("usr2", function() n = n + 1 end)
      corun.run(function()
        kill("usr2")
        until_true(function() return n == 1 end)
      end)
      corun.run(function()
        kill("usr2")
        until_true(function() return n == 2 end)
      end)
      h:cancel()
      assert.equal(2, n)
    end)

    it("can be registered outside a run", function()
      local h = signal.on("winch", function() end)
      assert.is_true(h:cancel())
    end)
  end)

  describe("arguments", function()
    it("raises on unknown names and bad arguments", async(function()
      raises("bad argument #1 to 'signal.wait' (unknown signal 'kill'",
             signal.wait, "kill")
      raises("bad argument #1 to 'signal.wait' (string expected, got "
             .. "number)", signal.wait, 15)
      raises("bad argument #2 to 'signal.wait' (timeout must be a number "
             .. ">= 0)", signal.wait, "usr1", -1)
      raises("bad argument #2 to 'signal.wait' (timeout", signal.wait,
             "usr1", 0 / 0)
      raises("bad argument #1 to 'signal.on' (unknown signal 'INT'",
             signal.on, "INT", print)
      raises("bad argument #1 to 'signal.on' (string expected, got nil)",
             signal.on, nil, print)
      raises("bad argument #2 to 'signal.on' (function expected, got no "
             .. "value)", signal.on, "usr1")
      local h = signal.on("usr1", print)
      raises("corun.signal_handler expected", h.cancel, {})
      assert.is_true(h:cancel())
    end))

    it("wait must be called from inside a task", function()
      raises("signal.wait: must be called from inside a task", signal.wait,
             "usr1")
    end)
  end)
end)

describe("the runner and SIGINT", function()
  local ROOT do
    local p = io.popen("pwd")
    ROOT = p:read("l")
    p:close()
  end
  local RUNNER = os.getenv("CORUN_RUNNER") or ROOT .. "/build/bin/corun"

  local tmpfiles = {}
  local function tmpname()
    local n = os.tmpname()
    tmpfiles[#tmpfiles + 1] = n
    return n
  end

  after_each(function()
    for _, f in ipairs(tmpfiles) do os.remove(f) end
    tmpfiles = {}
  end)

  -- As in runner_spec: start the runner on 'code', wait until it printed
  -- "ready", send SIGINT (twice with 'twice'); returns the exit status (a
  -- string), stdout and stderr. A watchdog kills a runner that hangs.
  local function interrupt(code, twice)
    local path, out, err, wrapper = tmpname(), tmpname(), tmpname(),
                                    tmpname()
    helper.writefile(path, 'local corun = require "corun"\n' .. code)
    helper.writefile(wrapper, [[
runner=$1 script=$2 out=$3 err=$4 twice=$5
"$runner" "$script" >"$out" 2>"$err" &
pid=$!
i=0
until grep -q ready "$out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 200 ]; then kill -KILL $pid; echo never-ready; exit 0; fi
  sleep 0.05
done
kill -INT $pid
if [ "$twice" = yes ]; then sleep 0.2; kill -INT $pid; fi
( sleep 5; kill -KILL $pid ) >/dev/null 2>&1 &
wd=$!
wait $pid
status=$?
kill $wd 2>/dev/null
echo $status
]])
    local p = io.popen(("sh %s %s %s %s %s %s 2>/dev/null"):format(
      wrapper, RUNNER, path, out, err, twice and "yes" or "no"))
    local status = p:read("l")
    p:close()
    return status, helper.readfile(out), helper.readfile(err)
  end

  local READY = 'print("ready") io.stdout:flush()\n'

  -- A handler does not keep the runner alive: these scripts sleep.
  it("exits 0 when the script handles \"int\" with on", function()
    local status, out, err = interrupt([[
      local got
      local h = corun.signal.on("int", function(name)
        print("got " .. name)
        got = true
      end)
      ]] .. READY .. [[
      while not got do corun.sleep(0.01) end
      h:cancel()
      print("done")
    ]])
    assert.equal("0", status, err)
    assert.equal("ready\ngot int\ndone\n", out)
  end)

  it("exits 0 when the script waits for \"int\"", function()
    local status, out, err = interrupt([[
      local t = corun.spawn(corun.signal.wait, "int")
      corun.sleep(0.05)
      ]] .. READY .. [[
      print(t:join())
    ]])
    assert.equal("0", status, err)
    assert.equal("ready\nint\n", out)
  end)

  it("lets the script catch SIGINT repeatedly", function()
    local status, out, err = interrupt([[
      local n = 0
      local h = corun.signal.on("int", function() n = n + 1 end)
      ]] .. READY .. [[
      while n < 2 do corun.sleep(0.01) end
      h:cancel()
      print(n)
    ]], true)
    assert.equal("0", status, err)
    assert.equal("ready\n2\n", out)
  end)

  it("restores the default once the handler is cancelled", function()
    local status, out, err = interrupt([[
      corun.signal.on("int", function() end):cancel()
      ]] .. READY .. [[
      corun.sleep(30)
      print("not reached")
    ]])
    assert.equal("130", status, err)
    assert.equal("ready\n", out)
  end)

  it("does not stay alive for an \"int\" handler alone", function()
    local path, out = tmpname(), tmpname()
    helper.writefile(path, [[
      local corun = require "corun"
      corun.signal.on("int", function() end)
      corun.signal.on("term", function() end)
      print("end")
    ]])
    local _, _, code = os.execute(("timeout -s KILL 10 %s %s >%s 2>&1")
                                  :format(RUNNER, path, out))
    assert.equal(0, code)
    assert.equal("end\n", helper.readfile(out))
  end)
end)
