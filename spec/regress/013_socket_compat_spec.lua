-- issue 13: corun.socket returns what LuaSocket returns. The same script
-- (013_socket_compat_script.lua) runs with Debian's real LuaSocket and with
-- corun.socket; every line it prints (values with their Lua types: floats
-- where LuaSocket gives floats, string ports from getsockname, error
-- strings, partial results) must be the same. Ports are masked, and
-- LuaSocket's '?' in argument errors stands for the function's name.

local helper = require "helper"

local script = "spec/regress/013_socket_compat_script.lua"

local function run(which)
  local out = os.tmpname()
  local ok = os.execute(("timeout -s KILL 30 lua5.4 %s %s >%s 2>&1")
                        :format(script, which, out))
  local text = helper.readfile(out)
  os.remove(out)
  return ok, text
end

describe("corun.socket against LuaSocket", function()
  it("gives the same results, line by line", function()
    local okr, real = run("real")
    local oko, ours = run("corun")
    assert(okr, "the script failed with LuaSocket:\n" .. real)
    assert(oko, "the script failed with corun.socket:\n" .. ours)
    local rl, ol = {}, {}
    for l in real:gmatch("[^\n]+") do rl[#rl + 1] = l end
    for l in ours:gmatch("[^\n]+") do ol[#ol + 1] = l end
    assert.is_true(#rl > 50)
    for i = 1, math.max(#rl, #ol) do
      assert.same(rl[i], ol[i])
    end
  end)
end)
