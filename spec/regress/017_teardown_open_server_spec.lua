-- The end of a corun.run whose main task failed while a server was still
-- listening and another task was alive: the teardown cancelled the task
-- and then waited for the loop to have nothing left, which the open
-- listener never allowed, so corun.run never returned (a whole busted run
-- hung after one failing TLS spec). The teardown now ends with the last
-- task. The script runs as a child, so a regression fails instead of
-- hanging the suite.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local SCRIPT = [[
local corun = require "corun"
for _, how in ipairs { "error", "return" } do
  local ok, err = pcall(corun.run, function()
    local srv = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
    local h = assert(corun.http.serve("127.0.0.1", 0, function() return 200, "" end))
    corun.spawn(function() corun.sleep(100) end)
    corun.spawn(function() local s = corun.tcp.connect("127.0.0.1", srv.port); s:read(1) end)
    corun.sleep(0.05)
    if how == "error" then error("boom", 0) end
  end)
  print(how, ok, (tostring(err):match("^[^\n]*")))
end
]]

describe("regress: a run's teardown with a server still open", function()
  after_each(helper.check)

  it("corun.run returns (with the main task's error) instead of waiting forever",
     async(function()
    local status, out, err = helper.run_child("lua5.4", { "-e", SCRIPT }, 15)
    assert.equal(0, status, err)
    assert.equal("error\tfalse\tboom\nreturn\ttrue\tnil\n", out)
  end))
end)
