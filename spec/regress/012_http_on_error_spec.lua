-- issue 12: corun.http.serve's opts.on_error(err, req) receives a
-- handler's error (the default stays a line on stderr); the client still
-- gets 500 and the server goes on serving.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async
local http = corun.http

-- Send one raw request, read until the server closes.
local function exchange(port, data)
  local s = assert(corun.tcp.connect("127.0.0.1", port))
  assert(s:write(data))
  local out = s:read("a", 5)
  s:close()
  return out
end

describe("issue 12: http.serve on_error", function()
  after_each(helper.check)

  it("gets the handler's error and the request; 500 is still sent", async(function()
    local seen = {}
    local srv = assert(http.serve("127.0.0.1", 0, function(req)
      if req.path == "/boom" then error({ code = 42 }) end
      if req.path == "/bad" then return "not a status" end
      if req.path == "/hdr" then return 200, "x", { ["Bad\r\nName"] = "v" } end
      return 200, "ok"
    end, { on_error = function(err, req)
      seen[#seen + 1] = { err = err, path = req.path, method = req.method }
    end }))
    local out = exchange(srv.port, "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.matches("^HTTP/1%.1 500 ", out)
    assert.matches("Connection: close\r\n", out)
    out = exchange(srv.port, "POST /bad HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert.matches("^HTTP/1%.1 500 ", out)
    out = exchange(srv.port, "GET /hdr HTTP/1.1\r\n\r\n")
    assert.matches("^HTTP/1%.1 500 ", out)
    out = exchange(srv.port, "GET /fine HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1%.1 200 .*\r\n\r\nok$", out)
    assert.equal(3, #seen)
    assert.same({ code = 42 }, seen[1].err)      -- the error value itself
    assert.equal("/boom", seen[1].path)
    assert.equal("GET", seen[1].method)
    assert.equal("handler returned a status that is not an integer: not a status",
                 seen[2].err)
    assert.equal("POST", seen[2].method)
    assert.matches("header with a line break", seen[3].err)
    assert.equal("/hdr", seen[3].path)
    srv:close()
  end))

  it("an on_error that raises falls back to stderr; misuse raises", function()
    assert.has_error(function()
      http.serve("127.0.0.1", 0, function() end, { on_error = 5 })
    end, "bad argument #4 to 'serve' (on_error must be a function)")
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local corun = require "corun"
local srv = assert(corun.http.serve("127.0.0.1", 0, function(req)
  if req.path == "/a" then error("first failure", 0) end
  error("second failure", 0)
end, { on_error = req_hook }))
local function get(path)
  local s = assert(corun.tcp.connect("127.0.0.1", srv.port))
  s:write("GET " .. path .. " HTTP/1.1\r\n\r\n")
  local line = s:read("l")
  s:close()
  return line
end
print(get("/a"))
srv:close()
srv = assert(corun.http.serve("127.0.0.1", 0, function()
  error("third failure", 0)
end, { on_error = function() error("hook broke", 0) end }))
print(get("/c"))
srv:close()
]])
    f:close()
    local status, out, err = corun.run(function()
      return helper.run_child(os.getenv("CORUN_BIN") or "build/bin/corun", { script })
    end)
    os.remove(script)
    assert.equal(0, status, err)
    assert.equal("HTTP/1.1 500 Internal Server Error\nHTTP/1.1 500 Internal Server Error\n", out)
    -- no on_error (req_hook is nil): the default line; a raising one: both
    assert.equal("corun.http: handler failed: first failure\n"
                 .. "corun.http: on_error failed: hook broke\n"
                 .. "corun.http: handler failed: third failure\n", err)
  end)
end)
