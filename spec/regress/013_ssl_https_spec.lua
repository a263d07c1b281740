-- issue 13: LuaSec's interface on corun.tls (corun.ssl). Debian's own
-- ssl.https (lua-sec, pure Lua, unmodified) and socket.http run on
-- corun.socket + corun.ssl inside corun tasks against a local
-- corun.http.serve TLS server with a test CA made by openssl (spec/pki.lua);
-- the direct API (ssl.wrap, sni, dohandshake, receive/send, ...) gives
-- LuaSec's returns.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local pki = require "pki"
local async = cb.async

local DIR = pki.make()
local CA, OTHER = DIR .. "/ca.pem", DIR .. "/other_ca.pem"
local DELAY = 0.3

-- Fresh copies of LuaSocket's and LuaSec's Lua modules, loaded against
-- corun.socket and corun.ssl.
local function load_https()
  local socket = corun.socket.install()
  for _, m in ipairs { "socket.http", "socket.url", "socket.headers", "ltn12",
                       "ssl.https" } do
    package.loaded[m] = nil
  end
  local https = require "ssl.https"
  https.TIMEOUT = 10
  return https, socket, require "ssl"
end

-- A corun HTTPS server: "<method> <path> <body>"; /slow answers after DELAY.
local function server(host)
  return assert(corun.http.serve(host or "127.0.0.1", 0, function(req)
    if req.path:find("^/slow") then corun.sleep(DELAY) end
    return 200, ("%s %s %s"):format(req.method, req.path, req.body or ""),
           { ["x-served-by"] = "corun" }
  end, { tls = { cert = DIR .. "/srv.pem", key = DIR .. "/srv.key" } }))
end

-- A TCP server that accepts and then does 'what' with the connection:
-- "silent" (reads, never answers), "close" (closes at once), "garbage".
local function bad_server(what)
  return assert(corun.tcp.listen("127.0.0.1", 0, function(s)
    if what == "close" then s:close() return end
    if what == "garbage" then
      s:write("HTTP/1.0 400 not TLS at all\r\n\r\n")
      s:close()
      return
    end
    while s:read(1) do end
  end))
end

local function client(port, params)
  local socket, ssl = corun.socket, require "ssl"
  local sock = socket.tcp()
  assert(sock:connect("127.0.0.1", port))
  local p = { mode = "client", protocol = "any", verify = "peer", cafile = CA }
  for k, v in pairs(params or {}) do p[k] = v end
  local conn = assert(ssl.wrap(sock, p))
  conn:settimeout(10)   -- a lost wakeup fails the test instead of hanging it
  return conn, sock
end

