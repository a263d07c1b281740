-- spec/stream_spec.lua: streams, TCP clients and servers (src/stream.c).
-- Everything stays on 127.0.0.1 / ::1. What needs its own process (stderr,
-- exit status, the loop exiting) runs in a child corun runner.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, fails = helper.both, helper.fail, helper.fails
local async = cb.async
local tcp = corun.tcp

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"


-- fn(...) must raise an error whose text contains 'text'.
local function raises(text, fn, ...)
  local e = catch(fn, ...)
  assert(e ~= nil, "did not raise (expected '" .. text .. "')")
  assert(tostring(e):find(text, 1, true),
         ("expected '%s' in the error, got: %s"):format(text, tostring(e)))
end

-- The results must be nil and an error starting with 'code: '.

-- A server on 127.0.0.1 (port 0) running handler(stream) per connection.
local function serve(handler, opts)
  local srv = assert(tcp.listen("127.0.0.1", 0, handler, opts))
  assert(math.type(srv.port) == "integer" and srv.port > 0)
  return srv
end

-- An echo handler: every line back, until end of stream.
local function echo(s)
  local s <close> = s
  while true do
    local line = s:read("L")
    if not line then return end
    assert(s:write(line))
  end
end

-- Run 'code' with the corun runner (corun -e CODE) from a task. Returns
-- its exit status, stdout, stderr and how long it ran; fails if it did not
-- exit within 'limit' seconds (it is then killed).
local function runner(code, limit)
  limit = limit or 10
  -- Under ASan, freed memory is not quarantined in the child (so that its
  -- VmRSS tracks live memory); harmless otherwise.
  local p = assert(corun.process.spawn("sh", { "-c",
    'ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" '
    .. 'exec "$0" -e "$1"', CORUN, code },
    { stdin = "null", stdout = "pipe", stderr = "pipe" }))
  local out, err
  local t0 = corun.time()
  local ro = corun.spawn(function() out = p.stdout:read("a") end)
  local re = corun.spawn(function() err = p.stderr:read("a") end)
  local status, sig = p:wait(limit)
  local took = corun.time() - t0
  if status == nil then
    p:kill("kill")
    p:wait()
  end
  ro:join()
  re:join()
  assert(status ~= nil, ("the runner did not exit within %g s\nstdout: %s\n"
    .. "stderr: %s"):format(limit, out, err))
  assert(sig == nil, "the runner was killed by signal " .. tostring(sig)
    .. "\nstderr: " .. err)
  return status, out, err, took
end

-- A listener that never accepts: a child runner whose loop is blocked in
-- io.read (the parent holds its stdin), listening with backlog 0. Returns
-- the child process and the port; p:kill("kill") ends it.
local function never_accepting()
  local p = assert(corun.process.spawn(CORUN, { "-e", [[
    local corun = require "corun"
    local s = assert(corun.tcp.listen("127.0.0.1", 0, function() end,
                                      { backlog = 0 }))
    io.stdout:write(s.port, "\n")
    io.stdout:flush()
    io.read("l")  -- blocks the loop: nothing is ever accepted
  ]] }, { stdin = "pipe", stdout = "pipe" }))
  local port = tonumber(p.stdout:read("l"))
  assert(port, "the listener did not start")
  return p, port
end

-- Resident memory of this process in bytes, from /proc/self/status.
local RSS = [[
  local function rss()
    local f = assert(io.open("/proc/self/status"))
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmRSS:%s*(%d+)")) * 1024
  end
]]

