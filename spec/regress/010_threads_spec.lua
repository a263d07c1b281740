-- spec/regress/010_threads_spec.lua: issue 10 #1 and #14, issue 15 #12.
-- An error value whose __tostring raises, returns a non-string or yields
-- must fail the future with a clear text, never abort the process (through
-- corun.thread, pool:submit, to_thread and loop:submit). Results of
-- threads and loop:submit are copied like arguments (functions without
-- upvalues cross). A failed thread or pool job nobody waited for makes the
-- runner exit 1. Every case runs in a child runner, so an abort fails the
-- spec instead of killing busted.

local corun = require "corun"
local helper = require "helper"
local cb = require "corun.busted"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Run 'code' with the runner: status ("signal NAME" if killed by one,
-- "hung" after 'limit' s), stdout, stderr.
local function runner(code, limit)
  return helper.run_child(CORUN, { "-e", code }, limit)
end

local WAYS = {
  thread = "corun.thread(job):join()",
  pool = "corun.pool(1):submit(job):wait()",
  to_thread = "corun.to_thread(job)",
  loop_submit = "corun.loop():submit(job):wait()",
}

local TOSTRINGS = {
  { "raises", 'error("x", 0)', "; __tostring failed: x)" },
  { "returns a table", "return {}",
    "; __tostring failed: '__tostring' must return a string)" },
  { "yields", "coroutine.yield()", "; __tostring failed: attempt to yield" },
}

describe("issue 10 #1: error values whose __tostring misbehaves", function()
  for _, ts in ipairs(TOSTRINGS) do
    for way, call in pairs(WAYS) do
      it(("through %s, __tostring %s"):format(way, ts[1]), async(function()
        local status, out, err = runner(([[
          local corun = require "corun"
          local function job()
            error(setmetatable({}, {__tostring = function() %s end}))
          end
          local ok, e = pcall(function() return %s end)
          print(ok, type(e), e)
        ]]):format(ts[2], call))
        assert.equal(0, status, err)
        assert.matches("false\tstring\terror object (table: ", out, 1, true)
        assert.matches(ts[3], out, 1, true)
      end))
    end
  end

  it("the runner reports such a main-chunk error without aborting",
     async(function()
    local status, out, err = runner([[
      error(setmetatable({}, {__tostring = function() error("x", 0) end}))
    ]])
    assert.equal(1, status)
    assert.equal("", out)
    assert.matches("^corun: error object %(table: 0x%x+; __tostring "
                   .. "failed: x%)\n$", err)
  end))
end)

describe("issue 10 #14: results are copied like arguments", function()
  for way, call in pairs(WAYS) do
    it("a function result crosses through " .. way, async(function()
      local status, out, err = runner(([[
        local corun = require "corun"
        local function job() return function(x) return x * 2 end, 1 end
        local f, one = %s
        print(f(21), one)
        local ok, e = pcall(function()
          local function job2() local u = 1 return function() return u end end
          job = job2
          return %s
        end)
        print(ok, e)
      ]]):format(call, call))
      assert.equal(0, status, err)
      assert.equal("42\t1\nfalse\tcannot send results[1]: function with "
                   .. "upvalue 'u'\n", out)
    end))
  end

  it("a function result crosses through a process pool", async(function()
    local status, out, err = runner([[
      local corun = require "corun"
      local pool = corun.process.pool(1)
      print(pool:submit(function() return function(x) return x + 1 end end)
              :wait()(41))
      pool:close()
    ]])
    assert.equal(0, status, err)
    assert.equal("42\n", out)
  end))
end)

describe("issue 15 #12: unretrieved failures of threads and jobs", function()
  for _, case in ipairs {
    { "a thread", "corun.thread(function() error('bad 1', 0) end)" },
    { "a thread pool job",
      "corun.pool(1):submit(function() error('bad 1', 0) end)" },
    { "a process pool job",
      "corun.process.pool(1):submit(function() error('bad 1', 0) end)" },
  } do
    it(case[1] .. " that failed with nobody waiting makes the runner exit 1",
       async(function()
      local status, out, err = runner(([[
        local corun = require "corun"
        local f = %s
        while not f:done() do corun.sleep(0.01) end
        f = nil
        collectgarbage()
        print("end of main")
      ]]):format(case[2]))
      assert.equal(1, status)
      assert.equal("end of main\n", out)
      assert.matches("corun: a thread or job failed and nobody waited for "
                     .. "it: bad 1", err, 1, true)
    end))

    it(case[1] .. " whose failure was retrieved leaves the exit status 0",
       async(function()
      local status, out, err = runner(([[
        local corun = require "corun"
        local f = %s
        print(pcall(f.wait, f))
      ]]):format(case[2]))
      assert.equal(0, status, err)
      assert.matches("^false\tbad 1", out)
      assert.equal("", err)
    end))
  end

  for _, pool in ipairs { "corun.pool(2)", "corun.process.pool(2)" } do
    it("a caught error of " .. pool .. ":map leaves the exit status 0",
       async(function()
      local status, out, err = runner(([[
        local corun = require "corun"
        local pool = %s
        print(pcall(pool.map, pool, function(n)
          if n %% 2 == 0 then error("even " .. n, 0) end
          return n
        end, {1, 2, 3, 4, 5, 6}))
        pool:close()
        pool:join()
      ]]):format(pool))
      assert.equal(0, status, err)
      assert.matches("^false\teven 2", out)
      assert.equal("", err)
    end))
  end
end)