describe("corun.ssl and LuaSec's ssl.https", function()
  after_each(function()
    corun.socket.uninstall()
    helper.check()
  end)
  teardown(pki.cleanup)

  it("install() makes require 'ssl' give corun.ssl and ssl.https load on it",
     function()
    local https, _, ssl = load_https()
    assert.equal(corun.ssl, ssl)
    assert.equal(corun.ssl, package.loaded.ssl)
    assert.truthy(package.searchpath("ssl.https", package.path)
                  :find("/usr/share/lua/5.4/ssl/https.lua", 1, true))
    assert.is_function(https.request)
    corun.socket.uninstall()
    assert.are_not.equal(corun.ssl, package.loaded.ssl)
  end)

  it("https.request fetches from a corun TLS server, verifying with the test CA",
     async(function()
    local https = load_https()
    local srv = server()
    local base = "https://localhost:" .. srv.port
    local body, code, headers, status =
      https.request { url = base .. "/one", cafile = CA, verify = "peer",
                      sink = nil }
    assert.same({ 1, 200 }, { body, code })
    assert.equal("corun", headers["x-served-by"])
    assert.matches("^HTTP/1%.1 200", status)
    -- the string form, with a body: a POST
    body, code = https.request(base .. "/post", "a=1")
    assert.same({ "POST /post a=1", 200 }, { body, code })
    -- a table sink and an IP address checked against the certificate
    local parts = {}
    local ltn12 = require "ltn12"
    local ok, code2 = https.request {
      url = "https://127.0.0.1:" .. srv.port .. "/ip", cafile = CA,
      verify = "peer", sink = ltn12.sink.table(parts) }
    assert.same({ 1, 200 }, { ok, code2 })
    assert.equal("GET /ip ", table.concat(parts))
    srv:close()
  end))

  it("concurrent https.request calls run in parallel", async(function()
    local https = load_https()
    local srv = server()
    local base = "https://localhost:" .. srv.port
    local function get(path)
      local parts = {}
      local ok, code = https.request { url = base .. path, cafile = CA,
        verify = "peer", sink = require("ltn12").sink.table(parts) }
      return ok, code, table.concat(parts)
    end
    local t0 = corun.time()
    assert.same({ 1, 200, "GET /slow/one " }, { get("/slow/one") })
    local one = corun.time() - t0
    local results, tasks = {}, {}
    t0 = corun.time()
    for i = 1, 20 do
      tasks[i] = corun.spawn(function() results[i] = { get("/slow/" .. i) } end)
    end
    for i = 1, 20 do tasks[i]:join() end
    local all = corun.time() - t0
    for i = 1, 20 do
      assert.same({ 1, 200, "GET /slow/" .. i .. " " }, results[i])
    end
    assert.is_true(all < 8 * one,
                   ("20 requests took %.2f s, one %.2f s"):format(all, one))
    srv:close()
  end))

  it("an unknown CA fails as LuaSec does; LuaSec's default verifies nothing", async(function()
    local https = load_https()
    local srv = server()
    local url = "https://localhost:" .. srv.port .. "/x"
    assert.same({ nil, "certificate verify failed" },
                { https.request { url = url, cafile = OTHER, verify = "peer" } })
    -- LuaSec's ssl.https verifies nothing unless told verify = "peer"
    assert.same({ "GET /x ", 200 }, { (https.request(url)), 200 })
    srv:close()
  end))

  -- a wrong host through the API ssl.https uses (sni(host), then
  -- dohandshake): ssl.https gives the same "certificate verify failed"
  it("a wrong host fails as a verify failure; getpeerverification says why",
     async(function()
    load_https()
    local srv3 = server()
    local conn = client(srv3.port)
    conn:sni("wrong.example")
    assert.same({ false, "certificate verify failed" }, { conn:dohandshake() })
    assert.same({ false, "hostname mismatch" },
                { conn:getpeerverification() })
    conn:close()
    conn = client(srv3.port, { cafile = OTHER })
    conn:sni("localhost")
    assert.same({ false, "certificate verify failed" }, { conn:dohandshake() })
    assert.same({ false, "unable to get local issuer certificate" },
                { conn:getpeerverification() })
    conn:close()
    srv3:close()
  end))

  it("the direct API: wrap, sni, dohandshake, send, receive, info, close",
     async(function()
    load_https()
    local ssl = corun.ssl
    local srv = server()
    local conn, sock = client(srv.port)
    assert.same({ nil, "closed", "" }, { conn:receive() })  -- no handshake yet
    assert.same({ nil, "closed", "" }, { sock:receive() })  -- moved to conn
    assert.equal("read", conn:want())
    conn:sni("localhost")
    assert.equal("localhost", conn:getsniname())
    assert.same({ true }, { conn:dohandshake() })
    assert.same({ true }, { conn:dohandshake() })
    assert.same({ true }, { conn:getpeerverification() })
    assert.equal("nothing", conn:want())
    assert.matches("^SSL connection: ", tostring(conn))
    local info = conn:info()
    assert.matches("^TLSv1%.[23]$", info.protocol)
    assert.equal(info.protocol, conn:info("protocol"))
    assert.is_true(info.bits >= 128)
    local cert = conn:getpeercertificate()
    assert.same({ oid = "2.5.4.3", name = "commonName", value = "localhost" },
                cert:subject()[1])
    assert.equal("corun test CA", cert:issuer()[1].value)
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", cert:pem())
    assert.matches("^%x+$", cert:digest("sha256"))
    assert.matches("GMT$", cert:notafter())
    assert.is_nil(conn:getpeercertificate(1))
    local req = "GET /direct HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert.same({ #req + 0.0 }, { conn:send(req) })
    assert.same({ "HTTP/1.1 200 OK" }, { conn:receive("*l") })
    local rest = assert(conn:receive("*a"))
    assert.truthy(rest:find("\r\n\r\nGET /direct $"))
    assert.same({ nil, "closed", "" }, { conn:receive("*a") })
    assert.same({}, { conn:close() })
    assert.same({ nil, "closed", 0.0 }, { conn:send("x") })
    srv:close()
    -- a receive that times out: LuaSec's "wantread", with the partial data
    local srv2 = server()
    conn = client(srv2.port)
    conn:sni("localhost")
    assert(conn:dohandshake())
    conn:settimeout(0.1)
    assert.same({ nil, "wantread", "" }, { conn:receive("*l") })
    conn:send("GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
    local line, err, partial
    repeat line, err, partial = conn:receive(100000) until err == "wantread"
    assert.is_nil(line)
    assert.truthy(#partial == 0 or partial:find("^HTTP/1%.1"))
    conn:close()
    srv2:close()
    -- a context made once and shared by connections
    local ctx = assert(ssl.newcontext { mode = "client", protocol = "tlsv1_3",
                                        verify = "peer", cafile = CA })
    local srv3 = server()
    local s = corun.socket.tcp()
    assert(s:connect("127.0.0.1", srv3.port))
    conn = assert(ssl.wrap(s, ctx))
    assert(conn:dohandshake())
    assert.equal("TLSv1.3", conn:info("protocol"))
    conn:close()
    srv3:close()
  end))

  it("bad params fail with LuaSec's messages", async(function()
    load_https()
    local ssl, socket = corun.ssl, corun.socket
    local function wrap(p) return { ssl.wrap(socket.tcp(), p) } end
    assert.same({ nil, "invalid mode" }, wrap { mode = "cliente" })
    assert.same({ nil, "invalid protocol (tlsv9)" },
                wrap { mode = "client", protocol = "tlsv9" })
    assert.same({ nil, "invalid verify option (bogus)" },
                wrap { mode = "client", verify = "bogus" })
    assert.same({ nil, "invalid option (bogus)" },
                wrap { mode = "client", options = { "all", "bogus" } })
    assert.same({ nil, "error loading CA locations (No such file or directory)" },
                wrap { mode = "client", cafile = "/nonexistent/ca.pem" })
    assert.same({ nil, "a server needs a certificate and a key" },
                wrap { mode = "server" })
    helper.raises("bad argument #1 to 'newcontext' (params.mode must be "
                  .. '"client" or "server")', ssl.wrap, socket.tcp(), {})
    helper.raises("bad argument #1 to 'wrap' (a corun.socket TCP object expected",
                  ssl.wrap, {}, { mode = "client" })
    helper.raises("bad argument #2 to 'wrap' (table or context expected)",
                  ssl.wrap, socket.tcp(), "client")
    -- an unconnected socket: the handshake says closed
    local conn = assert(ssl.wrap(socket.tcp(), { mode = "client" }))
    assert.same({ false, "closed" }, { conn:dohandshake() })
  end))

  it("handshake timeouts, closes and non-TLS peers", async(function()
    local https, socket, ssl = load_https()
    local silent = bad_server("silent")
    -- ssl.https with a short timeout: LuaSec's "wantread"
    https.TIMEOUT = 0.1
    local t0 = corun.time()
    assert.same({ nil, "wantread" },
                { https.request("https://127.0.0.1:" .. silent.port .. "/") })
    assert.is_true(corun.time() - t0 < 5)
    https.TIMEOUT = 10
    -- direct: settimeout(0) and a timeout; the handshake can be resumed
    local s = socket.tcp()
    assert(s:connect("127.0.0.1", silent.port))
    local conn = assert(ssl.wrap(s, { mode = "client" }))
    conn:settimeout(0)
    assert.same({ false, "wantread" }, { conn:dohandshake() })
    conn:settimeout(0.05)
    assert.same({ false, "wantread" }, { conn:dohandshake() })
    conn:close()
    silent:close({ cancel = true })
    local closing = bad_server("close")
    s = socket.tcp()
    assert(s:connect("127.0.0.1", closing.port))
    conn = assert(ssl.wrap(s, { mode = "client" }))
    assert.same({ false, "closed" }, { conn:dohandshake() })
    conn:close()
    closing:close()
    local garbage = bad_server("garbage")
    assert.same({ nil, "wrong version number" },
                { https.request("https://127.0.0.1:" .. garbage.port .. "/") })
    garbage:close()
  end))

  it("a task in a handshake or an https.request is cancelled at once",
     async(function()
    local https, socket, ssl = load_https()
    local silent = bad_server("silent")
    local t = corun.spawn(https.request, "https://127.0.0.1:" .. silent.port .. "/")
    local s = socket.tcp()
    assert(s:connect("127.0.0.1", silent.port))
    local conn = assert(ssl.wrap(s, { mode = "client" }))
    local t2 = corun.spawn(function() return conn:dohandshake() end)
    corun.sleep(0.05)
    assert.same({ "pending", "pending" }, { t:status(), t2:status() })
    t:cancel()
    t2:cancel()
    corun.sleep(0)
    assert.same({ "cancelled", "cancelled" }, { t:status(), t2:status() })
    conn:close()
    -- a timeout around a handshake (corun.move_on_after) ends it too
    s = socket.tcp()
    assert(s:connect("127.0.0.1", silent.port))
    conn = assert(ssl.wrap(s, { mode = "client" }))
    assert.is_false((corun.move_on_after(0.05, conn.dohandshake, conn)))
    conn:close()
    silent:close({ cancel = true })
  end))

  it("server mode: LuaSec-style code on both ends, client certificates",
     async(function()
    load_https()
    local socket, ssl = corun.socket, corun.ssl
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local sparams = { mode = "server", protocol = "any",
                      certificate = DIR .. "/srv.pem", key = DIR .. "/srv.key",
                      verify = { "peer", "fail_if_no_peer_cert" },
                      cafile = CA }
    local seen = {}
    local acceptor = corun.spawn(function()
      while true do
        local c = server:accept()
        if not c then return end
        corun.spawn(function()
          local conn = assert(ssl.wrap(c, sparams))
          local ok, err = conn:dohandshake()
          seen[#seen + 1] = ok and "ok" or err
          if ok then
            local peer = conn:getpeercertificate()
            local line = conn:receive("*l")
            conn:send(("%s from %s\n"):format(line, peer:subject()[1].value))
          end
          conn:close()
        end)
      end
    end)
    -- with a client certificate
    local s = socket.tcp()
    assert(s:connect("127.0.0.1", port))
    local conn = assert(ssl.wrap(s, { mode = "client", verify = "peer",
      cafile = CA, certificate = DIR .. "/client.pem", key = DIR .. "/client.key" }))
    conn:sni("localhost")
    assert.same({ true }, { conn:dohandshake() })
    conn:send("hi\n")
    assert.same({ "hi from corun client" }, { conn:receive() })
    conn:close()
    -- without one: the server refuses
    s = socket.tcp()
    assert(s:connect("127.0.0.1", port))
    conn = assert(ssl.wrap(s, { mode = "client", verify = "peer", cafile = CA }))
    conn:sni("localhost")
    local ok = conn:dohandshake()
    if ok then   -- TLS 1.3: the client hears of it at its first read
      conn:send("hi\n")
      assert.is_nil((conn:receive()))
    end
    conn:close()
    corun.sleep(0.05)
    assert.equal("ok", seen[1])
    assert.equal("peer did not return a certificate", seen[2])
    server:close()
    acceptor:cancel()
  end))
end)
