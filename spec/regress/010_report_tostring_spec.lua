-- spec/regress/010_report_tostring_spec.lua: an unretrieved task error
-- whose __tostring raises (or returns no string) is still reported, with a
-- fallback description, and the runner exits 1 (issue 10 #12). Before the
-- fix a collected task reported nothing (exit 0), and at the end of a run
-- the __tostring error was printed instead of the report.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Run 'code' with the runner; returns status, stdout, stderr.
local function runner(code, limit)
  return helper.run_child(CORUN, { "-e", code }, limit or 30)
end

local PRELUDE = [[
  local c = require "corun"
  local raising = setmetatable({}, { __tostring = function() error("boom") end })
  local tabling = setmetatable({}, { __tostring = function() return {} end })
]]

describe("reporting an error whose __tostring fails", function()
  after_each(helper.check)

  it("a task collected by the GC", async(function()
    local status, _, err = runner(PRELUDE .. [[
      local t = c.spawn(function() error(raising) end)
      c.sleep(0.01)
      t = nil
      collectgarbage()
      collectgarbage()
      c.sleep(0.01)
      print("after")
    ]])
    assert.equal(1, status, err)
    assert.truthy(err:find("task 'task%-%d+' failed: error object %(table: 0x%x+; "
                           .. "__tostring failed: .-boom%)"), err)
  end))

  it("a task still referenced at the end of the run", async(function()
    local status, _, err = runner(PRELUDE .. [[
      KEEP = c.spawn(function() error(raising) end)
      KEEP2 = c.spawn(function() error(tabling) end)
    ]])
    assert.equal(1, status, err)
    assert.truthy(err:find("__tostring failed: .-boom%)"), err)
    assert.truthy(err:find("__tostring failed: '__tostring' must return a string"),
                  err)
  end))

  it("a task dropped without a collection during the run", async(function()
    local status, _, err = runner(PRELUDE .. [[
      c.spawn(function() error(raising) end)
    ]])
    assert.equal(1, status, err)
    assert.truthy(err:find("failed: error object (table: 0x", 1, true), err)
  end))

  it("the main chunk and a callback", async(function()
    local status, _, err = runner(PRELUDE .. [[
      c.call_soon(function() error(tabling) end)
      c.sleep(0.01)
      error(raising)
    ]])
    assert.equal(1, status, err)
    assert.truthy(err:find("error in callback: error object (table: 0x", 1, true), err)
    assert.truthy(err:find("corun: error object (table: 0x", 1, true), err)
  end))
end)
