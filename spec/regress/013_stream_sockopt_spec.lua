-- issue 13: the socket methods of TCP streams (src/sockopt.c) that
-- corun.socket builds on: getpeername, getsockname, shutdown, setoption,
-- fileno; and core.gettimeofday / core.gethostname.

local corun = require "corun"
local core = require "corun.core"
local helper = require "helper"

local function pair(fn)
  local accepted = corun.queue()
  local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
    accepted:put(s)
    corun.sleep(10)   -- keep it open until the test closes it
  end))
  local c = assert(corun.tcp.connect("127.0.0.1", srv.port))
  local a = accepted:get()
  local ok, err = pcall(fn, c, a, srv.port)
  c:close()
  a:close()
  srv:close()
  for _, t in ipairs(corun.tasks()) do
    if t ~= corun.current() then t:cancel() end
  end
  corun.sleep(0)
  if not ok then error(err, 0) end
end

describe("stream socket methods", function()
  after_each(helper.check)

  it("getpeername and getsockname", function()
    corun.run(function()
      pair(function(c, a, port)
        assert.same(helper.both("127.0.0.1", port, "inet"),
                    helper.both(c:getpeername()))
        local h, p, f = c:getsockname()
        assert.same(helper.both(h, p, f), helper.both(a:getpeername()))
        assert.same({"127.0.0.1", "inet"}, {h, f})
      end)
    end)
  end)

  it("shutdown ends the writing side only", function()
    corun.run(function()
      pair(function(c, a)
        c:write("last words")
        assert.same(true, c:shutdown())
        assert.same("last words", a:read("a"))   -- then EOF
        a:write("reply\n")
        assert.same("reply", c:read("l"))
        assert.same(true, c:shutdown())          -- twice is harmless
      end)
    end)
  end)

  it("setoption: nodelay, keepalive, buffer sizes; misuse raises", function()
    corun.run(function()
      pair(function(c)
        assert.same(true, c:setoption("nodelay", true))
        assert.same(true, c:setoption("keepalive", true))
        assert.same(true, c:setoption("keepalive", 30))
        assert.same(true, c:setoption("keepalive", false))
        assert.same(true, c:setoption("sndbuf", 65536))
        assert.same(true, c:setoption("rcvbuf", 65536))
        helper.raises("unknown option 'linger'", c.setoption, c, "linger", 1)
        helper.raises("size must be > 0", c.setoption, c, "rcvbuf", 0)
        helper.raises("seconds must be > 0", c.setoption, c, "keepalive", -5)
        assert.is_true(c:fileno() >= 0)
        assert.same(0, c:_buffered())
        assert.same("", c:_take())
      end)
    end)
  end)

  it("closed streams answer nil, \"closed\"; pipes are not sockets", function()
    corun.run(function()
      local c
      pair(function(cc) c = cc end)
      assert.same(helper.fail("closed"), helper.both(c:getpeername()))
      assert.same(helper.fail("closed"), helper.both(c:shutdown()))
      assert.same(helper.fail("closed"), helper.both(c:setoption("nodelay", true)))
      assert.is_nil(c:fileno())
      local p = assert(corun.process.spawn("cat", {}, {stdin = "pipe",
                                                       stdout = "pipe"}))
      local r, err, code = p.stdin:getpeername()
      assert.same({nil, "ENOTSUP"}, {r, code})
      assert.truthy(err:find("^ENOTSUP: "))
      p.stdin:close()
      p:wait()
      helper.raises("bad argument #1 to 'getpeername' (corun.stream expected",
                    c.getpeername, {})
    end)
  end)

  it("gettimeofday and gethostname", function()
    assert.is_true(math.abs(core.gettimeofday() - os.time()) < 2)
    assert.is_string(core.gethostname())
  end)
end)
