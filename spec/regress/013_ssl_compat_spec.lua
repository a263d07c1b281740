-- issue 13: corun.ssl returns what LuaSec returns. The same script
-- (013_ssl_compat_script.lua) runs with Debian's real LuaSec + LuaSocket
-- and with corun.ssl + corun.socket, against one `openssl s_server -www`
-- with the test CA of spec/pki.lua; every line it prints (values with their
-- Lua types, error strings, partial results, "wantread" on timeouts) must
-- be the same.

local helper = require "helper"
local pki = require "pki"

local script = "spec/regress/013_ssl_compat_script.lua"

local function run(which, port, dir)
  local out = os.tmpname()
  local ok = os.execute(("timeout -s KILL 60 lua5.4 %s %s %d %s >%s 2>&1")
                        :format(script, which, port, dir, out))
  local text = helper.readfile(out)
  os.remove(out)
  return ok, text
end

describe("corun.ssl against LuaSec", function()
  local dir, pidfile = pki.make(), os.tmpname()
  teardown(function()
    local pid = helper.readfile(pidfile):match("%d+")
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.remove(pidfile)
    pki.cleanup()
  end)

  it("gives the same results, line by line", function()
    local port = helper.free_port()
    assert(os.execute(("unset LD_PRELOAD; cd %s && openssl s_server -accept "
      .. "127.0.0.1:%d -cert srv.pem -key srv.key -www </dev/null >/dev/null "
      .. "2>&1 & echo $! >%s"):format(dir, port, pidfile)))
    local okr, real = run("real", port, dir)
    local oko, ours = run("corun", port, dir)
    assert(okr, "the script failed with LuaSec:\n" .. real)
    assert(oko, "the script failed with corun.ssl:\n" .. ours)
    local rl, ol = {}, {}
    for l in real:gmatch("[^\n]+") do rl[#rl + 1] = l end
    for l in ours:gmatch("[^\n]+") do ol[#ol + 1] = l end
    assert.is_true(#rl > 30)
    for i = 1, math.max(#rl, #ol) do
      assert.same(rl[i], ol[i])
    end
  end)
end)
