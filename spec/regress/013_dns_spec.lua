-- issue 13: corun.dns (resolve, reverse on libuv's thread pool) and
-- tcp.listen resolving names without blocking the loop thread.

local corun = require "corun"
local helper = require "helper"

-- Occupy every thread of libuv's pool: each corun.fs.read of a FIFO
-- blocks a pool thread in open() until someone opens the FIFO to write.
-- Returns release(), which lets them all finish.
local function block_pool()
  local n = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local fifos, readers = {}, {}
  for i = 1, n do
    fifos[i] = dir .. "/f" .. i
    assert(os.execute("mkfifo " .. fifos[i]))
    readers[i] = corun.spawn(corun.fs.read, fifos[i])
  end
  corun.sleep(0.05)  -- every reader is inside open()
  return function()
    for i = 1, n do
      local f = assert(io.open(fifos[i], "w"))  -- the reader is waiting
      f:close()
    end
    for i = 1, n do readers[i]:join() end
    os.execute("rm -rf " .. dir)
  end
end

describe("corun.dns", function()
  after_each(helper.check)

  it("resolve: localhost, numeric addresses, family and socktype", function()
    corun.run(function()
      local list = assert(corun.dns.resolve("localhost", {family = "inet"}))
      assert.is_true(#list >= 1)
      assert.same("127.0.0.1", list[1].addr)
      assert.same("inet", list[1].family)
      assert.same("stream", list[1].socktype)
      for _, a in ipairs(list) do assert.same("inet", a.family) end
      list = assert(corun.dns.resolve("::1", {family = "inet6"}))
      assert.same({addr = "::1", family = "inet6", socktype = "stream"},
                  {addr = list[1].addr, family = list[1].family,
                   socktype = list[1].socktype})
      list = assert(corun.dns.resolve("127.0.0.1", {socktype = "dgram"}))
      assert.same("dgram", list[1].socktype)
      list = assert(corun.dns.resolve("127.0.0.1", {socktype = "any"}))
      assert.is_true(#list >= 2)  -- one entry per socket type
      list = assert(corun.dns.resolve("localhost"))
      local seen = {}
      for _, a in ipairs(list) do seen[a.addr] = true end
      assert.is_true(seen["127.0.0.1"] or seen["::1"])
    end)
  end)

  it("resolve: an unknown name fails with the EAI code", function()
    corun.run(function()
      local r, err, code = corun.dns.resolve("no-such-host.invalid",
                                             {timeout = 10})
      assert.is_nil(r)
      assert.is_string(code)
      assert.truthy(code:find("^EAI_"))
      assert.truthy(err:find("^" .. code .. ": .+"))
      r, err, code = corun.dns.resolve("::1", {family = "inet"})
      assert.is_nil(r)
      assert.truthy(code:find("^EAI_"))
    end)
  end)

  it("resolve and reverse: misuse raises, outside a task too", function()
    helper.raises("must be called from inside a task", corun.dns.resolve,
                  "localhost")
    helper.raises("must be called from inside a task", corun.dns.reverse,
                  "127.0.0.1")
    corun.run(function()
      helper.raises("bad argument #1 to 'resolve'", corun.dns.resolve)
      helper.raises("bad argument #1 to 'resolve' (empty name)",
                    corun.dns.resolve, "")
      helper.raises("family must be", corun.dns.resolve, "x", {family = "ipx"})
      helper.raises("socktype must be", corun.dns.resolve, "x",
                    {socktype = "seqpacket"})
      helper.raises("timeout must be", corun.dns.resolve, "x", {timeout = -1})
      helper.raises("bad argument #2 to 'resolve' (table expected)",
                    corun.dns.resolve, "x", 5)
      helper.raises("bad argument #1 to 'reverse' (not a numeric",
                    corun.dns.reverse, "localhost")
      helper.raises("timeout must be", corun.dns.reverse, "127.0.0.1",
                    {timeout = "soon"})
    end)
  end)

  it("reverse: 127.0.0.1 is localhost; a nameless address fails", function()
    corun.run(function()
      assert.same("localhost", corun.dns.reverse("127.0.0.1"))
      local r, err = corun.dns.reverse("192.0.2.1", {timeout = 5})
      assert.is_nil(r)
      assert.is_string(err)
    end)
  end)

  it("resolve and reverse are suspension points with timeouts", function()
    corun.run(function()
      local release = block_pool()
      local ticks = 0
      local ticker = corun.spawn(function()
        for _ = 1, 5 do corun.sleep(0.01); ticks = ticks + 1 end
      end)
      assert.same(helper.fail("timeout"),
                  helper.both(corun.dns.resolve("localhost", {timeout = 0.1})))
      assert.same(helper.fail("timeout"),
                  helper.both(corun.dns.reverse("127.0.0.1", {timeout = 0.05})))
      ticker:join()
      assert.same(5, ticks)  -- the loop ran while the names were resolved
      release()
      corun.sleep(0.05)  -- the abandoned requests finish and free themselves
      assert(corun.dns.resolve("localhost"))
    end)
  end)

  it("a waiting resolve or reverse is cancelled at once", function()
    corun.run(function()
      local release = block_pool()
      local after = 0
      local t1 = corun.spawn(function()
        corun.dns.resolve("localhost")
        after = after + 1
      end)
      local t2 = corun.spawn(function()
        corun.dns.reverse("127.0.0.1")
        after = after + 1
      end)
      corun.sleep(0.02)
      t1:cancel()
      t2:cancel()
      corun.sleep(0)
      assert.same("cancelled", t1:status())
      assert.same("cancelled", t2:status())
      release()
      corun.sleep(0.05)
      assert.same(0, after)
    end)
  end)

  it("a resolve whose answer came before the cancel is still cancelled",
     function()
    corun.run(function()
      local got
      local t = corun.spawn(function() got = corun.dns.resolve("127.0.0.1") end)
      corun.sleep(0)   -- t parks in resolve
      os.execute("sleep 0.05")   -- the pool answers while the loop is busy
      t:cancel()
      corun.sleep(0.02)
      assert.same("cancelled", t:status())
      assert.is_nil(got)
    end)
  end)
end)

describe("tcp.listen resolving", function()
  after_each(helper.check)

  it("resolves a name on the thread pool while other tasks run", function()
    corun.run(function()
      local release = block_pool()
      local log = {}
      local lt = corun.spawn(function()
        local s = assert(corun.tcp.listen("localhost", 0, function() end))
        log[#log + 1] = "listening"
        s:close()
      end)
      corun.sleep(0.05)
      log[#log + 1] = "main ran"
      release()
      lt:join()
      assert.same({"main ran", "listening"}, log)
    end)
  end)

  it("a listen waiting for its name can be cancelled", function()
    corun.run(function()
      local release = block_pool()
      local t = corun.spawn(function()
        corun.tcp.listen("localhost", 0, function() end)
        error("not reached")
      end)
      corun.sleep(0.02)
      t:cancel()
      corun.sleep(0)
      assert.same("cancelled", t:status())
      release()
      corun.sleep(0.02)
    end)
  end)

  it("numeric addresses bind at once; names work outside a task", function()
    local s = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
    assert.is_true(s.port > 0)
    s:close()
    s = assert(corun.tcp.listen("localhost", 0, function() end))
    assert.is_true(s.port > 0)
    s:close()
    corun.run(function()
      local r, err = corun.tcp.listen("no-such-host.invalid", 0, function() end)
      assert.is_nil(r)
      assert.truthy(err:find("^EAI_"))
      s = assert(corun.tcp.listen("localhost", 0, function(c)
        c:write("hi\n")
      end))
      local c = assert(corun.tcp.connect("127.0.0.1", s.port))
      assert.same("hi", c:read("l"))
      c:close()
      s:close()
    end)
  end)
end)
