-- spec/regress/010_ranges_messages_spec.lua: integer range checks (issue
-- 10 #9: signed overflow under UBSan, a semaphore wrapping to
-- math.mininteger) and messages that name the function and the argument
-- (issue 10 #13, issue 9 section 3).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("range checks", function()
  after_each(helper.check)

  it("priority_queue(math.maxinteger) with puts and gets", async(function()
    local q = corun.priority_queue(math.maxinteger)
    q:put(2)
    q:put(1)
    assert.equal(1, q:get_nowait())
    assert.equal(2, q:get_nowait())
    assert.is_false(q:full())
    assert.equal(math.maxinteger, q:maxsize())
    local f = corun.queue(math.maxinteger)
    f:put(1)
    assert.equal(1, f:get_nowait())
  end))

  it("semaphore(math.maxinteger):release() raises, no wrap", async(function()
    local s = corun.semaphore(math.maxinteger)
    local e = err_of(s.release, s)
    assert.truthy(e:find("release: the semaphore's value would exceed "
                         .. "math.maxinteger", 1, true), e)
    assert.equal(math.maxinteger, s:value())
    assert.truthy(tostring(s):find(tostring(math.maxinteger), 1, true))
    s:acquire()
    s:release()
    assert.equal(math.maxinteger, s:value())
  end))

  it("counts are checked as integers in range", function()
    local e = err_of(corun.semaphore, -1)
    assert.truthy(e:find("^bad argument #1 to '[%w._]*semaphore' %(must be >= 0%)"), e)
    e = err_of(corun.semaphore, 1.5)
    assert.truthy(e:find("^bad argument #1 to '[%w._]*semaphore' %(number has no integer"), e)
    e = err_of(corun.queue, -1)
    assert.truthy(e:find("^bad argument #1 to '[%w._]*queue' %(maxsize must be >= 0%)"), e)
  end)
end)

describe("messages that name the function and the argument", function()
  after_each(helper.check)

  it("channel(2^31)", function()
    local e = err_of(corun.channel, 2 ^ 31)
    assert.truthy(e:find("bad argument #1 to '[%w._]*channel' %(capacity must be "
                         .. ">= 0 and <= 2147483647%)"), e)
  end)

  it("wait(tasks, 5)", async(function()
    local e = err_of(corun.wait, {}, 5)
    assert.truthy(e:find("bad argument #2 to 'wait' (options table expected, "
                         .. "got number)", 1, true), e)
  end))

  it("dump(5)", function()
    local e = err_of(corun.dump, 5)
    assert.truthy(e:find("bad argument #1 to 'dump' (file (a value with a "
                         .. "write method) expected, got number)", 1, true), e)
  end)

  it("lock.with(5, f) and condition.wait_for(5, f)", async(function()
    local e = err_of(corun.lock().with, 5, function() end)
    assert.truthy(e:find("calling 'with' on bad self (lock, semaphore or "
                         .. "condition expected, got number)", 1, true), e)
    e = err_of(corun.condition().wait_for, 5, function() end)
    assert.truthy(e:find("calling 'wait_for' on bad self (condition "
                         .. "expected, got number)", 1, true), e)
  end))

  it("select names the case and the field", async(function()
    local ch = corun.channel()
    local e = err_of(corun.select, { ch, "recv" }, { ch })
    assert.truthy(e:find("bad argument #2 to '[%w._]*select' %(case 2: its field 2 "
                         .. "must be \"recv\", \"send\", \"get\" or \"put\", got nil%)"), e)
    e = err_of(corun.select, { 42, "recv" })
    assert.truthy(e:find("(case 1: its field 1 must be a channel or a queue, "
                         .. "got number)", 1, true), e)
    e = err_of(corun.select, { ch, "bogus" })
    assert.truthy(e:find('got "bogus")', 1, true), e)
    e = err_of(corun.select, { ch, "recv" }, { ch, "send" })
    assert.truthy(e:find("bad argument #2 to '[%w._]*select' %(case 2: its field 3"), e)
  end))

  it("Lua-layer errors point at the caller's line", async(function()
    local line
    local ok, e = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      corun.wait({}, { timeout = -1 })
    end)
    assert.is_false(ok)
    assert.truthy(e:find(":" .. line .. ": bad argument #2 to 'wait' (timeout "
                         .. "must be a number >= 0)", 1, true), e)
    ok, e = pcall(function()
      line = debug.getinfo(1, "l").currentline + 1
      corun.gather(function() end, 5)
    end)
    assert.is_false(ok)
    assert.truthy(e:find(":" .. line .. ": bad argument #2 to 'gather'", 1, true), e)
    corun.sleep(0)
  end))
end)
