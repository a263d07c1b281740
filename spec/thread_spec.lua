-- spec/thread_spec.lua: OS threads, futures, pools and loop handles
-- (src/thread.c). Channels and select are in spec/channel_spec.lua.
--
-- Every function that crosses to another thread is copied with the codec,
-- so it may use only its parameters and globals (no upvalues besides
-- _ENV): such functions start with `local corun = require "corun"` when
-- they need corun.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, raises = helper.both, helper.fail, helper.raises
local async = cb.async



local function raises_cancelled(fn, ...)
  local e = catch(fn, ...)
  assert(corun.is_cancelled(e), "expected Cancelled, got " .. tostring(e))
end

-- Child processes are started without a shell (corun.process.run), so
-- that they also work under the TSan stage of test/run.sh, where a shell
-- with libtsan preloaded crashes.
local NCPU = tonumber(corun.run(function()
  return select(2, corun.process.run("nproc"))
end):match("%d+")) or 1

-- Run Lua code in a child lua5.4 (same environment), from a task; returns
-- the exit status, stdout and stderr.
local function run_lua(code)
  local status, out, err = corun.process.run("timeout",
    { "-s", "KILL", "20", "lua5.4", "-" }, { input = code })
  return status, out, err
end

-- Poll pred() every 10 ms (in a task) until it is true; false after 'limit'
-- seconds.
local function eventually(pred, limit)
  local deadline = corun.time() + (limit or 5)
  while not pred() do
    if corun.time() > deadline then return false end
    corun.sleep(0.01)
  end
  return true
end

--[[ corun.thread ]]

