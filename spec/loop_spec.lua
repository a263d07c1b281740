-- spec/loop_spec.lua: corun.run, the clock, callbacks and timers (src/loop.c).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local expect, closer, catch = helper.expect, helper.closer, helper.catch

local VIRTUAL = { clock = "virtual" }

describe("corun.run", function()
  after_each(helper.check)

  it("returns the main function's results, arguments passed", function()
    local r = table.pack(corun.run(function(a, b)
      return a + b, nil, "x"
    end, 1, 2))
    assert.equal(3, r.n)
    assert.equal(3, r[1])
    assert.is_nil(r[2])
    assert.equal("x", r[3])
  end)

  it("takes an options table before the function", function()
    assert.equal("v", corun.run(VIRTUAL, function(x) return x end, "v"))
  end)

  it("runs fn as a task named main", function()
    local name, same = corun.run(function()
      local t = corun.current()
      return t.name, t:status()
    end)
    assert.equal("main", name)
    assert.equal("running", same)
    assert.is_nil(corun.current())
  end)

  it("re-raises the main task's string error with a traceback", function()
    local e = catch(corun.run, function() error("boom in main") end)
    assert.is_string(e)
    assert.truthy(e:match("^[^\n]*boom in main"))
    assert.truthy(e:find("stack traceback:", 1, true))
  end)

  it("re-raises a non-string error unchanged", function()
    local obj = {}
    local e = catch(corun.run, function() error(obj) end)
    assert.equal(obj, e)
  end)

  it("re-raises Cancelled when the main task is cancelled", function()
    local e = catch(corun.run, function()
      local me = corun.current()
      corun.spawn(function() me:cancel("from child") end)
      corun.sleep(5)
    end)
    assert.is_true(corun.is_cancelled(e))
    assert.equal("from child", e.msg)
  end)

  it("raises when called inside a running task", function()
    local inner_ran = false
    local e, after = corun.run(function()
      local e = catch(corun.run, function() inner_ran = true end)
      corun.sleep(0)
      return e, "still running"
    end)
    assert.is_not_nil(e)
    assert.truthy(tostring(e):find("run", 1, true))
    assert.equal("still running", after)
    assert.is_false(inner_ran)
  end)

  it("cancels leftover tasks and runs their cleanup before returning",
  function()
    local log = {}
    local parked, unstarted
    corun.run(function()
      parked = corun.spawn(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        local ok, e = pcall(corun.sleep, 1000)
        log[#log + 1] = corun.is_cancelled(e) and "cancelled" or "woke"
        error(e, 0)
      end)
      corun.sleep(0) -- let it park
      unstarted = corun.spawn(expect(nil, 0))
    end)
    assert.same({ "cancelled", "closed" }, log)
    assert.equal("cancelled", parked:status())
    assert.equal("cancelled", unstarted:status())
    assert.same({}, corun.tasks())
  end)

  it("waits for a leftover task's cleanup even when it suspends", function()
    local log = {}
    corun.run(VIRTUAL, function()
      corun.spawn(function()
        local ok, e = pcall(corun.sleep, 1000)
        log[#log + 1] = "cancelled"
        corun.sleep(5)
        log[#log + 1] = "slow cleanup done"
        error(e, 0)
      end)
      corun.sleep(0)
    end)
    assert.same({ "cancelled", "slow cleanup done" }, log)
  end)

  it("drops pending callbacks when main ends", function()
    corun.run(VIRTUAL, function()
      corun.call_later(5, expect(nil, 0))
      corun.call_at(corun.time() + 5, expect(nil, 0))
    end)
    corun.run(VIRTUAL, function() corun.sleep(10) end)
  end)

  it("raises a deadlock error when main can never be woken", function()
    local log = {}
    local e = catch(corun.run, function()
      corun.spawn(function()
        local _ <close> = closer(function() log[#log + 1] = "closed" end)
        corun.queue():get()
      end)
      corun.queue():get()
    end)
    assert.truthy(tostring(e):find("deadlock", 1, true))
    assert.same({ "closed" }, log)
  end)

  it("raises a deadlock error when main joins a task blocked forever",
  function()
    local e = catch(corun.run, function()
      local t = corun.spawn(function() corun.queue():get() end)
      t:join()
    end)
    assert.truthy(tostring(e):find("deadlock", 1, true))
  end)

  it("raises 'stopped' when stop() is called before main ends", function()
    local e = catch(corun.run, function()
      corun.call_soon(corun.stop)
      corun.sleep(5)
    end)
    assert.truthy(tostring(e):find("stopped", 1, true))
  end)

  it("raises 'stopped' when main itself calls stop()", function()
    local e = catch(corun.run, function()
      corun.stop()
      corun.sleep(5)
    end)
    assert.truthy(tostring(e):find("stopped", 1, true))
  end)

  it("rejects a non-function, naming run and the argument", function()
    local e = catch(function() corun.run(42) end)
    assert.truthy(tostring(e):find("bad argument #1 to 'run'", 1, true),
                  tostring(e))
    e = catch(function() corun.run(VIRTUAL, "x") end)
    assert.truthy(tostring(e):find("bad argument #2 to 'run'", 1, true),
                  tostring(e))
  end)

  it("reports an unretrieved task error on stderr", function()
    local status, out, err = helper.run_lua([[
      local corun = require "corun"
      print(corun.run(function()
        local t = corun.spawn(function() error("never joined") end)
        t.name = "orphan"
        corun.sleep(0.01)
        return "main ok"
      end))
    ]])
    assert.equal(0, status, err)
    assert.equal("main ok\n", out)
    assert.truthy(err:find("corun: task 'orphan' failed: ", 1, true), err)
    assert.truthy(err:find("never joined", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("can be called again after it returned or failed", function()
    pcall(corun.run, function() error("x") end)
    assert.equal(1, corun.run(function() corun.sleep(0) return 1 end))
    assert.equal(2, corun.run(VIRTUAL, function() corun.sleep(1) return 2 end))
  end)
end)

describe("corun.time", function()
  after_each(helper.check)

  it("is a monotonic number", function()
    corun.run(function()
      local prev = corun.time()
      assert.is_number(prev)
      for i = 1, 200 do
        if i % 10 == 0 then corun.sleep(0) end
        local now = corun.time()
        assert.is_true(now >= prev)
        prev = now
      end
    end)
  end)

  it("advances across a real sleep by at least the delay", function()
    corun.run(function()
      local t0 = corun.time()
      corun.sleep(0.05)
      local dt = corun.time() - t0
      assert.is_true(dt >= 0.05, "woke after " .. dt)
      assert.is_true(dt < 2, "woke after " .. dt)
    end)
  end)
end)

describe("callbacks", function()
  after_each(helper.check)

  it("call_soon runs callbacks FIFO with their arguments", function()
    local log = {}
    corun.run(function()
      for i = 1, 5 do
        corun.call_soon(function(a, b) log[#log + 1] = a .. b end, "cb", i)
      end
      corun.sleep(0)
    end)
    assert.same({ "cb1", "cb2", "cb3", "cb4", "cb5" }, log)
  end)

  it("passes many arguments to callbacks", function()
    -- In a child process: a stack overflow here would crash the suite.
    local status, out, err = helper.run_lua([[
      local corun = require "corun"
      local args = {}
      for i = 1, 250 do args[i] = i end
      corun.run(function()
        local got = {}
        corun.call_soon(function(...) got[1] = select("#", ...) end,
                        table.unpack(args))
        corun.call_later(0.001, function(...) got[2] = select("#", ...) end,
                         table.unpack(args))
        corun.sleep(0.01)
        print(got[1], got[2])
      end)
      collectgarbage()
      print("ok")
    ]])
    assert.equal(0, status, err)
    assert.equal("250\t250\nok\n", out)
  end)

  it("call_soon callbacks and new tasks share one FIFO queue", function()
    local log = {}
    corun.run(function()
      corun.call_soon(function() log[#log + 1] = "cb1" end)
      corun.spawn(function() log[#log + 1] = "t1" end)
      corun.call_soon(function() log[#log + 1] = "cb2" end)
      corun.spawn(function() log[#log + 1] = "t2" end)
      log[#log + 1] = "main"
      corun.sleep(0)
      log[#log + 1] = "main again"
    end)
    assert.same({ "main", "cb1", "t1", "cb2", "t2", "main again" }, log)
  end)

  it("interleaves tasks that yield with sleep(0)", function()
    local log = {}
    corun.run(function()
      local function worker(name)
        for i = 1, 3 do
          log[#log + 1] = name .. i
          corun.sleep(0)
        end
      end
      local a, b = corun.spawn(worker, "a"), corun.spawn(worker, "b")
      a:join()
      b:join()
    end)
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("a callback scheduled by a callback runs after what is ready", function()
    local log = {}
    corun.run(function()
      corun.call_soon(function()
        log[#log + 1] = "first"
        corun.call_soon(function() log[#log + 1] = "nested" end)
      end)
      corun.call_soon(function() log[#log + 1] = "second" end)
      corun.sleep(0)
      corun.sleep(0)
    end)
    assert.same({ "first", "second", "nested" }, log)
  end)

  it("call_later fires in deadline order, ties in arming order", function()
    local log = {}
    corun.run(VIRTUAL, function()
      local function add(x) log[#log + 1] = x end
      corun.call_later(3, add, "c")
      corun.call_later(1, add, "a1")
      corun.call_later(2, add, "b")
      corun.call_later(1, add, "a2")
      corun.call_at(corun.time() + 1, add, "a3")
      corun.call_at(corun.time() + 0.5, add, "z")
      corun.sleep(4)
    end)
    assert.same({ "z", "a1", "a2", "a3", "b", "c" }, log)
  end)

  it("call_at fires at the given loop time", function()
    corun.run(VIRTUAL, function()
      local t0 = corun.time()
      local fired
      corun.call_at(t0 + 7, function() fired = corun.time() end)
      corun.sleep(10)
      assert.is_true(fired >= t0 + 7)
      assert.is_true(fired < t0 + 7.01)
    end)
  end)

  it("handles can be cancelled while pending", function()
    corun.run(VIRTUAL, function()
      local h1 = corun.call_soon(expect(nil, 0))
      local h2 = corun.call_later(1, expect(nil, 0))
      local h3 = corun.call_at(corun.time() + 1, expect(nil, 0))
      for _, h in ipairs { h1, h2, h3 } do
        assert.is_false(h:cancelled())
        assert.is_true(h:cancel())
        assert.is_true(h:cancelled())
        assert.is_false(h:cancel())
      end
      corun.sleep(2)
    end)
  end)

  it("cancel() of a handle that already fired returns false", function()
    corun.run(VIRTUAL, function()
      local h = corun.call_later(1, expect())
      local s = corun.call_soon(expect())
      corun.sleep(2)
      assert.is_false(h:cancel())
      assert.is_false(s:cancel())
      assert.is_false(h:cancelled())
    end)
  end)

  it("cancelling one timer leaves the others", function()
    local log = {}
    corun.run(VIRTUAL, function()
      local hs = {}
      for i = 1, 5 do
        hs[i] = corun.call_later(i, function() log[#log + 1] = i end)
      end
      hs[2]:cancel()
      hs[4]:cancel()
      corun.sleep(10)
    end)
    assert.same({ 1, 3, 5 }, log)
  end)

  it("a callback that fails is reported and does not stop the loop",
  function()
    local status, out, err = helper.run_lua([[
      local corun = require "corun"
      print(pcall(corun.run, function()
        corun.call_soon(function() error("callback boom") end)
        corun.call_soon(function() print("next callback") end)
        corun.sleep(0.01)
        print("main done")
      end))
    ]])
    assert.equal(0, status, err)
    assert.truthy(out:find("next callback\nmain done\n", 1, true), out)
    assert.truthy(err:find("corun: error in callback:", 1, true), err)
    assert.truthy(err:find("callback boom", 1, true), err)
  end)
end)

describe("timers on the real clock", function()
  after_each(helper.check)

  it("never fire before time() + delay", function()
    local delays = { 0, 0.001, 0.004, 0.01, 0.013, 0.02, 0.031 }
    corun.run(function()
      local checks = {}
      for _, d in ipairs(delays) do
        local t0 = corun.time()
        corun.call_later(d, function()
          checks[#checks + 1] = { d, corun.time() - t0 }
        end)
        corun.spawn(function()
          local s0 = corun.time()
          corun.sleep(d)
          checks[#checks + 1] = { d, corun.time() - s0 }
        end)
      end
      while #checks < 2 * #delays do corun.sleep(0.005) end
      for _, c in ipairs(checks) do
        assert.is_true(c[2] >= c[1], ("delay %g woke after %g"):format(c[1],
                       c[2]))
      end
    end)
  end)
end)

describe("the virtual clock", function()
  after_each(helper.check)

  it("makes a 1000 s sleep finish at once and advances time by 1000",
  function()
    local wall = os.time()
    local dt = corun.run(VIRTUAL, function()
      local t0 = corun.time()
      corun.sleep(1000)
      return corun.time() - t0
    end)
    assert.is_true(dt >= 1000)
    assert.is_true(dt < 1000.01)
    assert.is_true(os.time() - wall <= 3)
  end)

  it("does not move while tasks are runnable", function()
    corun.run(VIRTUAL, function()
      local t0 = corun.time()
      corun.spawn(function() corun.sleep(50) end)
      for _ = 1, 10 do corun.sleep(0) end
      assert.equal(t0, corun.time())
    end)
  end)

  it("orders many timers deterministically", function()
    local function trial()
      local rnd = helper.lcg(42)
      local log, expected, late = {}, {}, 0
      corun.run(VIRTUAL, function()
        local t0 = corun.time()
        local ts = {}
        for i = 1, 300 do
          local d = (rnd(41) - 1) * 0.5
          expected[i] = { d = d, i = i }
          ts[i] = corun.spawn(function()
            corun.sleep(d)
            local dt = corun.time() - t0
            if dt < d or dt > d + 0.01 then late = late + 1 end
            log[#log + 1] = i
          end)
        end
        for _, t in ipairs(ts) do t:join() end
      end)
      table.sort(expected, function(a, b)
        if a.d ~= b.d then return a.d < b.d end
        return a.i < b.i
      end)
      for k, e in ipairs(expected) do expected[k] = e.i end
      return log, expected, late
    end
    local log1, expected, late = trial()
    assert.equal(0, late)
    assert.same(expected, log1)
    local log2 = trial()
    assert.same(log1, log2)
  end)
end)

describe("corun.busted", function()
  after_each(helper.check)

  it("async runs the body as the main task", corun.async(function()
    assert.equal("main", corun.current().name)
    corun.sleep(0.001)
  end))

  it("async_virtual runs the body with a virtual clock", cb.async_virtual(
  function()
    local t0 = corun.time()
    corun.sleep(3600)
    assert.is_true(corun.time() - t0 >= 3600)
  end))
end)
