-- spec/http_server_spec.lua: corun.http.serve (lua/corun/http_server.lua,
-- src/http_server.c) answering curl, Python's http.client and hostile raw
-- TCP clients; https with a test CA made by `openssl`.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async
local http = corun.http

local pki = require "pki"
local DIR = pki.make()

local function echo_handler(req, res)
  if req.path == "/stream" then
    res:status(201)
    res:header("X-Streamed", "yes")
    for i = 1, 3 do assert(res:write("part" .. i .. "\n")) end
    return
  elseif req.path == "/fail" then
    error("handler exploded")
  elseif req.path == "/slow" then
    corun.sleep(0.3)
    return 200, "slow done"
  end
  return 200, ("%s %s q=%s body=%s"):format(req.method, req.path,
    tostring(req.query), req.body), { ["Content-Type"] = "text/plain",
    ["X-Seen"] = tostring(req.headers["X-Custom"]) }
end

local function serve(handler, opts)
  local srv = assert(http.serve("127.0.0.1", 0, handler or echo_handler, opts))
  assert(math.type(srv.port) == "integer" and srv.port > 0)
  return srv, "http://127.0.0.1:" .. srv.port
end

-- Run a peer program (without an ASan LD_PRELOAD: curl hangs under it).
local function run(cmd, args, input)
  local argv = { "-u", "LD_PRELOAD", cmd, table.unpack(args) }
  local code, out, err = corun.process.run("env", argv, { input = input })
  return code, out, err
end

-- Send raw bytes, read until the server closes (or 'limit' s).
local function raw_exchange(port, data, limit)
  local s = assert(corun.tcp.connect("127.0.0.1", port))
  if type(data) == "table" then
    for _, part in ipairs(data) do
      assert(s:write(part))
      corun.sleep(0.02)
    end
  else
    s:write(data)
  end
  local out, err = s:read("a", limit or 5)
  s:close()
  return out, err
end

