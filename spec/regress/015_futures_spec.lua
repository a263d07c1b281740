-- spec/regress/015_futures_spec.lua: issue 15, item 5. gather, wait and
-- as_completed accept futures (corun.thread, pool:submit, process pools)
-- beside tasks and functions; as_completed and wait hand the futures back.

local corun = require "corun"
local helper = require "helper"
require "corun.busted"

describe("issue 15: futures in combinators", function()
  after_each(helper.check)

  it("gather mixes tasks, functions and thread, pool and process futures",
     corun.async(function()
    local pool = corun.pool(2)
    local pp = corun.process.pool(1)
    local r = corun.gather(
      pool:submit(function(a, b) return a + b, "ignored" end, 1, 2),
      corun.thread(function() return "thread" end),
      pp:submit(function(x) return x * 10 end, 4),
      function() return "fn" end,
      corun.spawn(function() return "task" end))
    assert.same({ 3, "thread", 40, "fn", "task" }, r)
    local r2 = corun.gather({ pool:submit(function() return 1 end) })
    assert.same({ 1 }, r2)
    pool:close()
    pp:close()
    pool:join()
    pp:join()
  end))

  it("gather re-raises a future's error; return_errors puts it in the slot",
     corun.async(function()
    local pool = corun.pool(1)
    local ok, err = pcall(corun.gather,
      pool:submit(function() error("job failed", 0) end),
      function() corun.sleep(5) end)
    assert.is_false(ok)
    assert.equal("job failed", tostring(err):match("^[^\n]*"))
    local r = corun.gather({
      pool:submit(function() error("again", 0) end),
      pool:submit(function() return "fine" end),
    }, { return_errors = true })
    assert.equal("again", tostring(r[1]):match("^[^\n]*"))
    assert.equal("fine", r[2])
    -- a failure also cancels the jobs still queued: they never run
    local busy = pool:submit(function()       -- holds the only worker
      require("corun").sleep(0.5)
      return "busy"
    end)
    local queued = pool:submit(function() return "ran" end)
    assert.is_false(pcall(corun.gather, busy, queued, function()
      corun.sleep(0.05)
      error("first", 0)
    end))
    assert.equal("busy", busy:wait())         -- a started job runs to its end
    local ok2, e2 = pcall(queued.wait, queued)
    assert.is_false(ok2)
    assert.is_true(corun.is_cancelled(e2))
    pool:close()
    pool:join()
  end))

  it("as_completed yields the futures themselves, as they finish",
     corun.async(function()
    local pool = corun.pool(2)
    local slow = pool:submit(function()
      require("corun").sleep(0.3) return "slow" end)
    local fast = pool:submit(function() return "fast" end)
    local order = {}
    for f in corun.as_completed({ slow, fast }) do
      order[#order + 1] = f == slow and "slow" or f == fast and "fast" or "?"
      assert.is_true(f:done())
    end
    assert.same({ "fast", "slow" }, order)
    assert.equal("slow", slow:wait())
    pool:close()
    pool:join()
  end))

  it("wait returns done and pending futures; first_error sees a failure",
     corun.async(function()
    local pool = corun.pool(2)
    local quick = pool:submit(function() return 1 end)
    local slow = pool:submit(function() require("corun").sleep(0.3) end)
    local done, pending = corun.wait({ quick, slow }, { return_when = "first" })
    assert.same({ quick }, done)
    assert.same({ slow }, pending)
    local bad = pool:submit(function() error("x", 0) end)
    done, pending = corun.wait({ slow, bad }, { return_when = "first_error" })
    assert.same({ bad }, done)
    assert.equal(1, #pending)
    assert.is_false(pcall(bad.wait, bad))
    done = corun.wait({ slow, function() return 2 end })
    assert.equal(2, #done)
    assert.equal(slow, done[1])
    pool:close()
    pool:join()
  end))

  it("still rejects other values", corun.async(function()
    local ok, err = pcall(corun.as_completed, { 42 })
    assert.is_false(ok)
    assert.truthy(err:find("bad argument #1 to 'as_completed' (task, function "
                           .. "or future expected, got number)", 1, true), err)
  end))
end)
