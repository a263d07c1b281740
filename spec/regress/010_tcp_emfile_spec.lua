-- spec/regress/010_tcp_emfile_spec.lua: issue 10 #15. A tcp.listen server
-- out of file descriptors (ulimit -n 64, 100 clients) used to drop the
-- pending clients silently (they read EOF: libuv's EMFILE trick). Now the
-- accept error is reported (on stderr once per burst, or to opts.on_error)
-- and the pending clients wait in the backlog until descriptors free up:
-- every client is served.

local corun = require "corun"
local cb = require "corun.busted"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"
local CLIENTS = 100

-- The server: fd limit 64; answers "ok" to a line and holds the
-- connection until the client closes it; after CLIENTS connections it
-- prints what it saw and exits.
local SERVER = [[
  local corun = require "corun"
  local served, errors = 0, {}
  local opts = {}
  if %s then
    opts.on_error = function(msg, code) errors[#errors + 1] = code end
  end
  local server
  server = assert(corun.tcp.listen("127.0.0.1", 0, function(conn)
    local _ <close> = conn
    if conn:read("l") == "hi" then conn:write("ok\n") end
    conn:read("a")
    served = served + 1
    if served == %d then
      print("served", served, table.concat(errors, " "))
      server:close()
    end
  end, opts))
  io.stdout:write(server.port, "\n")
  io.stdout:flush()
]]

local function run(with_on_error)
  local p = assert(corun.process.spawn("sh", { "-c",
    'ulimit -n 64 && exec "$0" -e "$1"', CORUN,
    SERVER:format(tostring(with_on_error), CLIENTS) },
    { stdin = "null", stdout = "pipe", stderr = "pipe" }))
  local err
  local re = corun.spawn(function() err = p.stderr:read("a", 60) end)
  local port = assert(tonumber(p.stdout:read("l", 20)), "no port")
  -- every client connects (the kernel completes the handshake for those
  -- not accepted yet) and sends its line before any reads an answer
  local conns = {}
  for i = 1, CLIENTS do
    conns[i] = assert(corun.tcp.connect("127.0.0.1", port, 10))
    assert(conns[i]:write("hi\n"))
  end
  corun.sleep(0.2)  -- the server accepts what it can and runs out of fds
  local answers = {}
  local readers = {}
  for i = 1, CLIENTS do
    readers[i] = corun.spawn(function()
      answers[i] = conns[i]:read("l", 30) or "nothing"
      conns[i]:close()
    end)
  end
  for i = 1, CLIENTS do readers[i]:join() end
  local out = p.stdout:read("a", 30)
  local status = p:wait(30)
  if status == nil then p:kill("kill") p:wait() end
  re:join()
  local ok = 0
  for i = 1, CLIENTS do if answers[i] == "ok" then ok = ok + 1 end end
  return ok, status, out, err
end

describe("issue 10 #15: a tcp server out of file descriptors", function()
  it("reports the accept error on stderr and serves every client",
     async(function()
    local ok, status, out, err = run(false)
    assert.equal(CLIENTS, ok, err)
    assert.equal(0, status, err)
    assert.equal(("served\t%d\t\n"):format(CLIENTS), out)
    local _, lines = err:gsub("corun: tcp server on port %d+: accept failed: "
                              .. "EMFILE: too many open files", "")
    assert.is_true(lines >= 1, "no report in: " .. err)
    assert.is_true(lines <= 10, "reported more than once per burst: " .. err)
  end))

  it("calls opts.on_error(msg, code) instead", async(function()
    local ok, status, out, err = run(true)
    assert.equal(CLIENTS, ok, err)
    assert.equal(0, status, err)
    local codes = out:match(("^served\t%d\t(.*)\n$"):format(CLIENTS))
    assert.is_truthy(codes, out)
    assert.matches("^EMFILE", codes)
    assert.equal("", (codes:gsub("EMFILE ?", "")))
    assert.equal("", err)
  end))

  it("refuses an on_error that is not callable", async(function()
    local ok, e = pcall(corun.tcp.listen, "127.0.0.1", 0, function() end,
                        { on_error = 5 })
    assert.is_false(ok)
    assert.matches("bad argument #4 to 'listen' (on_error must be a function)",
                   e, 1, true)
  end))
end)