describe("corun.thread", function()
  after_each(helper.check)

  it("returns a future whose join gives fn's results", async(function()
    local th = corun.thread(function(a, b) return a + b, "two", nil end, 1, 2)
    assert.matches("^corun%.future %(", tostring(th))
    assert.same(both(3, "two", nil), both(th:join()))
    assert.is_true(th:done())
    -- joined again: the same results, copied again
    assert.same(both(3, "two", nil), both(th:join()))
    assert.same(both(3, "two", nil), both(th:wait()))
    assert.same(both(), both(corun.thread(function() end):join()))
  end))

  it("runs fn in a fresh state with the standard libraries and the "
     .. "parent's package paths", async(function()
    _G.THREAD_SPEC_MARK = "parent only"
    local r = both(corun.thread(function()
      return _G.THREAD_SPEC_MARK, package.path, package.cpath,
             type(string.format), type(io.open), type(os.time),
             type(require("corun").sleep)
    end):join())
    _G.THREAD_SPEC_MARK = nil
    assert.same(both(nil, package.path, package.cpath, "function",
                     "function", "function", "function"), r)
  end))

  it("re-raises the thread's error with the thread's traceback",
  async(function()
    local th = corun.thread(function(x)
      local function inner() error("boom " .. x) end
      inner()
    end, 7)
    local e = raises("boom 7", th.join, th)
    assert.is_string(e)
    assert.matches("^.-thread_spec%.lua:%d+: boom 7", e)
    assert.matches("stack traceback:", e)
    assert.matches("in %a* ?%a* ?'?inner'?", e)
    assert.is_true(th:done())
    raises("boom 7", th.wait, th)  -- every join raises it
  end))

  it("sends a non-string error as its tostring", async(function()
    local th = corun.thread(function()
      error(setmetatable({}, { __tostring = function() return "custom" end }))
    end)
    local e = catch(th.join, th)
    assert.is_string(e)
    assert.matches("^custom", e)
    local th2 = corun.thread(function() error({}) end)
    assert.matches("^table: ", catch(th2.join, th2))
  end))

  it("makes join raise when the results cannot be copied", async(function()
    local th = corun.thread(function() return 1, io.stdout end)
    raises("cannot send results[2]: userdata value", th.join, th)
    local th2 = corun.thread(function() return { co = coroutine.running() } end)
    raises("cannot send results[1].co: coroutine value", th2.join, th2)
  end))

  it("join(timeout) returns nil, 'timeout' while the thread runs",
  async(function()
    local gate = corun.channel()
    local th = corun.thread(function(g) return "got " .. g:recv() end, gate)
    local t0 = corun.time()
    assert.same(fail("timeout"), both(th:join(0.05)))
    assert.is_true(corun.time() - t0 >= 0.045)
    assert.same(fail("timeout"), both(th:join(0)))
    assert.is_false(th:done())
    gate:send("in")
    assert.same(both("got in"), both(th:join(10)))
    assert.same(both("got in"), both(th:join(0)))
    raises("timeout must be >= 0", th.join, th, -1)
  end))

  it("copies the arguments: nested tables, cycles, shared parts",
  async(function()
    local shared = { "s" }
    local t = { 1, { 2, { 3 } }, name = "x", a = shared, b = shared }
    t.self = t
    t[2].up = t
    local r, depth = corun.thread(function(t)
      assert(t.self == t and t[2].up == t and t.a == t.b)
      t[1] = "changed in the thread"
      return t, t[2][2][1]
    end, t):join()
    assert.equal(1, t[1])  -- the parent's table is untouched
    assert.equal(3, depth)
    assert.are_not.equal(t, r)
    assert.equal("changed in the thread", r[1])
    assert.equal(r, r.self)
    assert.equal(r, r[2].up)
    assert.equal(r.a, r.b)
    assert.equal("x", r.name)
    assert.same(both(3, nil, 2, nil), both(corun.thread(function(...)
      return select("#", ...), ...
    end, nil, 2, nil):join()))
  end))

  it("copies functions without upvalues, which see the thread's globals",
  async(function()
    local r = both(corun.thread(function(f, t)
      GLOBAL_IN_THREAD = 20
      return f(1), t.g(2)
    end, function(x) return x + GLOBAL_IN_THREAD end,
       { g = function(x) return x * 2 end }):join())
    assert.same(both(21, 4), r)
    assert.is_nil(rawget(_G, "GLOBAL_IN_THREAD"))
  end))

  it("refuses what cannot be copied, naming its path", async(function()
    local x = 1
    assert.equal("cannot send args[1]: function with upvalue 'x'",
                 catch(corun.thread, function() return x end))
    assert.equal("cannot send args[3].cb: function with upvalue 'x'",
                 catch(corun.thread, function() end, 1,
                       { cb = function() x = x + 1 end }))
    assert.equal("cannot send args[2]: userdata value",
                 catch(corun.thread, function() end, io.stdout))
    assert.equal("cannot send args[2].co[1]: coroutine value",
                 catch(corun.thread, function() end,
                       { co = { coroutine.create(print) } }))
    assert.equal("cannot send args[2]: C function",
                 catch(corun.thread, function() end, print))
    raises("function expected", corun.thread, 42)
    assert.equal(1, x)
  end))

  it("keeps running a thread whose handle was dropped", async(function()
    local ch = corun.channel()
    corun.thread(function(ch)
      local corun = require "corun"
      corun.sleep(0.1)
      ch:send("finished")
    end, ch)
    collectgarbage()
    collectgarbage()
    assert.equal("finished", ch:recv(10))
  end))

  it("uses corun inside: tasks, sleeps, queues, gather", async(function()
    local th = corun.thread(function(n)
      local corun = require "corun"
      local q = corun.queue(2)
      local producer = corun.spawn(function()
        for i = 1, n do
          q:put(i)
          corun.sleep(0.001)
        end
        q:close()
      end)
      local sum = 0
      for v in q:iter() do sum = sum + v end
      producer:join()
      local r = corun.gather(function() corun.sleep(0.02) return "a" end,
                             function() return "b" end)
      local t0 = corun.time()
      corun.sleep(0.05)
      return sum, r[1], r[2], corun.time() - t0 >= 0.049,
             corun.current() ~= nil
    end, 10)
    assert.same(both(55, "a", "b", true, true), both(th:join()))
  end))

  it("does not block the parent's loop while it runs", async(function()
    local ticks = 0
    local ticker = corun.spawn(function()
      while true do
        corun.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    local th = corun.thread(function()
      local x, c0 = 0, os.clock()
      while os.clock() - c0 < 0.15 do x = x + 1 end  -- busy, no yield
      return x > 0
    end)
    assert.is_true(th:join())
    ticker:cancel()
    assert.is_true(ticks >= 3, "ticks: " .. ticks)
  end))

  it("runs threads at the same time (no lock shared between them)",
     async(function()
    -- Each thread spins without ever yielding until it sees the other's
    -- message: with any lock between threads (a GIL) they would wait for
    -- each other forever; here both finish, whatever the machine's load.
    -- How much faster several cores make CPU-bound work is a figure for
    -- make bench (the pool row), not a spec.
    local a, b = corun.channel(), corun.channel()
    local function spin(mine, other)
      local t0 = os.time()
      mine:send("here")
      while #other == 0 do
        if os.time() - t0 > 30 then return "never saw the other thread" end
      end
      return "saw it"
    end
    local t1, t2 = corun.thread(spin, a, b), corun.thread(spin, b, a)
    assert.equal("saw it", t1:join())
    assert.equal("saw it", t2:join())
  end))

  it("lets many tasks wait for one thread", async(function()
    local gate = corun.channel()
    local th = corun.thread(function(g) return g:recv() * 2 end, gate)
    local waiters = {}
    for i = 1, 10 do
      waiters[i] = corun.spawn(function() return th:join() + i end)
    end
    corun.sleep(0.02)
    gate:send(21)
    for i = 1, 10 do assert.equal(42 + i, waiters[i]:join()) end
  end))

  it("is waited for by the runner before it exits", async(function()
    local bin = os.getenv("CORUN_BIN") or "build/bin/corun"
    local src = os.tmpname()
    helper.writefile(src, [[
      local corun = require "corun"
      corun.thread(function()
        require("corun").sleep(0.3)
        io.write("thread end\n")
        io.stdout:flush()
      end)
      io.write("main end\n")
      io.stdout:flush()
    ]])
    local code, out, err = corun.process.run("timeout",
                                             { "-s", "KILL", "20", bin, src })
    os.remove(src)
    assert.equal("", err)
    assert.equal("main end\nthread end\n", out)
    assert.equal(0, code)
  end))
end)

--[[ futures ]]

describe("future", function()
  after_each(helper.check)

  it("wait and join are the same; done tells a finished job",
  async(function()
    local gate = corun.channel()
    local pool = corun.pool(1)
    local f = pool:submit(function(g) return g:recv(), "x" end, gate)
    assert.is_false(f:done())
    assert.matches("^corun%.future %((%a+)%)", tostring(f))
    assert.same(fail("timeout"), both(f:wait(0.02)))
    assert.same(fail("timeout"), both(f:join(0)))
    gate:send(5)
    assert.same(both(5, "x"), both(f:wait()))
    assert.is_true(f:done())
    assert.same(both(5, "x"), both(f:join()))
    assert.matches("^corun%.future %(done%)", tostring(f))
    raises("timeout must be >= 0", f.wait, f, -0.5)
    pool:close()
    pool:join()
  end))

  it("cancel: true only for a job not started, which then never runs",
  async(function()
    local gate, log = corun.channel(), corun.channel()
    local pool = corun.pool(1)
    local running = pool:submit(function(g, l)
      l:send("started")
      return g:recv()
    end, gate, log)
    local queued = pool:submit(function(l) l:send("queued ran") end, log)
    local later = pool:submit(function(l) l:send("later ran") return 3 end,
                              log)
    assert.equal("started", log:recv(10))  -- the worker took the first job
    assert.is_true(queued:cancel())
    assert.is_true(queued:done())
    assert.is_false(queued:cancel())
    raises_cancelled(queued.wait, queued)
    raises_cancelled(queued.join, queued)
    assert.is_false(running:cancel())  -- started: runs on
    gate:send("first")
    assert.equal("first", running:wait())
    assert.equal(3, later:wait())
    assert.is_false(later:cancel())   -- finished: keeps its results
    assert.equal(3, later:wait())
    assert.same(both("later ran"), both(log:recv(0)))
    assert.same(fail("timeout"), both(log:recv(0)))
    pool:close()
    pool:join()
  end))

  it("cancel on a started thread returns false; join gets its results",
  async(function()
    local gate = corun.channel()
    local started = corun.channel()
    local th = corun.thread(function(g, s)
      s:send(true)
      return g:recv()
    end, gate, started)
    assert.is_true(started:recv(10))
    assert.is_false(th:cancel())
    gate:send("ran")
    assert.equal("ran", th:join())
  end))

  it("a waiting task that is cancelled leaves the future usable",
  async(function()
    local gate = corun.channel()
    local th = corun.thread(function(g) return g:recv() end, gate)
    local waiter = corun.spawn(function() return th:join() end)
    corun.sleep(0.01)
    waiter:cancel()
    raises_cancelled(waiter.join, waiter)
    gate:send("still here")
    assert.equal("still here", th:join())
  end))

  it("raises when waited for from a plain callback of a running loop",
  async(function()
    local th = corun.thread(function() return 1 end)
    th:join()
    local e
    corun.call_soon(function() e = catch(th.wait, th) end)
    corun.sleep(0.01)
    assert.matches("would block the loop", e)
  end))

  it("blocks a plain lua5.4 main chunk (no loop running)", async(function()
    local status, out, err = run_lua([[
      local corun = require "corun"
      local th = corun.thread(function()
        require("corun").sleep(0.2)
        return "late", 2
      end)
      print(th:done(), th:wait(0.01))
      print(th:wait(0))
      print(th:wait())
      print(th:done(), th:join(0))
      local bad = corun.thread(function() error("plain boom") end)
      local ok, e = pcall(bad.wait, bad)
      print(ok, e:match("plain boom") ~= nil, e:match("stack traceback") ~= nil)
      local pool = corun.pool(2)
      local r = pool:map(function(x) return x * x end, { 1, 2, 3 })
      print(r[1], r[2], r[3])
      pool:close()
      pool:join()
      print("end")
    ]])
    assert.equal("", err)
    assert.equal(table.concat({
      "false\tnil\ttimeout",
      "nil\ttimeout",
      "late\t2",
      "true\tlate\t2",
      "false\ttrue\ttrue",
      "1\t4\t9",
      "end", "" }, "\n"), out)
    assert.equal(0, status)
  end))
end)

--[[ pools ]]

-- The status of a child lua5.4 running code that leaves threads behind.
local function exit_status(code)
  local status, out, err, sig = run_lua(code)
  return { status = status, signal = (sig ~= 0) and sig or nil, out = out,
           err = err }
end


describe("corun.pool", function()
  after_each(helper.check)

  it("has n workers, by default one per CPU", function()
    local p = corun.pool(3)
    assert.equal(3, p:size())
    assert.matches("^corun%.pool %(3 workers%)", tostring(p))
    p:close()
    local d = corun.pool()
    assert.equal(NCPU, d:size())
    d:close()
    raises("size must be 1..1024", corun.pool, 0)
    raises("size must be 1..1024", corun.pool, 1025)
    raises("number has no integer representation", corun.pool, 1.5)
    raises("number expected", corun.pool, "x")
  end)

  it("submit returns a future of the job's results", async(function()
    local p = corun.pool(2)
    local f = p:submit(function(a, t) return a + t.b, { t.b } end, 1, { b = 2 })
    local r1, r2 = f:wait()
    assert.equal(3, r1)
    assert.same({ 2 }, r2)
    -- each job runs as the main task of a corun.run
    assert.same(both(true, true), both(p:submit(function()
      local corun = require "corun"
      local t = corun.spawn(function() corun.sleep(0.01) return true end)
      return corun.current() ~= nil, t:join()
    end):wait()))
    p:close()
    p:join()
  end))

  it("map returns the results in the list's order", async(function()
    local p = corun.pool(4)
    local r = p:map(function(x)
      require("corun").sleep((5 - x) * 0.02)  -- the last finishes first
      return x * 10
    end, { 1, 2, 3, 4 })
    assert.same({ 10, 20, 30, 40 }, r)
    assert.same({}, p:map(function() end, {}))
    local many = {}
    for i = 1, 100 do many[i] = i end
    local sq = p:map(function(x) return x * x end, many)
    for i = 1, 100 do assert.equal(i * i, sq[i]) end
    p:close()
    p:join()
  end))

  it("gives a job's error, with its traceback, to wait and map",
  async(function()
    local p = corun.pool(2)
    local f = p:submit(function() error("job failed") end)
    local e = raises("job failed", f.wait, f)
    assert.matches("stack traceback:", e)
    e = raises("bad 2", p.map, p, function(x)
      if x >= 2 then error("bad " .. x) end
      return x
    end, { 1, 2, 3 })
    assert.matches("stack traceback:", e)
    -- the workers survive their jobs' errors
    assert.equal("fine", p:submit(function() return "fine" end):wait())
    raises("cannot send results[1]: userdata value", function()
      return p:submit(function() return io.stderr end):wait()
    end)
    p:close()
    p:join()
  end))

  it("workers keep their state from one job to the next", async(function()
    local p = corun.pool(1)
    assert.same(both(), both(p:submit(function() COUNT = 1 end):wait()))
    for i = 2, 4 do
      assert.equal(i, p:submit(function()
        COUNT = COUNT + 1
        return COUNT
      end):wait())
    end
    local f = p:submit(function() COUNT = COUNT + 1 error("after") end)
    raises("after", f.wait, f)
    assert.equal(5, p:submit(function() return COUNT end):wait())
    p:close()
    p:join()
  end))

  it("close lets queued jobs finish; join waits for the workers",
  async(function()
    local p = corun.pool(1)
    local ch = corun.channel()
    local fs = {}
    for i = 1, 5 do
      fs[i] = p:submit(function(ch, i)
        require("corun").sleep(0.01)
        ch:send(i)
        return i
      end, ch, i)
    end
    p:close()
    p:join()
    for i = 1, 5 do
      assert.is_true(fs[i]:done())
      assert.equal(i, fs[i]:wait(0))
      assert.equal(i, ch:recv(0))
    end
    p:join()  -- joining again returns at once
    p:close()
  end))

  it("submit after close raises; join before close raises", async(function()
    local p = corun.pool(1)
    raises("close the pool first", p.join, p)
    p:close()
    raises("closed", p.submit, p, function() end)
    p:join()
    raises("closed", p.submit, p, function() end)
  end))

  it("refuses bad jobs and arguments", async(function()
    local p = corun.pool(1)
    raises("function expected", p.submit, p, 42)
    raises("cannot send args[2]: userdata value", p.submit, p,
           function() end, io.stdout)
    local x = 0
    raises("cannot send args[1]: function with upvalue 'x'", p.submit, p,
           function() return x end)
    assert.equal(1, p:submit(function() return 1 end):wait())
    p:close()
    p:join()
  end))

  it("runs queued jobs of a pool that was dropped unclosed", async(function()
    local ch = corun.channel()
    do
      local p = corun.pool(1)
      for i = 1, 3 do
        p:submit(function(ch, i) ch:send(i) end, ch, i)
      end
    end
    collectgarbage()
    collectgarbage()
    for i = 1, 3 do assert.equal(i, ch:recv(10)) end
  end))

  it("lets a lua5.4 process exit cleanly with live workers or threads",
  async(function()
    local ok = { status = 0, out = "done\n", err = "" }
    assert.same(ok, exit_status([[
      print(require("corun").to_thread(function() return "done" end))
    ]]))
    assert.same(ok, exit_status([[
      local corun = require "corun"
      local p = corun.pool(2)
      p:submit(function() end):wait()
      p:close()  -- not joined
      print("done")
    ]]))
    assert.same(ok, exit_status([[
      local corun = require "corun"
      corun.thread(function() require("corun").sleep(0.2) end)
      print("done")
    ]]))
  end))

  it("to_thread runs fn on the default pool", async(function()
    assert.same(both("a", 2), both(corun.to_thread(function(a, b)
      return a, b * 2
    end, "a", 1)))
    raises("in to_thread", corun.to_thread, function() error("in to_thread") end)
    -- the loop goes on while the job blocks its worker
    local ticks = 0
    local ticker = corun.spawn(function()
      while true do corun.sleep(0.01) ticks = ticks + 1 end
    end)
    corun.to_thread(function()
      local c0 = os.clock()
      while os.clock() - c0 < 0.1 do end
    end)
    ticker:cancel()
    assert.is_true(ticks >= 3, "ticks: " .. ticks)
  end))
end)

--[[ loop handles ]]

describe("corun.loop", function()
  after_each(helper.check)

  it("call_soon_threadsafe from another thread runs fn in this loop",
  async(function()
    local lh = corun.loop()
    assert.matches("^corun%.loop: ", tostring(lh))
    _G.CST_GOT = nil
    local th = corun.thread(function(lh)
      return lh:call_soon_threadsafe(function(a, t)
        -- a plain callback of the parent's loop, in the parent's state
        _G.CST_GOT = { a, t[1], require("corun").current() == nil }
      end, "x", { 1 })
    end, lh)
    assert.is_true(th:join())
    assert.is_true(eventually(function() return _G.CST_GOT ~= nil end))
    assert.same({ "x", 1, true }, _G.CST_GOT)
    _G.CST_GOT = nil
  end))

  it("submit from another thread runs a task here; its future returns the "
     .. "results", async(function()
    _G.LOOP_SPEC_MARK = "the parent's state"
    local th = corun.thread(function(lh)
      local f = lh:submit(function(a, b)
        local corun = require "corun"
        corun.sleep(0.01)
        return a + b, corun.current() ~= nil, _G.LOOP_SPEC_MARK
      end, 1, 2)
      return f:wait()
    end, corun.loop())
    assert.same(both(3, true, "the parent's state"), both(th:join()))
    _G.LOOP_SPEC_MARK = nil
  end))

  it("submit's future raises the task's error with its traceback",
  async(function()
    local th = corun.thread(function(lh)
      local f = lh:submit(function() error("in the parent") end)
      local ok, e = pcall(f.wait, f)
      return ok, e
    end, corun.loop())
    local ok, e = th:join()
    assert.is_false(ok)
    assert.matches("in the parent", e)
    assert.matches("stack traceback:", e)
  end))

  it("submitted tasks run concurrently: three 0.3 s sleeps take 0.3 s, "
     .. "waited for one by one 0.9 s", async(function()
    local th = corun.thread(function(lh)
      local corun = require "corun"
      local function nap() require("corun").sleep(0.3) return true end
      local t0 = corun.time()
      local fs = {}
      for i = 1, 3 do fs[i] = lh:submit(nap) end
      for i = 1, 3 do assert(fs[i]:wait()) end
      local together = corun.time() - t0
      t0 = corun.time()
      for _ = 1, 3 do assert(lh:submit(nap):wait()) end
      return together, corun.time() - t0
    end, corun.loop())
    local together, one_by_one = th:join()
    assert.is_true(together >= 0.29 and together < 0.6,
                   "together: " .. together)
    assert.is_true(one_by_one >= 0.89, "one by one: " .. one_by_one)
  end))

  it("stop() ends a thread's loop; the thread ends with no results",
  async(function()
    local ch = corun.channel()
    local th = corun.thread(function(ch)
      local corun = require "corun"
      ch:send(corun.loop())
      corun.sleep(100)
      return "not stopped"
    end, ch)
    local lh = ch:recv(10)
    local t0 = corun.time()
    lh:stop()
    assert.same(both(), both(th:join(10)))
    assert.is_true(corun.time() - t0 < 5)
  end))

  it("a closed loop refuses calls: false, and cancelled futures",
  async(function()
    local lh = corun.thread(function()
      return require("corun").loop()
    end):join()
    -- the thread's state closes just after its results are sent
    assert.is_true(eventually(function()
      return lh:call_soon_threadsafe(function() end) == false
    end))
    local f = lh:submit(function() return 1 end)
    raises_cancelled(f.wait, f)
    lh:stop()  -- harmless
  end))

  it("refuses what cannot be sent", async(function()
    local lh = corun.loop()
    local x = 1
    raises("cannot send args[1]: function with upvalue 'x'",
           lh.call_soon_threadsafe, lh, function() return x end)
    raises("cannot send args[2]: userdata value", lh.submit, lh,
           function() end, io.stdout)
    raises("function expected", lh.submit, lh, 1)
  end))

  it("a thread's loop serves other threads (a background loop)",
  async(function()
    local ch = corun.channel()
    local bg = corun.thread(function(ch)
      local corun = require "corun"
      ch:send(corun.loop())
      corun.sleep(100)  -- keeps the loop alive until stopped
    end, ch)
    local lh = ch:recv(10)
    local fs = {}
    for i = 1, 20 do
      fs[i] = lh:submit(function(i)
        require("corun").sleep(0.01)
        NSUBMITTED = (NSUBMITTED or 0) + 1  -- the background state's global
        return i * 2
      end, i)
    end
    for i = 1, 20 do assert.equal(i * 2, fs[i]:wait()) end
    assert.equal(20, lh:submit(function() return NSUBMITTED end):wait())
    lh:stop()
    assert.same(both(), both(bg:join(10)))
  end))
end)
