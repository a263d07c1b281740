-- issue 13: LuaSocket's own socket.http, ltn12 and socket.url (Debian's
-- lua-socket package, unmodified) running on corun.socket: concurrent
-- fetches from a local corun.tcp.listen server in parallel tasks.

local corun = require "corun"
local helper = require "helper"

local DELAY = 0.3

-- Fresh copies of LuaSocket's Lua modules, loaded against corun.socket.
local function load_http()
  local socket = corun.socket.install()
  for _, m in ipairs {"socket.http", "socket.url", "socket.headers", "ltn12"} do
    package.loaded[m] = nil
  end
  local http = require "socket.http"
  return socket, http, require "ltn12", require "socket.url"
end

-- A corun HTTP server: answers each request after DELAY seconds with
-- "<method> <path> <body>"; "/chunked" answers HTTP/1.1 chunked.
local function server()
  return assert(corun.tcp.listen("127.0.0.1", 0, function(s)
    local line = s:read("l")
    if not line then return end
    line = line:gsub("\r$", "")
    local method, path = line:match("^(%u+) (%S+)")
    local length = 0
    while true do
      local h = s:read("l")
      if h then h = h:gsub("\r$", "") end   -- "l" may keep the "\r"
      if not h or h == "" then break end
      local n = h:lower():match("^content%-length:%s*(%d+)")
      if n then length = tonumber(n) end
    end
    local body = length > 0 and s:read(length) or ""
    if path:find("^/slow") then corun.sleep(DELAY) end
    local answer = ("%s %s %s"):format(method, path, body)
    if path == "/chunked" then
      s:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
              "Connection: close\r\n\r\n",
              ("%x\r\n%s\r\n"):format(5, answer:sub(1, 5)),
              ("%x\r\n%s\r\n"):format(#answer - 5, answer:sub(6)),
              "0\r\n\r\n")
    else
      s:write("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n",
              "X-Served-By: corun\r\nContent-Length: ", #answer, "\r\n\r\n",
              answer)
    end
  end))
end

describe("socket.http on corun.socket", function()
  after_each(function()
    corun.socket.uninstall()
    helper.check()
  end)

  it("loads Debian's socket.http with corun.socket as its socket", function()
    local socket, http = load_http()
    local path = package.searchpath("socket.http", package.path)
    assert.truthy(path:find("/usr/share/lua/5.4/socket/http.lua", 1, true))
    assert.same(socket, package.loaded["socket.core"])
    assert.same(http, socket.http)  -- http.lua registered itself in ours
    assert.is_function(socket.sourcet["http-chunked"])
  end)

  it("100 concurrent http.request calls take about as long as one",
     function()
    local _, http = load_http()
    corun.run(function()
      local srv = server()
      local base = "http://127.0.0.1:" .. srv.port
      local t0 = corun.time()
      local body, code, headers = http.request(base .. "/slow/one")
      local one = corun.time() - t0
      assert.same({"GET /slow/one ", 200}, {body, code})
      assert.same("corun", headers["x-served-by"])
      assert.is_true(one >= DELAY)
      local results, tasks = {}, {}
      t0 = corun.time()
      for i = 1, 100 do
        tasks[i] = corun.spawn(function()
          results[i] = {http.request(base .. "/slow/" .. i)}
        end)
      end
      for i = 1, 100 do tasks[i]:join() end
      local all = corun.time() - t0
      for i = 1, 100 do
        assert.same({"GET /slow/" .. i .. " ", 200},
                    {results[i][1], results[i][2]})
      end
      -- in parallel: nowhere near 100 times one request
      assert.is_true(all < 30 * one,
                     ("100 requests took %.2f s, one %.2f s"):format(all, one))
      srv:close()
    end)
  end)

  it("ltn12 sources and sinks, chunked bodies, socket.url", function()
    local _, http, ltn12, url = load_http()
    corun.run(function()
      local srv = server()
      local parts = {}
      local ok, code = http.request {
        url = "http://127.0.0.1:" .. srv.port .. "/post",
        method = "POST",
        source = ltn12.source.string("payload"),
        headers = {["content-length"] = 7},
        sink = ltn12.sink.table(parts),
      }
      assert.same({1, 200}, {ok, code})
      assert.same("POST /post payload", table.concat(parts))
      local body, status, headers =
        http.request("http://127.0.0.1:" .. srv.port .. "/chunked")
      assert.same({"GET /chunked ", 200, "chunked"},
                  {body, status, headers["transfer-encoding"]})
      local u = url.parse("http://127.0.0.1:" .. srv.port .. "/a%20b?q=1")
      assert.same({"127.0.0.1", tostring(srv.port), "/a%20b", "q=1"},
                  {u.host, u.port, u.path, u.query})
      assert.same("GET /a%20b?q=1 ", (http.request(url.build(u))))
      srv:close()
    end)
  end)

  it("timeouts and refused connections come back as LuaSocket's errors",
     function()
    local _, http = load_http()
    corun.run(function()
      local srv = server()
      local port = srv.port
      http.TIMEOUT = 0.05
      assert.same({nil, "timeout"},
                  {http.request("http://127.0.0.1:" .. port .. "/slow")})
      http.TIMEOUT = 60
      srv:close()
      assert.same({nil, "connection refused"},
                  {http.request("http://127.0.0.1:" .. port .. "/")})
    end)
  end)

  it("a task in http.request is cancelled at once", function()
    local _, http = load_http()
    corun.run(function()
      local srv = server()
      local t = corun.spawn(http.request,
                            "http://127.0.0.1:" .. srv.port .. "/slow")
      corun.sleep(0.05)
      t:cancel()
      corun.sleep(0)
      assert.same("cancelled", t:status())
      corun.sleep(DELAY + 0.1)   -- the server's handler finishes
      srv:close()
    end)
  end)
end)