describe("corun.tcp", function()
  after_each(helper.check)

  it("listen on port 0 picks a free port; server.port tells it",
  async(function()
    local a = serve(echo)
    local b = serve(echo)
    assert.are_not.equal(a.port, b.port)
    local c <close> = assert(tcp.connect("127.0.0.1", b.port))
    assert.is_true(c:write("ping\n"))
    assert.equal("ping", c:read())
    a:close()
    b:close()
  end))

  it("an echo server serves 100 concurrent clients x 100 lines",
  async(function()
    local srv = serve(echo)
    local clients = {}
    for c = 1, 100 do
      clients[c] = corun.spawn(function()
        local s <close> = assert(tcp.connect("127.0.0.1", srv.port))
        for i = 1, 100 do
          local msg = ("client %d line %d %s"):format(c, i, ("x"):rep(i))
          assert(s:write(msg, "\n"))
          local got = s:read("l")
          if got ~= msg then
            error(("client %d line %d: got %q"):format(c, i, tostring(got)))
          end
        end
        return c
      end)
    end
    for c = 1, 100 do assert.equal(c, clients[c]:join()) end
    srv:close()
  end))

  it("connect resolves names (localhost)", async(function()
    local srv = serve(echo)
    local c <close> = assert(tcp.connect("localhost", srv.port))
    c:write("by name\n")
    assert.equal("by name", c:read("l"))
    srv:close()
  end))

  it("connect to a port nobody listens on: ECONNREFUSED", async(function()
    local srv = serve(echo)
    local port = srv.port
    srv:close()
    fails("ECONNREFUSED", tcp.connect("127.0.0.1", port))
    fails("ECONNREFUSED", tcp.connect("127.0.0.1", port, 1))
  end))

  it("connect with a timeout against a listener that never accepts: "
     .. "nil, 'timeout'", async(function()
    local p, port = never_accepting()
    local _ <close> = helper.closer(function() p:kill("kill") end)
    local conns, timed_out, took = {}, false, nil
    -- The first connections fill the backlog; then a SYN is dropped and
    -- the handshake cannot finish.
    for _ = 1, 8 do
      local t0 = corun.time()
      local c, err = tcp.connect("127.0.0.1", port, 0.2)
      if c == nil then
        assert.equal("timeout", err)
        timed_out, took = true, corun.time() - t0
        break
      end
      conns[#conns + 1] = c
    end
    assert.is_true(timed_out)
    assert(took >= 0.19 and took < 2, "took " .. took)
    for _, c in ipairs(conns) do c:close() end
    p:kill("kill")
    assert.same({ 0, "kill" }, { p:wait() })
  end))

  it("bad ports raise", async(function()
    raises("port", tcp.connect, "127.0.0.1", 0)
    raises("port", tcp.connect, "127.0.0.1", 65536)
    raises("port", tcp.listen, "127.0.0.1", -1, echo)
    raises("port", tcp.listen, "127.0.0.1", 65536, echo)
  end))

  it("IPv6 ::1 when available, else the IPv4 path", async(function()
    local v6 = tcp.listen("::1", 0, echo)
    if v6 then
      assert(v6.port > 0)
      local c <close> = assert(tcp.connect("::1", v6.port))
      c:write("over ipv6\n")
      assert.equal("over ipv6", c:read("l"))
      v6:close()
      fails("ECONNREFUSED", tcp.connect("::1", v6.port))
    else
      local srv = serve(echo)
      local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
      c:write("over ipv4\n")
      assert.equal("over ipv4", c:read("l"))
      srv:close()
    end
  end))

  it("server:close() stops accepting; accepted connections go on",
  async(function()
    local srv = serve(echo)
    local port = srv.port
    local c <close> = assert(tcp.connect("127.0.0.1", port))
    c:write("one\n")
    assert.equal("one", c:read())
    srv:close()
    srv:close()  -- harmless
    fails("ECONNREFUSED", tcp.connect("127.0.0.1", port))
    c:write("two\n")
    assert.equal("two", c:read())
  end))

  it("an error in a handler is reported on stderr and the server keeps "
     .. "serving (runner exits 1)", async(function()
    local status, out, err = runner([[
      local corun = require "corun"
      local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
        local s <close> = s
        local line = s:read("l")
        if line == "boom" then error("handler exploded") end
        s:write("echo:", line, "\n")
      end))
      for _, msg in ipairs { "a", "boom", "b", "boom", "c" } do
        local c <close> = assert(corun.tcp.connect("127.0.0.1", srv.port))
        c:write(msg, "\n")
        print(msg, c:read("l"))
      end
      srv:close()
      print("served")
    ]])
    assert.equal(1, status)
    assert.equal("a\techo:a\nboom\tnil\nb\techo:b\nboom\tnil\nc\techo:c\n"
                 .. "served\n", out)
    local _, n = err:gsub("handler exploded", "")
    assert.equal(2, n)
    assert.truthy(err:find("stack traceback:", 1, true))
  end))

  it("a listening server keeps the runner alive until closed",
  async(function()
    local p = assert(corun.process.spawn(CORUN, { "-e", [[
      local corun = require "corun"
      local srv
      srv = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
        local s <close> = s
        s:write("bye ", s:read("l"), "\n")
        srv:close()
      end))
      io.stdout:write(srv.port, "\n")
      io.stdout:flush()
    ]] }, { stdout = "pipe" }))
    local _ <close> = helper.closer(function() p:kill("kill") end)
    local port = tonumber(p.stdout:read("l"))
    assert.same(fail("timeout"), both(p:wait(0.2)))  -- still serving
    local c <close> = assert(tcp.connect("127.0.0.1", port))
    c:write("client\n")
    assert.equal("bye client", c:read("l"))
    assert.same({ 0 }, { p:wait(5) })
  end))
