-- spec/regress/095_gather_spec.lua: corun.gather as core.gather (gather.c,
-- issue 9 section 5): it joins the tasks in list order and fails fast
-- through the loop's list of parked gathers, with no completion queue.
-- These pin down what that must keep: the first failure in completion
-- order wins, whether it happened before gather was called or while it
-- waits on an earlier task; failures of unrelated tasks, and more of them
-- than a parked gather notes, change nothing; nested gathers each see
-- their own failures; a task cannot gather itself (it used to wait
-- forever for itself).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async_virtual = cb.async_virtual

-- The first line of an error (a string error carries its traceback).
local function msg(e)
  return (tostring(e):match("^[^\n]*"))
end

local function after(d, v)
  return function()
    corun.sleep(math.abs(d))
    if d < 0 then error(v, 0) end
    return v
  end
end

describe("corun.gather (regress 095)", function()
  after_each(helper.check)

  it("collects many tasks in list order", async_virtual(function()
    local tasks = {}
    for i = 1, 2000 do
      tasks[i] = corun.spawn(function()
        corun.sleep((2000 - i) % 7)
        return i, "extra"
      end)
    end
    local r = corun.gather(tasks)
    assert.equal(2000, #r)
    for i = 1, 2000 do assert.equal(i, r[i]) end
  end))

  it("raises a failure that happened before it was called, even behind a "
     .. "pending task", async_virtual(function()
    local slow = corun.spawn(corun.sleep, 100)
    local bad = corun.spawn(function() error("early", 0) end)
    corun.sleep(1)
    local t0 = corun.time()
    local e = catch(corun.gather, { slow, bad })
    assert.equal("early", msg(e))
    assert.equal(t0, corun.time())
    corun.sleep(0)
    assert.equal("cancelled", slow:status())
  end))

  it("raises a later task's failure while it waits on an earlier one",
  async_virtual(function()
    local t0 = corun.time()
    local e = catch(corun.gather, after(50, "a"), after(-3, "later fails"),
                    after(-4, "second"))
    assert.equal("later fails", msg(e))
    assert.equal(3, corun.time() - t0)
    corun.sleep(1)
    assert.same({ corun.current() }, corun.tasks())
  end))

  it("ignores failures of tasks that are not its own",
  async_virtual(function()
    local others = {}
    for i = 1, 40 do  -- more than a parked gather notes by name
      others[i] = corun.spawn(function()
        corun.sleep(1)
        error("other " .. i, 0)
      end)
    end
    local r = corun.gather(after(2, "x"), after(3, "y"))
    assert.same({ "x", "y" }, r)
    for i = 1, 40 do assert.equal("failed", others[i]:status()) end
    for i = 1, 40 do catch(others[i].join, others[i]) end
  end))

  it("finds its own failure among many others", async_virtual(function()
    local others = {}
    for i = 1, 40 do
      others[i] = corun.spawn(function()
        corun.sleep(1)
        error("other " .. i, 0)
      end)
    end
    local mine = corun.spawn(function()
      corun.sleep(1)
      error("mine", 0)
    end)
    local e = catch(corun.gather, after(10, "slow"), mine)
    assert.equal("mine", msg(e))
    assert.equal(1, corun.time())
    for i = 1, 40 do catch(others[i].join, others[i]) end
  end))

  it("nested gathers each see their own failure", async_virtual(function()
    local inner_err
    local outer = corun.spawn(function()
      return corun.gather(after(10, "o1"), function()
        inner_err = catch(corun.gather, after(20, "i1"), after(-2, "inner"))
        return "caught"
      end)
    end)
    local r = outer:join()
    assert.equal("inner", msg(inner_err))
    assert.same({ "o1", "caught" }, r)
    assert.equal(10, corun.time())
  end))

  it("return_errors waits for all and fills each slot",
  async_virtual(function()
    local r = corun.gather({ after(-1, "e1"), after(2, "ok"), after(-3, "e3") },
                           { return_errors = true })
    assert.same({ "e1", "ok", "e3" }, { msg(r[1]), r[2], msg(r[3]) })
    assert.equal(3, corun.time())
  end))

  it("cancelling the gathering task cancels its children",
  async_virtual(function()
    local kids = { corun.spawn(corun.sleep, 10), corun.spawn(corun.sleep, 20) }
    local g = corun.spawn(corun.gather, kids)
    corun.sleep(1)
    g:cancel()
    local ok, e = pcall(g.join, g)
    assert.is_false(ok)
    assert.is_true(corun.is_cancelled(e))
    corun.sleep(0)
    assert.equal("cancelled", kids[1]:status())
    assert.equal("cancelled", kids[2]:status())
  end))

  it("a task cannot gather itself", async_virtual(function()
    local e = catch(corun.gather, { after(1, "a"), corun.current() })
    assert.truthy(tostring(e):find("cannot gather itself", 1, true))
  end))

  it("names the bad item", async_virtual(function()
    local e = catch(corun.gather, after(1, "a"), 42)
    assert.truthy(tostring(e):find(
      "bad argument #2 to 'gather' (task or function expected, got number)",
      1, true), tostring(e))
  end))
end)
