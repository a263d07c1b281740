-- spec/regress/015_streams_spec.lua: issue 15, items 9 and 7.
-- 9. read("l") drops "\n" or "\r\n", read("L") keeps the end as it came;
--    read_until(delim); stream:lines(); peername() of both ends;
--    server.host; server:close({cancel = true}) cancels running handlers,
--    a plain close lets them finish.
-- 7. corun.stdin / stdout / stderr: async standard streams (a pipe, a
--    regular file); a child reading stdin line by line does not stop its
--    other tasks.

local corun = require "corun"
local helper = require "helper"
require "corun.busted"
local tcp = corun.tcp

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- A connected pair: the client stream and the server's stream (whose
-- handler parks until 'release' is set).
local function pair()
  local got = corun.queue()
  local release = corun.event()
  local srv = assert(tcp.listen("127.0.0.1", 0, function(s)
    got:put(s)
    release:wait()
  end))
  local c = assert(tcp.connect("127.0.0.1", srv.port))
  local s = got:get()
  return c, s, function()
    release:set()
    srv:close()
    c:close()
  end
end

describe("issue 15: streams", function()
  after_each(helper.check)

  it("read('l') drops \\n and \\r\\n; read('L') keeps them", corun.async(function()
    local c, s, done = pair()
    assert(c:write("one\r\ntwo\nthree\r\nfour\r\n\r\nlast"))
    assert.equal("one", s:read("l"))
    assert.equal("two", s:read())
    assert.equal("three\r\n", s:read("L"))
    assert.equal("four", s:read("l"))
    assert.equal("", s:read("l"))
    c:close()
    assert.equal("last", s:read("l"))
    assert.is_nil(s:read("l"))
    done()
  end))

  it("read_until returns the data before the delimiter", corun.async(function()
    local c, s, done = pair()
    assert(c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody;"))
    assert.equal("GET / HTTP/1.1\r\nHost: x", s:read_until("\r\n\r\n"))
    -- a delimiter split across writes
    local w = corun.spawn(function()
      corun.sleep(0.02)
      c:write("more\r")
      corun.sleep(0.02)
      c:write("\n\r\nrest")
      c:close()
    end)
    assert.equal("body", s:read_until(";"))
    assert.equal("more", s:read_until("\r\n\r\n"))
    assert.equal("rest", s:read_until("\r\n\r\n"))
    assert.is_nil(s:read_until("x"))
    w:join()
    assert.is_false(pcall(s.read_until, s, ""))
    local c2, s2, done2 = pair()
    assert.same({ nil, "timeout" }, { s2:read_until("\n", 0.02) })
    done2()
    done()
  end))

  it("stream:lines() iterates until the end of the stream", corun.async(function()
    local c, s, done = pair()
    corun.spawn(function()
      for _, l in ipairs { "a\r\n", "b\n", "c" } do
        c:write(l)
        corun.sleep(0.01)
      end
      c:close()
    end)
    local got = {}
    for line in s:lines() do got[#got + 1] = line end
    assert.same({ "a", "b", "c" }, got)
    local c2, s2, done2 = pair()
    c2:write("x\r\ny\n")
    c2:close()
    got = {}
    for line in s2:lines("L") do got[#got + 1] = line end
    assert.same({ "x\r\n", "y\n" }, got)
    done2()
    done()
  end))

  it("accepted connections know their peer; the server its host",
     corun.async(function()
    local peers = corun.queue()
    local srv = assert(tcp.listen("127.0.0.1", 0, function(s)
      peers:put({ s:peername() })
    end))
    assert.equal("127.0.0.1", srv.host)
    local c = assert(tcp.connect("127.0.0.1", srv.port))
    local host, port = c:peername()
    assert.equal("127.0.0.1", host)
    assert.equal(srv.port, port)
    local p = peers:get()
    assert.equal("127.0.0.1", p[1])
    assert.is_true(math.type(p[2]) == "integer" and p[2] > 0
                   and p[2] ~= srv.port)
    c:close()
    assert.same({ nil, "closed" }, { c:peername() })
    srv:close()
  end))

  it("server:close({cancel = true}) cancels the running handlers",
     corun.async(function()
    local started, log = corun.queue(), {}
    local srv = assert(tcp.listen("127.0.0.1", 0, function(s)
      started:put(true)
      local ok, e = pcall(corun.sleep, 30)
      log[#log + 1] = corun.is_cancelled(e) and "cancelled" or "slept"
      error(e, 0)
    end))
    local cs = {}
    for i = 1, 2 do
      cs[i] = assert(tcp.connect("127.0.0.1", srv.port))
      started:get()
    end
    srv:close({ cancel = true })
    corun.sleep(0.05)
    assert.same({ "cancelled", "cancelled" }, log)
    assert.equal(0, #corun.tasks() - 1)  -- only this spec's task is left
    for _, c in ipairs(cs) do
      assert.equal("", c:read("a"))  -- the server closed its end
      c:close()
    end
  end))

  it("a plain server:close() lets running handlers finish", corun.async(function()
    local started, finished = corun.queue(), corun.queue()
    local srv = assert(tcp.listen("127.0.0.1", 0, function(s)
      started:put(true)
      corun.sleep(0.05)
      s:write("done\n")
      finished:put(true)
    end))
    local c = assert(tcp.connect("127.0.0.1", srv.port))
    started:get()
    srv:close()
    assert.is_true(finished:get())
    assert.equal("done", c:read("l"))
    c:close()
  end))
end)

describe("issue 15: standard streams", function()
  after_each(helper.check)

  -- Run the corun runner on 'code' with stdin a pipe fed by feed(stdin);
  -- returns status, stdout, stderr.
  local function child(code, feed)
    local p = assert(corun.process.spawn(CORUN, { "-e", code },
      { stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
    local out, err
    local ro = corun.spawn(function() out = p.stdout:read("a") end)
    local re = corun.spawn(function() err = p.stderr:read("a") end)
    feed(p.stdin)
    p.stdin:close()
    local status = p:wait(20)
    ro:join()
    re:join()
    return status, out, err
  end

  it("a child reads stdin line by line while another task keeps ticking",
     corun.async(function()
    local status, out, err = child([[
local corun = require "corun"
local ticks = 0
local ticker = corun.spawn(function()
  while true do corun.sleep(0.01) ticks = ticks + 1 end
end)
for line in corun.stdin:lines() do
  corun.stdout:write(line, " ", ticks, "\n")
end
ticker:cancel()
corun.stderr:write("end\n")
]], function(stdin)
      stdin:write("one\r\n")
      corun.sleep(0.3)
      stdin:write("two\n")
      corun.sleep(0.3)
      stdin:write("three")
    end)
    assert.equal(0, status, err)
    assert.equal("end\n", err)
    local got = {}
    for name, n in out:gmatch("(%a+) (%d+)\n") do got[#got + 1] = { name, tonumber(n) } end
    assert.equal(3, #got, out)
    assert.same({ "one", "two", "three" }, { got[1][1], got[2][1], got[3][1] })
    -- ticks went on while the reader waited (about 30 per pause)
    assert.is_true(got[2][2] - got[1][2] >= 3, out)
    assert.is_true(got[3][2] - got[2][2] >= 3, out)
  end))

  it("works over a regular file too", corun.async(function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("a\r\nb\nHEAD\r\n\r\nrest")
    f:close()
    local code = "local corun = require 'corun'\n"
      .. "local i = corun.stdin\n"
      .. "corun.stdout:write(i:read('l'), '|', i:read('L'), '|', "
      .. "i:read_until('\\r\\n\\r\\n'), '|', i:read('a'), '|', "
      .. "tostring(i:read('l')), '\\n')\n"
    local code_path = os.tmpname()
    f = assert(io.open(code_path, "w"))
    f:write(code)
    f:close()
    local status, out, err = corun.process.run("sh", { "-c",
      '"$0" "$1" < "$2" > "$2.out"; s=$?; cat "$2.out"; rm -f "$2.out"; exit $s',
      CORUN, code_path, path })
    os.remove(path)
    os.remove(code_path)
    assert.equal(0, status, err)
    assert.equal("a|b\n|HEAD|rest|nil\n", out)
  end))
end)
