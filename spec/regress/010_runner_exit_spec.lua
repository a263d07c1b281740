-- spec/regress/010_runner_exit_spec.lua: the runner exits when what is left
-- can never wake (issue 10 #16): a task sleeping math.huge, a callback due
-- in 1e300 s (a timer due more than 2^32 s from now counts as never), and a
-- main chunk that ends with an open client stream nobody waits on. Before
-- the fix each of these ran forever. While the main task runs such a timer
-- still keeps the loop alive (sleep(math.huge) keeps a thread's loop up).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Run 'code' with the runner; returns status ("hung" after 'limit' s),
-- stdout, stderr.
local function runner(code, limit)
  return helper.run_child(CORUN, { "-e", code }, limit)
end

describe("the runner exits when nothing can wake", function()
  after_each(helper.check)

  it("a task sleeping math.huge", async(function()
    local status, out, err = runner([[
      local c = require "corun"
      c.spawn(function()
        local ok, e = pcall(c.sleep, math.huge)
        print("cleanup", c.is_cancelled(e))
      end)
    ]])
    assert.equal(0, status, err)
    assert.equal("cleanup\ttrue\n", out)
  end))

  it("call_later(1e300, f) and call_at(math.huge, f)", async(function()
    local status, out, err = runner([[
      local c = require "corun"
      c.call_later(1e300, print, "never")
      c.call_at(math.huge, print, "never")
      c.call_later(0.05, print, "soon")
    ]])
    assert.equal(0, status, err)
    assert.equal("soon\n", out)
  end))

  it("a timer that never fires keeps a main task running", function()
    -- sleep(math.huge) in the main task is how a loop is kept running
    -- until stopped; the rule applies once the main task has finished
    assert.equal(3, corun.run(function()
      local t = corun.spawn(function() corun.sleep(math.huge) end)
      corun.call_later(0.01, function() t:cancel() end)
      pcall(t.join, t)
      return 3
    end))
  end)

  describe("with a server in another process", function()
    local server, port
    before_each(async(function()
      server = assert(corun.process.spawn(CORUN, { "-e", [[
        local c = require "corun"
        local s = assert(c.tcp.listen("127.0.0.1", 0, function(st)
          st:write("hi\n")
          c.sleep(0.5)
          st:write("later\n")
          c.sleep(60)
        end))
        io.stdout:write(s.port, "\n")
        io.stdout:flush()
        c.sleep(60)
      ]] }, { stdout = "pipe" }))
      port = assert(tonumber(server.stdout:read("l")))
    end))
    after_each(async(function()
      server:kill("kill")
      server:wait()
    end))

    it("an open client stream nobody waits on", async(function()
      local status, out, err = runner(([[
        local c = require "corun"
        local cl = assert(c.tcp.connect("127.0.0.1", %d))
        print(cl:read("l"))
      ]]):format(port))
      assert.equal(0, status, err)
      assert.equal("hi\n", out)
    end))

    it("a task waiting on a stream keeps the runner alive", async(function()
      local status, out, err = runner(([[
        local c = require "corun"
        local cl = assert(c.tcp.connect("127.0.0.1", %d))
        print(cl:read("l"))
        c.spawn(function() print(cl:read("l")) end)
      ]]):format(port))
      assert.equal(0, status, err)
      assert.equal("hi\nlater\n", out)
    end))
  end)
end)
