-- issue 13: corun.udp (bind, open, send, recv, connected mode, multicast,
-- broadcast, buffer sizes, errors, the bounded receive queue).

local corun = require "corun"
local helper = require "helper"

local function pair()
  local a = assert(corun.udp.bind("127.0.0.1", 0))
  local b = assert(corun.udp.bind("127.0.0.1", 0))
  local _, pa = a:getsockname()
  local _, pb = b:getsockname()
  return a, pa, b, pb
end

describe("corun.udp", function()
  after_each(helper.check)

  it("send and recv: data, the sender's host and port, in order", function()
    corun.run(function()
      local a, pa, b, pb = pair()
      assert.same(true, b:send("one", "127.0.0.1", pa))
      assert.same(true, b:send("", "127.0.0.1", pa))   -- an empty datagram
      assert.same(true, b:send(42, "127.0.0.1", pa))
      assert.same(helper.both("one", "127.0.0.1", pb), helper.both(a:recv()))
      assert.same(helper.both("", "127.0.0.1", pb), helper.both(a:recv()))
      assert.same(helper.both("42", "127.0.0.1", pb), helper.both(a:recv(1)))
      a:close()
      b:close()
    end)
  end)

  it("recv waits (a suspension point) and times out", function()
    corun.run(function()
      local a, pa, b = pair()
      local got
      local t = corun.spawn(function() got = {a:recv()} end)
      corun.sleep(0.02)
      assert.is_nil(got)
      b:send("late", "127.0.0.1", pa)
      t:join()
      assert.same("late", got[1])
      assert.same(helper.fail("timeout"), helper.both(a:recv(0.05)))
      assert.same(helper.fail("timeout"), helper.both(a:recv(0)))
      a:close()
      b:close()
    end)
  end)

  it("open(): an unbound socket is bound by its first send and gets replies",
     function()
    corun.run(function()
      local srv = assert(corun.udp.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      local echo = corun.spawn(function()
        local d, h, p = srv:recv()
        srv:send(d:upper(), h, p)
      end)
      local c = corun.udp.open()
      assert(c:send("ping", "127.0.0.1", port))
      assert.same("PING", (c:recv(2)))
      echo:join()
      local c6 = corun.udp.open("inet6")
      local s6 = assert(corun.udp.bind("::1", 0))
      local _, p6 = s6:getsockname()
      assert(c6:send("six", "::1", p6))
      local d, h = s6:recv(2)
      assert.same({"six", "::1"}, {d, h})
      for _, s in ipairs {srv, c, c6, s6} do s:close() end
    end)
  end)

  it("names are resolved; unresolvable hosts fail with the EAI code",
     function()
    corun.run(function()
      local a, pa, b = pair()
      assert.same(true, b:send("by name", "localhost", pa))
      assert.same("by name", (a:recv(2)))
      local r, err, code = b:send("x", "no-such-host.invalid", 9)
      assert.is_nil(r)
      assert.truthy(code:find("^EAI_"))
      assert.truthy(err:find("^" .. code .. ": "))
      r, err, code = corun.udp.bind("no-such-host.invalid", 0)
      assert.is_nil(r)
      assert.truthy(code:find("^EAI_"))
      local s = assert(corun.udp.bind("localhost", 0))
      s:close()
      a:close()
      b:close()
    end)
  end)

  it("a datagram larger than the limit fails with EMSGSIZE", function()
    corun.run(function()
      local a, pa, b = pair()
      assert.same({nil, "EMSGSIZE: message too long", "EMSGSIZE"},
                  {b:send(string.rep("x", 70000), "127.0.0.1", pa)})
      local big = string.rep("y", 60000)
      assert.same(true, b:send(big, "127.0.0.1", pa))
      assert.same(big, (a:recv(2)))
      a:close()
      b:close()
    end)
  end)

  it("connected mode: send without an address, only the peer is heard",
     function()
    corun.run(function()
      local a, pa, b, pb = pair()
      local other = assert(corun.udp.bind("127.0.0.1", 0))
      assert.same(true, a:connect("127.0.0.1", pb))
      assert.same(helper.both("127.0.0.1", pb), helper.both(a:getpeername()))
      assert.same(true, a:send("to b"))
      assert.same("to b", (b:recv(2)))
      other:send("stranger", "127.0.0.1", pa)   -- filtered by the kernel
      b:send("from b", "127.0.0.1", pa)
      assert.same(helper.both("from b", "127.0.0.1", pb),
                  helper.both(a:recv(2)))
      helper.raises("bad argument #3 to 'send' (the socket is connected",
                    a.send, a, "x", "127.0.0.1", pb)
      assert.same(true, a:connect())   -- disconnect
      local r, err = a:getpeername()
      assert.is_nil(r)
      assert.truthy(err:find("^ENOTCONN"))
      helper.raises("bad argument #3 to 'send' (host expected", a.send, a, "x")
      for _, s in ipairs {a, b, other} do s:close() end
    end)
  end)

  it("a connected socket hears that nobody listens (ECONNREFUSED)",
     function()
    corun.run(function()
      local gone = assert(corun.udp.bind("127.0.0.1", 0))
      local _, port = gone:getsockname()
      gone:close()
      local s = corun.udp.open()
      assert(s:connect("127.0.0.1", port))
      assert(s:send("anyone?"))
      local r, err, code = s:recv(2)
      assert.same({nil, "ECONNREFUSED"}, {r, code})
      assert.truthy(err:find("^ECONNREFUSED: "))
      assert.same(helper.fail("timeout"), helper.both(s:recv(0.02)))
      s:close()
    end)
  end)

  it("multicast: join a group on loopback, leave it", function()
    corun.run(function()
      local group = "239.255.13.13"
      local m = assert(corun.udp.bind("0.0.0.0", 0, {reuseaddr = true}))
      local _, port = m:getsockname()
      assert.same(true, m:join(group, "127.0.0.1"))
      local s = corun.udp.open()
      assert.same(true, s:setoption("multicast_interface", "127.0.0.1"))
      assert.same(true, s:setoption("multicast_loop", true))
      assert.same(true, s:setoption("multicast_ttl", 1))
      assert.same(true, s:send("to the group", group, port))
      assert.same("to the group", (m:recv(2)))
      assert.same(true, m:leave(group, "127.0.0.1"))
      local r, err, code = m:leave(group, "127.0.0.1")
      assert.is_nil(r)
      assert.is_string(code)
      assert.truthy(err:find("^" .. code))
      r, err, code = m:join("10.0.0.1")   -- not a multicast address
      assert.is_nil(r)
      assert.same("EINVAL", code)
      m:close()
      s:close()
    end)
  end)

  it("broadcast needs the option; ttl and buffer sizes", function()
    corun.run(function()
      local s = corun.udp.open()
      assert.same({nil, "EACCES: permission denied", "EACCES"},
                  {s:send("x", "255.255.255.255", 9)})
      assert.same(true, s:setoption("broadcast", true))
      assert.same(true, s:send("x", "255.255.255.255", 9))
      assert.same(true, s:setoption("ttl", 5))
      assert.same(true, s:setoption("rcvbuf", 65536))
      assert.is_true(s:getoption("rcvbuf") >= 65536)  -- Linux doubles it
      assert.same(true, s:setoption("sndbuf", 65536))
      assert.is_true(s:getoption("sndbuf") >= 65536)
      assert.truthy(s:fileno() >= 0)
      helper.raises("unknown option 'nodelay'", s.setoption, s, "nodelay", 1)
      helper.raises("size must be > 0", s.setoption, s, "rcvbuf", 0)
      helper.raises("integer or boolean expected", s.setoption, s, "ttl", "x")
      helper.raises("only \"sndbuf\" and \"rcvbuf\"", s.getoption, s, "ttl")
      s:close()
      assert.is_nil(s:fileno())
    end)
  end)

  it("closed sockets: recv, send and the rest answer nil, \"closed\"",
     function()
    corun.run(function()
      local a, pa, b = pair()
      b:send("unread", "127.0.0.1", pa)
      corun.sleep(0.01)
      local got
      local waiter = corun.spawn(function() got = helper.both(b:recv()) end)
      corun.sleep(0)
      b:close()
      waiter:join()
      assert.same(helper.fail("closed"), got)  -- the waiter is woken
      a:close()
      assert.same(helper.fail("closed"), helper.both(a:recv()))
      assert.same(helper.fail("closed"), helper.both(a:send("x", "127.0.0.1", 9)))
      assert.same(helper.fail("closed"), helper.both(a:connect("127.0.0.1", 9)))
      assert.same(helper.fail("closed"), helper.both(a:getsockname()))
      assert.same(helper.fail("closed"), helper.both(a:join("239.1.1.1")))
      assert.same(true, a:close())   -- closing twice is harmless
      assert.truthy(tostring(a):find("corun.udp (closed)", 1, true))
    end)
  end)

  it("a waiting recv is cancelled at once; no datagram is lost", function()
    corun.run(function()
      local a, pa, b = pair()
      local after = false
      local t = corun.spawn(function() a:recv(); after = true end)
      corun.sleep(0.01)
      t:cancel()
      corun.sleep(0)
      assert.same("cancelled", t:status())
      assert.is_false(after)
      b:send("kept", "127.0.0.1", pa)
      assert.same("kept", (a:recv(2)))
      -- cancelled while a datagram is on its way to it
      t = corun.spawn(function() a:recv() end)
      corun.sleep(0.01)
      b:send("also kept", "127.0.0.1", pa)
      t:cancel()
      corun.sleep(0)
      assert.same("also kept", (a:recv(2)))
      a:close()
      b:close()
    end)
  end)

  it("the receive queue is bounded when nobody receives", function()
    corun.run(function()
      local a, pa, b = pair()
      assert(a:setoption("rcvbuf", 4096))
      for i = 1, 1000 do
        b:send(tostring(i), "127.0.0.1", pa)
        if i % 5 == 0 then corun.sleep(0.001) end
      end
      corun.sleep(0.02)
      local got = {}
      while true do
        local d = a:recv(0.05)
        if not d then break end
        got[#got + 1] = tonumber(d)
      end
      assert.is_true(#got >= 128)
      assert.is_true(#got < 1000)
      for i = 1, 128 do assert.same(i, got[i]) end
      -- reading resumes once the queue drains
      b:send("after", "127.0.0.1", pa)
      assert.same("after", (a:recv(2)))
      a:close()
      b:close()
    end)
  end)

  it("misuse raises", function()
    helper.raises("bad argument #1 to 'open' (family must be", corun.udp.open, "ipx")
    helper.raises("bad argument #2 to 'bind' (port expected", corun.udp.bind,
                  "127.0.0.1")
    helper.raises("bad argument #2 to 'bind' (port must be 0..65535)",
                  corun.udp.bind, "127.0.0.1", 70000)
    helper.raises("bad argument #1 to 'bind' (string expected",
                  corun.udp.bind, nil, 0)
    helper.raises("bad argument #3 to 'bind' (table expected",
                  corun.udp.bind, "127.0.0.1", 0, 5)
    local s = corun.udp.open()
    helper.raises("bad argument #2 to 'send' (string expected", s.send, s, {})
    helper.raises("bad argument #4 to 'send' (port must be 1..65535)",
                  s.send, s, "x", "127.0.0.1", 0)
    helper.raises("bad argument #1 to 'recv' (corun.udp expected",
                  s.recv, {})
    helper.raises("recv: must be called from inside a task", s.recv, s)
    s:close()
    -- outside a task, numeric addresses work (nothing waits)
    local a = assert(corun.udp.bind("127.0.0.1", 0))
    local _, pa = a:getsockname()
    local b = assert(corun.udp.bind("127.0.0.1", 0))
    assert.same(true, b:send("plain", "127.0.0.1", pa))
    a:close()
    b:close()
  end)

  it("an unclosed socket is collected", function()
    corun.run(function()
      local a, pa, b = pair()
      b:send("x", "127.0.0.1", pa)
      corun.sleep(0.01)
    end)
    collectgarbage()
    collectgarbage()
  end)
end)