describe("corun.http server", function()
  after_each(helper.check)
  teardown(pki.cleanup)

  it("answers curl: methods, query, body, headers, chunked upload", async(function()
    local srv, base = serve()
    local code, out = run("curl", { "-sS", "-i", "-H", "X-Custom: 7",
                                    base .. "/a/b?x=1&y=2" })
    assert.equal(0, code)
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("\r\nContent%-Type: text/plain\r\n", out)
    assert.matches("\r\nX%-Seen: 7\r\n", out)
    assert.matches("\r\n\r\nGET /a/b q=x=1&y=2 body=$", out)
    code, out = run("curl", { "-sS", "-d", "hello", base .. "/post" })
    assert.equal("POST /post q=nil body=hello", out)
    code, out = run("curl", { "-sS", "-H", "Transfer-Encoding: chunked",
                              "--data-binary", "@-", base .. "/up" },
                    string.rep("z", 100000))
    assert.equal("POST /up q=nil body=" .. string.rep("z", 100000), out)
    code, out = run("curl", { "-sS", "-X", "DELETE", base .. "/d" })
    assert.equal("DELETE /d q=nil body=", out)
    code, out = run("curl", { "-sS", "-I", base .. "/h" })
    assert.matches("^HTTP/1%.1 200 OK\r\n", out)
    assert.matches("Content%-Length: 19\r\n", out)   -- "HEAD /h q=nil body="
    srv:close()
  end))

  it("keep-alive: curl reuses the connection", async(function()
    local srv, base = serve()
    local code, _, err = run("curl", { "-sS", "-v", base .. "/1", base .. "/2", base .. "/3" })
    assert.equal(0, code)
    local _, reused = err:gsub("Re%-using existing connection", "")
    assert.equal(2, reused)
    srv:close()
  end))

  it("pipelined requests are answered in order", async(function()
    local srv = serve()
    local reqs = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      .. "POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "2\r\nde\r\n1\r\nf\r\n0\r\n\r\n"
      .. "GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local out = raw_exchange(srv.port, reqs)
    local bodies = {}
    for b in out:gmatch("\r\n\r\n([^H]*)") do bodies[#bodies + 1] = b end
    assert.same({ "GET /1 q=nil body=", "POST /2 q=nil body=abc",
                  "POST /3 q=nil body=def", "GET /4 q=nil body=" }, bodies)
    assert.matches("Connection: close\r\n", out)
    srv:close()
  end))

  it("res:status/res:header/res:write stream a chunked response", async(function()
    local srv, base = serve()
    local code, out = run("curl", { "-sS", "-i", base .. "/stream" })
    assert.equal(0, code)
    assert.matches("^HTTP/1%.1 201 Created\r\n", out)
    assert.matches("X%-Streamed: yes\r\n", out)
    assert.matches("Transfer%-Encoding: chunked\r\n", out)
    assert.matches("\r\n\r\npart1\npart2\npart3\n$", out)
    local r = assert(http.get(base .. "/stream"))
    assert.equal(201, r.status)
    assert.equal("part1\npart2\npart3\n", r.body)
    srv:close()
  end))

  it("answers Python's http.client and urllib", async(function()
    local srv = serve()
    local py = ([[
import http.client, urllib.request
c = http.client.HTTPConnection("127.0.0.1", %d)
for i in range(3):
    c.request("POST", "/py?i=%%d" %% i, body=b"x" * i, headers={"X-Custom": "p"})
    r = c.getresponse()
    print(r.status, r.getheader("X-Seen"), r.read().decode())
c.close()
print(urllib.request.urlopen("http://127.0.0.1:%d/u").read().decode())
]]):format(srv.port, srv.port)
    local code, out, err = run("python3", { "-c", py })
    assert.equal(0, code, err)
    assert.equal("200 p POST /py q=i=0 body=\n200 p POST /py q=i=1 body=x\n"
                 .. "200 p POST /py q=i=2 body=xx\nGET /u q=nil body=\n", out)
    srv:close()
  end))

  it("Expect: 100-continue", async(function()
    local srv, base = serve()
    local code, out, err = run("curl", { "-sS", "-v", "-H", "Expect: 100-continue",
                                         "-d", "after continue", base .. "/e" })
    assert.equal(0, code)
    assert.equal("POST /e q=nil body=after continue", out)
    assert.matches("HTTP/1%.1 100 Continue", err)
    srv:close()
  end))

  it("limits: 431, 413, 400, each closing; the server keeps serving", async(function()
    local srv, base = serve(nil, { max_header_size = 1024, max_body_size = 100 })
    local out = raw_exchange(srv.port, "GET / HTTP/1.1\r\nX-Big: "
                             .. string.rep("a", 2000) .. "\r\n\r\n")
    assert.matches("^HTTP/1%.1 431 ", out)
    assert.matches("Connection: close", out)
    out = raw_exchange(srv.port, "GET / HTTP/1.1\r\n"
                       .. string.rep("X-Many: 1234567890\r\n", 100) .. "\r\n")
    assert.matches("^HTTP/1%.1 431 ", out)
    out = raw_exchange(srv.port, "POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
    assert.matches("^HTTP/1%.1 413 ", out)
    out = raw_exchange(srv.port, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       .. "80\r\n" .. string.rep("b", 128) .. "\r\n0\r\n\r\n")
    assert.matches("^HTTP/1%.1 413 ", out)
    out = raw_exchange(srv.port, "NOT A REQUEST\r\n\r\n")
    assert.matches("^HTTP/1%.1 400 ", out)
    out = raw_exchange(srv.port, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert.matches("^HTTP/1%.1 400 ", out)
    -- a body longer than its Content-Length: the rest is a bad request
    out = raw_exchange(srv.port, "POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcdef\r\n\r\n")
    assert.matches("^HTTP/1%.1 200 OK.-body=ab.-HTTP/1%.1 400 ", out)
    local code, body = run("curl", { "-sS", base .. "/still" })
    assert.equal(0, code)
    assert.equal("GET /still q=nil body=", body)
    srv:close()
  end))

  it("abrupt disconnects at every stage leave it serving", async(function()
    local srv, base = serve()
    local full = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
    for cut = 1, #full - 1, 7 do
      local s = assert(corun.tcp.connect("127.0.0.1", srv.port))
      s:write(full:sub(1, cut))
      s:close()
    end
    local s = assert(corun.tcp.connect("127.0.0.1", srv.port))
    s:write("GET /slow HTTP/1.1\r\n\r\n")
    s:close()   -- gone before the answer
    corun.sleep(0.4)
    local code, body = run("curl", { "-sS", base .. "/ok" })
    assert.equal(0, code)
    assert.equal("GET /ok q=nil body=", body)
    srv:close()
  end))

  it("a failing handler gets 500 (its error to opts.on_error)", async(function()
    local errors = {}
    local srv, base = serve(nil, { on_error = function(err, req)
      errors[#errors + 1] = req.path .. ": " .. tostring(err)
    end })
    local code, out = run("curl", { "-sS", "-i", base .. "/fail" })
    assert.equal(0, code)
    assert.matches("^HTTP/1%.1 500 ", out)
    assert.equal(1, #errors)
    assert.matches("^/fail: .*http_server_spec%.lua:%d+: handler exploded$", errors[1])
    code, out = run("curl", { "-sS", base .. "/ok" })
    assert.equal("GET /ok q=nil body=", out)
    srv:close()
  end))

  it("a slowloris client is dropped with 408, idle connections closed", async(function()
    local srv = serve(nil, { request_timeout = 0.3, idle_timeout = 0.3 })
    local t0 = corun.time()
    local out = raw_exchange(srv.port, { "GET / HTTP/1.1\r\n", "X-A: 1\r\n",
                                         "X-B: 2\r\n" }, 5)
    -- the three parts take ~0.06 s; then the client stops sending
    assert.matches("^HTTP/1%.1 408 ", out)
    assert.is_true(corun.time() - t0 < 3)
    local s = assert(corun.tcp.connect("127.0.0.1", srv.port))
    t0 = corun.time()
    assert.equal("", s:read("a", 5))   -- closed by the server, not timed out
    assert.is_true(corun.time() - t0 < 3)
    s:close()
    srv:close()
  end))

  it("server.close lets requests in flight finish, closes idle ones", async(function()
    local srv, base = serve()
    local idle = assert(corun.tcp.connect("127.0.0.1", srv.port))
    idle:write("GET /1 HTTP/1.1\r\n\r\n")
    assert.matches("^HTTP/1%.1 200", idle:read("l"))
    local t = corun.spawn(http.get, base .. "/slow")
    corun.sleep(0.1)
    assert.is_true(srv:close(5))
    local r = assert(t:join())
    assert.equal("slow done", r.body)
    assert.equal("close", r.headers.connection)
    local rest = idle:read("a", 2)
    assert.is_truthy(rest)                      -- the idle one was closed
    idle:close()
    local _, _, code = http.get(base .. "/again")
    assert.equal("ECURL_COULDNT_CONNECT", code)
  end))

  it("stream = true hands the body over as req.iter()", async(function()
    local srv, base = serve(function(req)
      assert.is_nil(req.body)
      local n, parts = 0, 0
      for chunk in req:iter() do
        n = n + #chunk
        parts = parts + 1
      end
      return 200, ("got %d bytes"):format(n)
    end, { stream = true, max_body_size = 0 })
    local code, out = run("curl", { "-sS", "--data-binary", "@-", base .. "/" },
                          string.rep("s", 300000))
    assert.equal(0, code)
    assert.equal("got 300000 bytes", out)
    srv:close()
  end))

  it("https with opts.tls: curl and the corun client with the test CA", async(function()
    local srv = assert(http.serve("127.0.0.1", 0, echo_handler, {
      tls = { cert = DIR .. "/srv.pem", key = DIR .. "/srv.key" } }))
    local base = "https://localhost:" .. srv.port
    local code, out = run("curl", { "-sS", "--cacert", DIR .. "/ca.pem",
                                    "-d", "secret", base .. "/s" })
    assert.equal(0, code)
    assert.equal("POST /s q=nil body=secret", out)
    local r = assert(http.get(base .. "/c?z=1", { cafile = DIR .. "/ca.pem" }))
    assert.equal("GET /c q=z=1 body=", r.body)
    local _, _, ecode = http.get(base .. "/c")
    assert.equal("ECURL_PEER_FAILED_VERIFICATION", ecode)
    srv:close()
  end))

  it("1000 concurrent corun.http requests against corun's own server", async(function()
    local srv, base = serve()
    local ok = 0
    corun.group(function(g)
      for i = 1, 1000 do
        g:spawn(function()
          local r = assert(http.post(base .. "/n", tostring(i), { timeout = 120 }))
          assert.equal("POST /n q=nil body=" .. i, r.body)
          ok = ok + 1
        end)
      end
    end)
    assert.equal(1000, ok)
    srv:close()
  end))

  it("misuse raises", function()
    assert.has_error(function() http.serve(1, 0, echo_handler) end,
      "bad argument #1 to 'serve' (string expected)")
    assert.has_error(function() http.serve("127.0.0.1", 0, 5) end,
      "bad argument #3 to 'serve' (function expected)")
    assert.has_error(function() http.serve("127.0.0.1", 0, echo_handler, { idle_timeout = -1 }) end,
      "bad argument #4 to 'serve' (idle_timeout must be a number >= 0)")
    assert.has_error(function() http.serve("127.0.0.1", 0, echo_handler, { tls = {} }) end,
      "bad argument #4 to 'serve' (tls must be a table with cert and key)")
  end)
end)
