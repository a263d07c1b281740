-- spec/regress/009_waiter_errors_spec.lua: the error style of fs.c and
-- signal.c (issue 9 section 3). Argument errors go through the aux.c
-- helper (one spelling, `bad argument #N to 'name' (...)`), never
-- hand-formatted; signal.c returns libuv's failures as nil, "ENAME:
-- message", "ENAME" instead of raising them. (libuv's signal watchers
-- cannot be made to fail on demand on Linux: every loop has made its own
-- signal pipe already, and the names corun accepts can all be caught; so
-- that path is checked in the source.)

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local function message(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok)
  return tostring(e)
end

describe("fs and signal errors (009)", function()
  after_each(helper.check)

  it("fs.c and signal.c do not hand-format argument errors", function()
    for _, path in ipairs { "src/fs.c", "src/signal.c" } do
      local text = assert(helper.readfile(path), path)
      local n = 0
      for line in text:gmatch("[^\n]*") do
        n = n + 1
        if line:find("bad argument #", 1, true) then
          error(("%s:%d hand-formats an argument error: %s"):format(path, n, line))
        end
      end
    end
  end)

  it("signal.c returns libuv failures instead of raising them", function()
    local text = assert(helper.readfile("src/signal.c"))
    local n = 0
    for line in text:gmatch("[^\n]*") do
      n = n + 1
      if line:find("luaL_error(", 1, true) then
        error(("src/signal.c:%d raises: %s"):format(n, line))
      end
    end
    -- the one failure path: nil, "ENAME: message", "ENAME"
    assert.truthy(text:find('lua_pushstring(L, uv_err_name(r));', 1, true))
  end)

  it("argument errors of fs have one spelling", async(function()
    local fs = corun.fs
    assert.equal("bad argument #1 to 'fs.read' (string expected, got nil)",
                 message(fs.read, nil))
    assert.equal("bad argument #1 to 'fs.list' (path contains a zero byte)",
                 message(fs.list, "a\0b"))
    assert.equal("bad argument #2 to 'fs.mkdir' (mode must be an integer "
                 .. "from 0 to 4095)", message(fs.mkdir, "x", -1))
    assert.equal("bad argument #2 to 'fs.write' (string expected, got table)",
                 message(fs.write, "x", {}))
  end))

  it("argument errors of signal have one spelling", async(function()
    local signal = corun.signal
    assert.equal("bad argument #1 to 'signal.wait' (string expected, got "
                 .. "number)", message(signal.wait, 15))
    assert.equal("bad argument #2 to 'signal.wait' (timeout must be a "
                 .. "number >= 0)", message(signal.wait, "usr1", -1))
    assert.equal("bad argument #2 to 'signal.on' (function expected, got "
                 .. "nil)", message(signal.on, "usr1", nil))
    -- the list of names it gives is the list it accepts ("quit" included)
    local e = message(signal.wait, "kill")
    assert.truthy(e:find("^bad argument #1 to 'signal.wait' %(unknown signal "
                         .. "'kill': expected "), e)
    assert.truthy(e:find('"quit"', 1, true), e)
    local h = signal.on("quit", function() end)
    h:cancel()
  end))
end)
