-- spec/regress/010_redis_client_spec.lua: issue 10 #3, #11, #13 and
-- issue 15 #10 (the Redis client, src/redis.c):
-- - no command runs before AUTH / SELECT succeeded: a db the server does
--   not have, or a wrong password, makes the call return the server's
--   message and nothing is written anywhere (the first command used to be
--   pipelined before SELECT's reply and land in db 0); nothing is printed
--   on stderr (a child process's stderr is captured and checked);
-- - every word of every command is checked before anything is sent: a
--   pipeline whose 2nd command has a bad argument runs none of them;
-- - a reply nested deeper than hiredis can read fails with a message
--   saying so, and the next call works;
-- - a database index out of range in a URL raises naming 'connect'.
-- Each test starts a private redis-server (helper.redis_server).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local both, raises = helper.both, helper.raises
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- redis-cli ARGS... without LD_PRELOAD; returns exit code, stdout.
local function cli(...)
  local code, out = corun.process.run("env",
    { "-u", "LD_PRELOAD", "redis-cli", ... })
  return code, out
end

-- Run fn() with a private redis-server started with 'args'; stops it.
local function with_server(args, fn)
  local port, stop = helper.redis_server(args)
  local ok, e = pcall(fn, port)
  stop()
  if not ok then error(e, 0) end
end

describe("regress 010: the Redis client", function()
  after_each(helper.check)

  it("a db the server does not have: the call returns the error, nothing lands in db 0",
  async(function()
    with_server({ "--databases", "16" }, function(port)
      local r <close> = corun.redis.connect(("redis://127.0.0.1:%d/16"):format(port))
      local v, err = r:call("SET", "k", "v")
      assert.is_nil(v)
      assert.matches("^ERR DB index is out of range", err)
      -- again, and a pipeline: the same error, nothing run
      v, err = r:call("INCR", "n")
      assert.is_nil(v)
      assert.matches("^ERR DB index is out of range", err)
      v, err = r:pipeline(function(p)
        p:call("SET", "k2", "v")
        p:call("INCR", "n")
      end)
      assert.is_nil(v)
      assert.matches("^ERR DB index is out of range", err)
      -- many tasks calling at once while the setup runs: all get the error
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = function() return both(r:call("SET", "t" .. i, "v")) end
      end
      for _, res in ipairs(corun.gather(tasks)) do
        assert.is_nil(res[1])
        assert.matches("^ERR DB index is out of range", res[2])
      end
      local code, out = cli("-p", port, "DBSIZE")
      assert.equal(0, code)
      assert.equal("0\n", out)
      code, out = cli("-p", port, "-n", "15", "DBSIZE")
      assert.equal("0\n", out)
      -- a db that exists works on the same server
      local ok <close> = corun.redis.connect(("redis://127.0.0.1:%d/15"):format(port))
      assert.equal("OK", ok:call("SET", "k", "v"))
      code, out = cli("-p", port, "-n", "15", "GET", "k")
      assert.equal("v\n", out)
    end)
  end))

  it("a wrong password: the call returns WRONGPASS, nothing is written, nothing on stderr",
  async(function()
    with_server({ "--requirepass", "right" }, function(port)
      local base = ("127.0.0.1:%d"):format(port)
      local r <close> = corun.redis.connect("redis://:wrong@" .. base .. "/3")
      local v, err = r:call("SET", "k", "v")
      assert.is_nil(v)
      assert.matches("^WRONGPASS", err)
      local code, out = cli("-p", port, "-a", "right", "--no-auth-warning",
                            "-n", "0", "DBSIZE")
      assert.equal(0, code)
      assert.equal("0\n", out)
      _, out = cli("-p", port, "-a", "right", "--no-auth-warning", "-n", "3", "DBSIZE")
      assert.equal("0\n", out)
      -- the same in a child: its output is the returned error, stderr empty
      local code2, out2, err2 = corun.process.run(CORUN, { "-e", ([[
        local corun = require "corun"
        local r = corun.redis.connect("redis://:wrong@%s/0")
        print(r:call("SET", "k", "v"))
      ]]):format(base) })
      assert.equal("", err2)
      assert.equal(0, code2)
      assert.matches("^nil\tWRONGPASS", out2)
      -- the right password after a failure on another client works
      local good <close> = corun.redis.connect("redis://:right@" .. base .. "/3")
      assert.equal("OK", good:call("SET", "k", "v"))
    end)
  end))

  it("a setup that succeeds: the calls made during it run after it, in order",
  async(function()
    with_server({ "--requirepass", "pw" }, function(port)
      local r <close> = corun.redis.connect(("redis://:pw@127.0.0.1:%d/2"):format(port))
      local tasks = {}
      for i = 1, 50 do tasks[i] = function() return r:call("RPUSH", "l", i) end end
      local res = corun.gather(tasks)
      table.sort(res)
      for i = 1, 50 do assert.equal(i, res[i]) end
      local l = r:call("LRANGE", "l", 0, -1)
      for i = 1, 50 do assert.equal(tostring(i), l[i]) end
      assert.matches(" db=2 ", r:call("CLIENT", "INFO"))
      -- a timeout while waiting for the setup
      local r2 <close> = corun.redis.connect(("redis://:pw@127.0.0.1:%d/2"):format(port))
      assert.equal("PONG", r2:call("PING"))
    end)
  end))

  it("a server that never answers AUTH: calls wait, time out, and send nothing",
  async(function()
    local got = {}
    local server = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
      while true do
        local data = s:read(1)
        if data == nil then return end
        got[#got + 1] = data
      end
    end))
    local r = corun.redis.connect(("redis://:pw@127.0.0.1:%d/5"):format(server.port))
    local e = helper.catch(corun.timeout, 0.2, r.call, r, "SET", "k", "v")
    assert.is_true(corun.is_timeout(e))
    local waiting = corun.spawn(function() return both(r:call("GET", "k")) end)
    corun.sleep(0.1)
    assert.is_true(waiting:cancel())
    assert.is_true(corun.is_cancelled(helper.catch(waiting.join, waiting)))
    local sent = table.concat(got)
    assert.truthy(sent:find("AUTH", 1, true))
    assert.truthy(sent:find("SELECT", 1, true))
    assert.is_nil(sent:find("SET\r\n", 1, true))
    assert.is_nil(sent:find("GET", 1, true))
    -- closed while a call waits for the setup: that call raises
    waiting = corun.spawn(function() return r:call("GET", "k") end)
    corun.sleep(0.05)
    r:close()
    assert.matches("the redis client is closed", tostring(helper.catch(waiting.join, waiting)))
    server:close()
  end))

  it("a bad argument anywhere in a pipeline: nothing is sent", async(function()
    with_server(nil, function(port)
      local r <close> = corun.redis.connect(("redis://127.0.0.1:%d/0"):format(port))
      for _ = 1, 100 do
        raises("pipeline: command 2: argument 3 must be a string or a number",
               r.pipeline, r, function(p)
                 p:call("INCR", "n")
                 p:call("SET", "k", {})
               end)
        raises("pipeline: command 3 is empty", r.pipeline, r, function(p)
          p:call("INCR", "n")
          p:call("INCR", "n")
          p:call()
        end)
        raises("call: argument 2 must be a string or a number",
               r.call, r, "SET", {}, 1)
      end
      assert.is_nil(r:call("GET", "n"))
      local _, out = cli("-p", port, "DBSIZE")
      assert.equal("0\n", out)
      assert.same({ 1, 2, n = 2 }, r:pipeline(function(p)
        p:call("INCR", "n")
        p:call("INCR", "n")
      end))
    end)
  end))

  it("a reply nested deeper than hiredis reads: a clear error, then the client goes on",
  async(function()
    with_server(nil, function(port)
      local r <close> = corun.redis.connect(("redis://127.0.0.1:%d/0"):format(port))
      -- 8 levels are fine
      assert.same({ { { { { { { { 1 } } } } } } } },
                  r:call("EVAL", "return {{{{{{{{1}}}}}}}}", 0))
      local v, err = r:call("EVAL", "return {{{{{{{{{1}}}}}}}}}", 0)
      assert.is_nil(v)
      assert.matches("protocol error", err)
      assert.matches("depth > 7", err)
      assert.equal("PONG", r:call("PING"))
    end)
  end))

  it("a database index out of range in the URL raises naming 'connect'", function()
    for _, u in ipairs({ "redis://h:6379/99999999999999999999",
                         "redis://h:6379/2147483648",
                         "unix:///tmp/x.sock?db=99999999999999999999" }) do
      raises("bad argument #1 to 'connect' (database index out of range", corun.redis.connect, u)
    end
    raises("bad argument #1 to 'connect' (port out of range",
           corun.redis.connect, "redis://h:99999/0")
    assert.equal("corun.redis client (h:6379 db 2147483647)",
                 tostring(corun.redis.connect("redis://h:6379/2147483647")))
  end)
end)

-- Under the ASan stage (libasan preloaded), 1,000 refused calls in a child
-- with LeakSanitizer on must leak nothing (each used to leak its request).
describe("regress 010: refused calls leak nothing", function()
  it("1,000 calls with a bad argument", async(function()
    local preload = os.getenv("LD_PRELOAD") or ""
    local script = [[
      local corun = require "corun"
      corun.run(function()
        local r = corun.redis.connect("redis://127.0.0.1:1/0")
        for _ = 1, 1000 do pcall(r.call, r, "SET", {}, 1) end
        for _ = 1, 1000 do
          pcall(r.pipeline, r, function(p) p:call("INCR", "n") p:call({}) end)
        end
        print("ok")
      end)
    ]]
    local env = { "ASAN_OPTIONS=detect_leaks=1" }
    local code, out, err = corun.process.run("env",
      { env[1], "lua5.4", "-e", "package.path='lua/?.lua;lua/?/init.lua;'..package.path"
        .. (preload:find("asan") and ";package.cpath='build-asan/?.so;'..package.cpath" or
            ";package.cpath='build/?.so;'..package.cpath"),
        "-e", script })
    assert.equal("ok\n", out)
    assert.is_nil(err:find("leaked", 1, true), err)
    assert.equal(0, code)
  end))
end)