end)

describe("streams", function()
  after_each(helper.check)

  -- A server sending 'pieces' (with a short pause before each) and then
  -- closing; returns a connected client stream and the server.
  local function feeder(pieces, pause)
    local srv = serve(function(s)
      local s <close> = s
      for _, p in ipairs(pieces) do
        corun.sleep(pause or 0.005)
        assert(s:write(p))
      end
    end)
    return assert(tcp.connect("127.0.0.1", srv.port)), srv
  end

  it("read(n) returns exactly n bytes, fewer at the end, then nil",
  async(function()
    local c, srv = feeder { "ab", "cdefg", "hij" }
    assert.equal("", c:read(0))
    assert.equal("abcd", c:read(4))
    assert.equal("e", c:read(1))
    assert.equal("fghi", c:read(4))
    assert.equal("j", c:read(100))
    assert.is_nil(c:read(1))
    assert.equal("", c:read(0))
    c:close()
    srv:close()
  end))

  it("read('l') strips the newline, read('L') keeps it, read() is 'l'; "
     .. "the last unterminated line is returned, then nil", async(function()
    local c, srv = feeder { "one\ntw", "o\n", "\nthree\nfo", "ur" }
    assert.equal("one", c:read("l"))
    assert.equal("two\n", c:read("L"))
    assert.equal("", c:read())
    assert.equal("three", c:read("*l"))
    assert.equal("four", c:read("L"))
    assert.same(both(nil), both(c:read("l")))
    assert.is_nil(c:read("L"))
    c:close()
    srv:close()
  end))

  it("read('a') reads to the end of stream; '' when nothing is left",
  async(function()
    local c, srv = feeder { "x\n", "y", "z\n\nw" }
    assert.equal("x\n", c:read("L"))
    assert.equal("yz\n\nw", c:read("a"))
    assert.equal("", c:read("a"))
    assert.equal("", c:read("*a"))
    assert.is_nil(c:read("l"))
    c:close()
    srv:close()
  end))

  it("mixing modes on one stream loses no data", async(function()
    local pieces, whole = {}, {}
    for i = 1, 200 do
      local p = ("%d:%s\n"):format(i, ("abc"):rep(i % 7))
      if i % 3 == 0 then p = p .. "tail" .. i end
      pieces[#pieces + 1] = p
      whole[#whole + 1] = p
    end
    whole = table.concat(whole)
    local c, srv = feeder(pieces, 0)
    local got, k = {}, 0
    while true do
      k = k + 1
      local v
      if k % 4 == 0 then
        v = c:read("l")
        if v then v = v .. "\n" end  -- every line of the data ends in \n
      elseif k % 4 == 1 then v = c:read("L")
      elseif k % 4 == 2 then v = c:read(k % 13 + 1)
      else v = c:read(3)
      end
      if v == nil then break end
      got[#got + 1] = v
    end
    local s = table.concat(got)
    assert.equal(#whole, #s)
    assert.equal(whole, s)
    c:close()
    srv:close()
  end))

  it("reads larger than the 64 KB buffer: a long line, read(n), read('a')",
  async(function()
    local line = ("0123456789"):rep(30000)         -- 300 KB
    local block = ("abcdefgh"):rep(100000)         -- 800 KB
    local srv = serve(function(s)
      local s <close> = s
      assert(s:write(line, "\n", block, "rest\n", block))
    end)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    assert.equal(line, c:read("l"))
    assert.equal(block, c:read(#block))
    assert.equal("rest", c:read("l"))
    local all = c:read("a")
    assert.equal(#block, #all)
    assert.equal(block, all)
    srv:close()
  end))

  it("write accepts strings and numbers, several at once", async(function()
    local srv = serve(echo)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    assert.same(both(true), both(c:write("a", 1, 2.5, "", "b\n")))
    assert.same(both(true), both(c:write()))
    assert.equal("a12.5b", c:read("l"))
    raises("bad argument", c.write, c, {})
    srv:close()
  end))

  it("bad read formats raise", async(function()
    local srv = serve(echo)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    raises("invalid format", c.read, c, "x")
    raises("size", c.read, c, -1)
    raises("timeout", c.read, c, "l", -1)
    srv:close()
  end))

  it("a peer closing mid-line: the partial line, then nil", async(function()
    local srv = serve(function(s)
      s:write("complete\npart")
      s:close()
    end)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    assert.equal("complete", c:read("l"))
    assert.equal("part", c:read("l"))
    assert.is_nil(c:read("l"))
    assert.is_nil(c:read(1))
    assert.equal("", c:read("a"))
    srv:close()
  end))

  it("a peer closing mid-line with 'L' and n", async(function()
    local srv = serve(function(s)
      local s <close> = s
      s:write("abc\nde")
    end)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    assert.equal("abc\n", c:read("L"))
    assert.equal("de", c:read("L"))
    assert.is_nil(c:read("L"))
    srv:close()
  end))

  it("read with a timeout returns nil, 'timeout' and loses nothing",
  async(function()
    local go = corun.event()
    local srv = serve(function(s)
      local s <close> = s
      s:write("abc")
      go:wait()
      s:write("def\nghi")
      go:clear()
      go:wait()
    end)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    local t0 = corun.time()
    assert.same(fail("timeout"), both(c:read("l", 0.05)))
    assert(corun.time() - t0 >= 0.045)
    assert.same(fail("timeout"), both(c:read(10, 0.02)))
    assert.same(fail("timeout"), both(c:read("a", 0.02)))
    go:set()
    assert.equal("abcdef", c:read("l", 5))
    assert.equal("gh", c:read(2, 5))
    assert.same(fail("timeout"), both(c:read("l", 0)))
    go:set()
    assert.equal("i", c:read("l", 5))  -- the peer closed
    assert.is_nil(c:read("l", 5))
    srv:close()
  end))

  it("a reset connection: nil, 'ECONNRESET: ...'", async(function()
    local srv = serve(function(s)
      corun.sleep(0.05)
      s:close()  -- with unread data: the kernel resets the connection
    end)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    assert.is_true(c:write("never read\n"))
    assert.same(fail("ECONNRESET: connection reset by peer"),
                both(c:read("l")))
    fails("ECONNRESET", c:read("a"))
    srv:close()
  end))

  it("close: reading with nothing buffered gives nil, 'closed'; writing "
     .. "gives nil, 'closed'; close again is true", async(function()
    local srv = serve(echo)
    local c = assert(tcp.connect("127.0.0.1", srv.port))
    assert.is_true(c:close())
    assert.is_true(c:close())
    assert.same(fail("closed"), both(c:read("l")))
    assert.same(fail("closed"), both(c:read(1)))
    assert.same(fail("closed"), both(c:write("x")))
    assert.truthy(tostring(c):find("closed", 1, true))
    srv:close()
  end))

  it("close wakes a waiting reader (end of stream) and a writer parked "
     .. "under back-pressure (nil, 'closed')", async(function()
    local hold, drained = corun.event(), corun.queue()
    local srv = serve(function(s)
      local s <close> = s
      hold:wait()
      while s:read(65536) do end  -- drain, so that close can flush
      drained:put(true)
    end)
    local r = assert(tcp.connect("127.0.0.1", srv.port))
    local w = assert(tcp.connect("127.0.0.1", srv.port))
    local reader = corun.spawn(function() return both(r:read("l")) end)
    local writer = corun.spawn(function()
      local chunk = ("w"):rep(65536)
      while true do
        local ok, err = w:write(chunk)
        if not ok then return both(ok, err) end
      end
    end)
    corun.sleep(0.1)
    assert.equal("pending", writer:status())
    r:close()
    w:close()
    assert.same(both(nil), reader:join())
    assert.same(fail("closed"), writer:join())
    hold:set()
    assert.is_true(drained:get(5))
    assert.is_true(drained:get(5))
    srv:close()
  end))

  it("close flushes queued writes first", async(function()
    local data = ("0123456789abcdef"):rep(65536)  -- 1 MB
    local got = corun.queue()
    local srv = serve(function(s)
      local s <close> = s
      got:put(s:read("a"))
    end)
    local c = assert(tcp.connect("127.0.0.1", srv.port))
    assert.is_true(c:write(data))
    assert.is_true(c:close())
    local all = got:get()
    assert.equal(#data, #all)
    assert.equal(data, all)
    srv:close()
  end))

  it("streams are to-be-closed", async(function()
    local seen = corun.queue()
    local srv = serve(function(s)
      local s <close> = s
      seen:put(s:read("a"))
    end)
    local keep
    do
      local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
      keep = c
      c:write("hello\n")
    end
    assert.equal("hello\n", seen:get(5))  -- the peer saw the end of stream
    assert.same(fail("closed"), both(keep:read()))
    -- also on an error path
    local e = catch(function()
      local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
      keep = c
      error("oops")
    end)
    assert.truthy(tostring(e):find("oops", 1, true))
    assert.equal("", seen:get(5))
    assert.same(fail("closed"), both(keep:write("x")))
    srv:close()
  end))

  it("back-pressure: 20 MB to a slow reader keep memory bounded and "
     .. "arrive intact", async(function()
    -- In a child runner (its own VmRSS; under ASan freed memory is not
    -- quarantined there, so RSS tracks live memory).
    local status, out, err = runner(RSS .. [[
      local corun = require "corun"
      local N, CH = 320, 65536                      -- 20 MB
      local base = ("abcdefghijklmnopqrstuvwxyz0123456789")
                   :rep(CH // 36 + 1):sub(1, CH - 8)
      collectgarbage() collectgarbage()
      local before, peak = rss(), 0
      local function sample()
        local g = rss() - before
        if g > peak then peak = g end
      end
      local written, got, ahead = 0, 0, 0
      local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
        local s <close> = s
        for i = 1, N do
          assert(s:write(string.pack(">I8", i), base))
          written = written + CH
          if written - got > ahead then ahead = written - got end
        end
      end))
      local c <close> = assert(corun.tcp.connect("127.0.0.1", srv.port))
      corun.sleep(0.2)                    -- not reading at all for a while
      sample()
      local idle_written = written
      for i = 1, N do
        local chunk = c:read(CH)
        assert(#chunk == CH, "short chunk")
        assert(string.unpack(">I8", chunk) == i, "chunk out of order")
        assert(chunk:sub(9) == base, "corrupt chunk")
        got = got + CH
        if i % 8 == 0 then corun.sleep(0.002) sample() end
      end
      assert(c:read(1) == nil, "data after the end")
      sample()
      srv:close()
      print(idle_written, written, got, peak)
    ]], 30)
    assert.equal(0, status, err)
    local idle, written, got, peak = out:match("^(%d+)\t(%d+)\t(%d+)\t(%d+)")
    assert(idle, "unexpected output: " .. out .. err)
    idle, written, got, peak = tonumber(idle), tonumber(written),
                               tonumber(got), tonumber(peak)
    local total = 320 * 65536
    assert.equal(total, written)
    assert.equal(total, got)
    -- the writer was parked while nobody read
    assert(idle < total / 2, ("%d bytes written while nobody read"):format(idle))
    -- memory grew by much less than what was sent
    assert(peak < 10e6, ("memory grew by %d bytes"):format(peak))
  end))

  it("reading needs a task", async(function()
    local srv = serve(echo)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    local e
    corun.call_soon(function() e = catch(c.read, c, "l") end)
    corun.sleep(0.01)
    assert.truthy(tostring(e):find("inside a task", 1, true))
    srv:close()
  end))
end)

describe("cancellation of stream operations", function()
  after_each(helper.check)

  it("a task cancelled in read gets Cancelled; the stream stays usable",
  async(function()
    local srv = serve(echo)
    local c <close> = assert(tcp.connect("127.0.0.1", srv.port))
    local t = corun.spawn(function() return c:read("l") end)
    corun.sleep(0.02)
    assert.is_true(t:cancel())
    assert(corun.is_cancelled(catch(t.join, t)))
    c:write("still here\n")
    assert.equal("still here", c:read("l"))
    srv:close()
  end))

  it("a task cancelled in connect gets Cancelled", async(function()
    local srv = serve(echo)
    local t = corun.spawn(function()
      return tcp.connect("localhost", srv.port)
    end)
    corun.sleep(0)
    assert.is_true(t:cancel())
    assert(corun.is_cancelled(catch(t.join, t)))
    srv:close()
  end))

  it("tasks cancelled in read, write and connect leak no handle: the "
     .. "runner exits promptly", async(function()
    local status, out, err, took = runner([[
      local corun = require "corun"
      local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
        local s <close> = s
        corun.sleep(0.3)
        while s:read(65536) do end  -- drain until the client closes
      end))
      local port = srv.port
      local reader = corun.spawn(function()
        local c <close> = assert(corun.tcp.connect("127.0.0.1", port))
        return c:read("l")
      end)
      local writer = corun.spawn(function()
        local c <close> = assert(corun.tcp.connect("127.0.0.1", port))
        local chunk = ("x"):rep(65536)
        while true do assert(c:write(chunk)) end
      end)
      local connector = corun.spawn(function()
        return corun.tcp.connect("localhost", port)
      end)
      corun.sleep(0)
      connector:cancel()
      corun.sleep(0.1)
      print(reader:status(), writer:status(), connector:status())
      reader:cancel()
      writer:cancel()
      srv:close()
      corun.sleep(0)
      print(reader:status(), writer:status())
    ]], 10)
    assert.equal(0, status, err)
    assert.equal("pending\tpending\tcancelled\ncancelled\tcancelled\n", out)
    assert(took < 3, ("the runner took %.2f s to exit"):format(took))
  end))
end)
