-- spec/regress/009_spawn_cost_spec.lua: what the spawn path's savings
-- (issue 9 section 5) must keep. Only a failed task has a finalizer (it
-- reports an error nobody retrieved when collected): any other finished
-- task nobody references is freed by one full collection, as a plain
-- userdata is (with a finalizer it survived the first). A failed task
-- still reports itself, keeps its methods, and a retrieved failure stays
-- quiet. corun.gather finds futures in C before it spawns anything: a
-- function before a future in the list runs once.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

describe("spawn costs (regress 009)", function()
  it("a finished task nobody holds is freed by one collection",
  async(function()
    local weak = setmetatable({}, { __mode = "k" })
    local t = corun.spawn(function() return 1 end)
    local c = corun.spawn(function() corun.sleep(10) end)
    corun.sleep(0)
    c:cancel()
    t:join()
    pcall(c.join, c)
    weak[t], weak[c] = true, true
    t, c = nil, nil
    collectgarbage()
    assert.is_nil(next(weak))
  end))

  it("a failed task keeps its methods and status", async(function()
    local t = corun.spawn(function() error("boom", 0) end)
    local ok, e = pcall(t.join, t)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("^boom"), e)
    assert.equal("failed", t:status())
    assert.is_true(t:done())
    assert.truthy(tostring(t):find("corun.task 'task-", 1, true))
    t.name = "renamed"
    assert.equal("renamed", t.name)
  end))

  it("a failed task collected unretrieved is still reported",
  async(function()
    local corun_bin = os.getenv("CORUN_BIN") or "build/bin/corun"
    local status, out, err = helper.run_child(corun_bin, { "-e", [[
      local corun = require "corun"
      local before = collectgarbage("count")
      corun.spawn(function() error("lost failure", 0) end)
      corun.sleep(0.01)
      collectgarbage()
      collectgarbage()
      corun.sleep(0.01)
      print("after")
    ]] }, 30)
    assert.equal(1, status, err)
    assert.truthy(err:find("task 'task%-%d+' failed: lost failure"), err)
    assert.truthy(out:find("after", 1, true), out)
    -- reported once, when collected (before "after" was printed: stderr)
    local _, n = err:gsub("lost failure", "")
    assert.equal(1, n, err)
  end))

  it("gather with a function before a future runs the function once",
  async(function()
    local runs = 0
    local pool = corun.pool(1)
    local f = pool:submit(function() return 7 end)
    local res = corun.gather(function() runs = runs + 1 return "fn" end, f)
    assert.equal(1, runs)
    assert.equal("fn", res[1])
    assert.equal(7, res[2])
    pool:close()
  end))
end)
