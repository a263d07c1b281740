-- spec/redis_spec.lua: the Redis client corun.redis.connect (src/redis.c,
-- lua/corun/redis.lua): every reply type, pipelining, a server restart
-- mid-stream, URL forms (db, password, unix socket) and bad URLs.
-- The server: CORUN_REDIS_URL (test/run.sh starts one) or a throwaway
-- redis-server of our own (helper.redis). Tests that stop, restart or
-- configure a server start throwaway servers (helper.redis_server).
-- The queue is in spec/redis_queue_spec.lua.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, raises = helper.both, helper.fail, helper.raises
local async = cb.async

-- redis-cli ARGS... (without LD_PRELOAD: the ASan stage sets it) from a
-- task; returns its exit code and stdout.
local function cli(...)
  local code, out = corun.process.run("env",
    { "-u", "LD_PRELOAD", "redis-cli", ... })
  return code, out
end

describe("corun.redis client", function()
  local url, port, stop, P
  setup(function()
    url, port, stop = helper.redis()
    P = helper.redis_prefix("client")
  end)
  teardown(function() stop() end)
  after_each(helper.check)

  --[[ replies ]]

  it("status, integer, bulk and nil replies", async(function()
    local r <close> = corun.redis.connect(url)
    assert.same(both("OK"), both(r:call("SET", P .. "s", "value")))
    assert.same(both("PONG"), both(r:call("PING")))
    assert.same(both("value"), both(r:call("GET", P .. "s")))
    assert.same(both(nil), both(r:call("GET", P .. "missing")))
    local n = r:call("INCR", P .. "n")
    assert.equal(1, n)
    assert.equal("integer", math.type(n))
    assert.equal(-5, r:call("DECRBY", P .. "n", 6))
    -- bulk strings are binary-safe; numbers are sent as their text
    local bin = "a\0b\r\nc" .. string.rep("\255", 3)
    r:call("SET", P .. "bin", bin)
    assert.equal(bin, r:call("GET", P .. "bin"))
    r:call("SET", P .. "empty", "")
    assert.equal("", r:call("GET", P .. "empty"))
    r:call("SET", P .. "num", 42)
    assert.equal("42", r:call("GET", P .. "num"))
    assert.equal("2.5", r:call("INCRBYFLOAT", P .. "num2", 2.5))
    local big = string.rep("x", 1 << 20)
    r:call("SET", P .. "big", big)
    assert.equal(big, r:call("GET", P .. "big"))
  end))

  it("array, nested array and empty array replies", async(function()
    local r <close> = corun.redis.connect(url)
    assert.equal(3, r:call("RPUSH", P .. "l", "a", "b", "c"))
    assert.same({ "a", "b", "c" }, r:call("LRANGE", P .. "l", 0, -1))
    assert.same({}, r:call("LRANGE", P .. "nolist", 0, -1))
    -- nil inside an array: MGET of a missing key
    local m = r:call("MGET", P .. "l:x", P .. "missing", P .. "l:y")
    assert.equal("table", type(m))
    assert.is_nil(m[1])
    assert.is_nil(m[2])
    r:call("SET", P .. "l:y", "y")
    m = r:call("MGET", P .. "missing", P .. "l:y")
    assert.is_nil(m[1])
    assert.equal("y", m[2])
    -- nested: integers, strings, a status and empty arrays inside arrays
    local v = r:call("EVAL", [[return {1, {2, "x", {3, {}}}, "y",
      redis.status_reply("FINE")}]], 0)
    assert.same({ 1, { 2, "x", { 3, {} } }, "y", "FINE" }, v)
    -- a real nested reply: XRANGE
    local id = r:call("XADD", P .. "stream", "*", "f", "v")
    assert.same({ { id, { "f", "v" } } }, r:call("XRANGE", P .. "stream", "-", "+"))
  end))

  it("an error reply returns nil, message and the connection goes on",
  async(function()
    local r <close> = corun.redis.connect(url)
    local v, err = r:call("NOSUCHCOMMAND", "x")
    assert.is_nil(v)
    assert.matches("^ERR unknown command", err)
    r:call("SET", P .. "str", "text")
    v, err = r:call("LPUSH", P .. "str", "x")
    assert.is_nil(v)
    assert.matches("^WRONGTYPE", err)
    assert.same(both(nil, "ERR value is not an integer or out of range"),
                both(r:call("INCR", P .. "str")))
    assert.same(both("text"), both(r:call("GET", P .. "str")))
  end))

  it("an error inside an array is a table {err = message} (MULTI/EXEC)",
  async(function()
    local r <close> = corun.redis.connect(url)
    r:call("SET", P .. "tx", "not a number")
    assert.equal("OK", r:call("MULTI"))
    assert.equal("QUEUED", r:call("SET", P .. "tx2", "1"))
    assert.equal("QUEUED", r:call("INCR", P .. "tx"))
    assert.equal("QUEUED", r:call("INCR", P .. "tx2"))
    local res = r:call("EXEC")
    assert.same({ "OK", { err = "ERR value is not an integer or out of range" },
                  2 }, res)
    assert.equal("2", r:call("GET", P .. "tx2"))
    -- a command refused while queueing fails the whole EXEC: nil, message
    assert.equal("OK", r:call("MULTI"))
    assert.same(both(nil, "ERR wrong number of arguments for 'set' command"),
                both(r:call("SET", P .. "only-key")))
    local v, err = r:call("EXEC")
    assert.is_nil(v)
    assert.matches("^EXECABORT", err)
  end))

  it("bad arguments raise naming the argument", async(function()
    local r <close> = corun.redis.connect(url)
    raises("call: argument 3 must be a string or a number",
           r.call, r, "SET", P .. "k", {})
    raises("call: argument 2 must be a string or a number",
           r.call, r, "GET", nil)
    raises("call: a command expected", r.call, r)
    assert.equal("PONG", r:call("PING"))  -- nothing half-sent
  end))

  it("call and pipeline outside a task raise 'inside a task'", function()
    local r = corun.redis.connect(url)
    raises("inside a task", r.call, r, "PING")
    raises("inside a task", r.pipeline, r, function(p) p:call("PING") end)
    r:close()
  end)

  it("close: later calls raise; tostring still works", async(function()
    local r = corun.redis.connect(url)
    assert.equal("PONG", r:call("PING"))
    r:close()
    r:close()   -- twice is fine
    raises("closed", r.call, r, "PING")
    raises("closed", r.pipeline, r, function(p) p:call("PING") end)
    assert.matches("^corun%.redis client %(", tostring(r))
  end))

  --[[ concurrency and pipelining ]]

  it("pipelines 10,000 commands; replies come back in order", async(function()
    local r <close> = corun.redis.connect(url)
    local key = P .. "pipe"
    local res = r:pipeline(function(p)
      for _ = 1, 10000 do p:call("INCR", key) end
    end)
    assert.equal(10000, #res)
    for i = 1, 10000 do
      if res[i] ~= i then error(("reply %d is %s"):format(i, tostring(res[i]))) end
    end
    assert.equal("10000", r:call("GET", key))
    -- mixed replies, an error reply in the middle as {err = ...}, a nil
    res = r:pipeline(function(p)
      p:call("SET", key .. ":s", "v")
      p:call("GET", key .. ":missing")
      p:call("LPUSH", key .. ":s", "x")
      p:call("GET", key .. ":s")
      p:call("LRANGE", key .. ":none", 0, -1)
    end)
    assert.equal("OK", res[1])
    assert.is_nil(res[2])
    assert.matches("^WRONGTYPE", res[3].err)
    assert.equal("v", res[4])
    assert.same({}, res[5])
    assert.same({}, r:pipeline(function() end))
  end))

  it("10,000 calls from 100 concurrent tasks on one client each get their own reply",
  async(function()
    local r <close> = corun.redis.connect(url)
    local key, seen, wrong = P .. "ctr", {}, 0
    local tasks = {}
    for t = 1, 100 do
      tasks[t] = corun.spawn(function()
        for i = 1, 100 do
          local mine = ("%s:%d:%d"):format(key, t, i)
          assert(r:call("SET", mine, mine) == "OK")
          if r:call("GET", mine) ~= mine then wrong = wrong + 1 end
          local n = r:call("INCR", key)
          seen[n] = (seen[n] or 0) + 1
        end
      end)
    end
    corun.gather(tasks)
    assert.equal(0, wrong)
    for n = 1, 10000 do
      if seen[n] ~= 1 then error(("INCR value %d seen %s times"):format(n, tostring(seen[n]))) end
    end
  end))

  it("a cancelled or timed-out call leaves replies matched to their calls",
  async(function()
    local r <close> = corun.redis.connect(url)
    local t = corun.spawn(r.call, r, "BLPOP", P .. "never", 0.3)
    corun.sleep(0.05)
    assert.is_true(t:cancel())
    assert.is_true(corun.is_cancelled(catch(t.join, t)))
    -- the connection is busy with BLPOP until it times out; the next call
    -- gets its own reply, not BLPOP's nil
    assert.equal("PONG", r:call("PING"))
    local e = catch(corun.timeout, 0.05, r.call, r, "BLPOP", P .. "never", 0.2)
    assert.is_true(corun.is_timeout(e))
    assert.equal("x", r:call("ECHO", "x"))
  end))

  it("an idle client does not keep the runner alive", async(function()
    local bin = os.getenv("CORUN_BIN") or "build/bin/corun"
    local t0 = corun.time()
    local code, out, err = corun.process.run(bin, { "-e", ([[
      local corun = require "corun"
      local r = corun.redis.connect(%q)
      print(r:call("PING"))
    ]]):format(url) })
    assert.equal("", err)
    assert.same({ 0, "PONG\n" }, { code, out })
    assert.is_true(corun.time() - t0 < 5)
  end))

  --[[ connections lost and refused ]]

  it("a server restart mid-stream: calls get nil, 'connection lost', then the next call reconnects",
  async(function()
    local port2, stop2 = helper.redis_server()
    local url2 = ("redis://127.0.0.1:%d/0"):format(port2)
    local r <close> = corun.redis.connect(url2)
    local other <close> = corun.redis.connect(url2)
    assert.equal("OK", r:call("SET", "k", "before"))
    -- mid-stream: a call in flight (BLPOP) and a stream of calls
    local blocked = corun.spawn(function()
      return both(other:call("BLPOP", "nolist", 30))
    end)
    local results, n = {}, 0
    local busy = corun.spawn(function()
      while true do
        local v, err = r:call("INCR", "n")
        n = n + 1
        results[#results + 1] = v or err
        if err then return end
      end
    end)
    corun.sleep(0.1)
    local code = cli("-p", port2, "shutdown", "nosave")
    assert.equal(0, code)
    assert.same(fail("connection lost"), blocked:join(5))
    busy:join(5)
    assert.equal("connection lost", results[#results])
    for i = 1, #results - 1 do assert.equal(i, results[i]) end
    assert.is_true(n > 1)
    -- the server is down: each call tries to reconnect and fails
    assert.same(fail("connection lost"), both(r:call("PING")))
    assert.same(fail("connection lost"), both(r:pipeline(function(p)
      p:call("PING")
      p:call("PING")
    end)))
    -- back on the same port (empty: nosave): the next call works
    local _, stop3 = helper.redis_server(nil, port2)
    stop2 = stop3
    local ok, e = pcall(function()
      assert.same(both("PONG"), both(r:call("PING")))
      assert.same(both(nil), both(r:call("GET", "k")))
      assert.same({ "PONG", 1, n = 2 }, r:pipeline(function(p)
        p:call("PING")
        p:call("INCR", "n")
      end))
      assert.same(both("PONG"), both(other:call("PING")))
    end)
    stop2()
    if not ok then error(e, 0) end
  end))

  it("a refused connection is nil, 'connection lost' (each call retries)",
  async(function()
    local port2, stop2 = helper.redis_server()
    stop2()  -- a port nobody listens on now
    local r <close> = corun.redis.connect(("redis://127.0.0.1:%d"):format(port2))
    assert.same(fail("connection lost"), both(r:call("PING")))
    assert.same(fail("connection lost"), both(r:call("PING")))
  end))

  --[[ URLs ]]

  it("URL forms: host, port, db; tostring shows host:port and db", async(function()
    local r0 <close> = corun.redis.connect(url)
    local r3 <close> = corun.redis.connect(("redis://127.0.0.1:%d/3"):format(port))
    local rl <close> = corun.redis.connect(("redis://localhost:%d/3"):format(port))
    assert.equal(("corun.redis client (127.0.0.1:%d db 3)"):format(port),
                 tostring(r3))
    assert.equal("OK", r3:call("SET", P .. "db3", "three"))
    assert.matches(" db=3 ", r3:call("CLIENT", "INFO"))
    assert.equal("three", rl:call("GET", P .. "db3"))
    assert.is_nil(r0:call("GET", P .. "db3"))  -- other db
    r3:call("DEL", P .. "db3")
    -- defaults: port 6379, db 0, host 127.0.0.1; IPv6 in brackets (not
    -- connected: it connects on the first call)
    assert.equal("corun.redis client (127.0.0.1:6379 db 0)",
                 tostring(corun.redis.connect("redis://127.0.0.1")))
    assert.equal("corun.redis client (127.0.0.1:6379 db 0)",
                 tostring(corun.redis.connect("redis://")))
    assert.equal("corun.redis client (127.0.0.1:7000 db 5)",
                 tostring(corun.redis.connect("redis://:7000/5")))
    assert.equal("corun.redis client (::1:6380 db 2)",
                 tostring(corun.redis.connect("redis://[::1]:6380/2")))
    assert.equal("corun.redis client (example.org:6379 db 1)",
                 tostring(corun.redis.connect("redis://example.org/1")))
  end))

  it("a password: auth works and the password shows nowhere", async(function()
    local pw = "Pa55-w0rd-" .. math.random(1 << 30)
    local port2, stop2 = helper.redis_server({ "--requirepass", pw })
    local ok, e = pcall(function()
      local base = ("127.0.0.1:%d"):format(port2)
      local function check_hidden(...)
        for i = 1, select("#", ...) do
          local s = tostring((select(i, ...)))
          assert(not s:find(pw, 1, true), "password shown in: " .. s)
        end
      end
      -- right password (also with a user name before the colon)
      for _, u in ipairs({ "redis://:" .. pw .. "@" .. base .. "/0",
                           "redis://default:" .. pw .. "@" .. base .. "/2" }) do
        local r <close> = corun.redis.connect(u)
        check_hidden(r)
        assert.matches("^corun%.redis client %(127%.0%.0%.1:%d+ db %d%)$",
                       tostring(r))
        assert.equal("PONG", r:call("PING"))
        assert.equal("OK", r:call("SET", "k", "v"))
        assert.equal("v", r:call("GET", "k"))
      end
      -- no password, a wrong one: every call fails, the message hides it
      for _, u in ipairs({ "redis://" .. base, "redis://:wrong" .. pw .. "@" .. base }) do
        local r <close> = corun.redis.connect(u)
        check_hidden(r)
        local v, err = r:call("GET", "k")
        assert.is_nil(v)
        assert.truthy(err:match("^NOAUTH") or err:match("^WRONGPASS"), err)
        check_hidden(err)
        local res, perr = r:pipeline(function(p) p:call("GET", "k") end)
        check_hidden(res and res[1].err or perr)
        -- errors raised by misuse hide it too
        check_hidden(catch(r.call, r, "SET", {}), catch(r.call, r))
        r:close()
        check_hidden(catch(r.call, r, "PING"))
      end
      -- a malformed URL holding a password: the error does not echo it
      check_hidden(catch(corun.redis.connect, "redis://:" .. pw .. "@host:port"),
                   catch(corun.redis.connect, "redis:/:" .. pw .. "@h"))
      -- the server went away: "connection lost", no password
      local r <close> = corun.redis.connect("redis://:" .. pw .. "@" .. base)
      assert.equal("PONG", r:call("PING"))
      stop2()
      local v, err = r:call("PING")
      assert.is_nil(v)
      check_hidden(err)
      v, err = r:call("PING")
      check_hidden(err)
    end)
    stop2()
    if not ok then error(e, 0) end
  end))

  it("a unix socket URL, with db and password", async(function()
    local sock = os.tmpname() .. ".sock"
    local pw = "sock-" .. math.random(1 << 30)
    local _, stop2 = helper.redis_server({ "--unixsocket", sock,
      "--unixsocketperm", "700", "--requirepass", pw })
    local ok, e = pcall(function()
      local r <close> = corun.redis.connect(("unix://%s?db=4&password=%s")
                                            :format(sock, pw))
      assert.equal(("corun.redis client (unix:%s db 4)"):format(sock), tostring(r))
      assert.equal("OK", r:call("SET", "u", "via socket"))
      local info = r:call("CLIENT", "INFO")
      assert.matches(" db=4 ", info)
      assert.matches(" flags=U ", info)
      local r2 <close> = corun.redis.connect(("unix://%s?password=%s"):format(sock, pw))
      assert.is_nil(r2:call("GET", "u"))   -- db 0
      local r3 <close> = corun.redis.connect("redis+unix://" .. sock .. "?db=4&password=" .. pw)
      assert.equal("via socket", r3:call("GET", "u"))
    end)
    stop2()
    os.remove(sock)
    if not ok then error(e, 0) end
  end))

  it("bad URLs raise naming the argument", function()
    for _, u in ipairs({ 42, {}, "", "http://127.0.0.1:6379", "127.0.0.1:6379",
                         "redis://host:port", "redis://h:12x/0", "redis://h:1/db",
                         "unix://relative/path" }) do
      raises("bad argument #1 to 'connect'", corun.redis.connect, u)
    end
    raises("bad argument #1 to 'connect' (URL string expected)", corun.redis.connect)
    raises("bad argument #2 to 'queue'", corun.redis.queue, url, "")
    raises("bad argument #2 to 'queue'", corun.redis.queue, url, 5)
    raises("bad argument #1 to 'connect'", corun.redis.queue, "nope", "q")
  end)
end)
