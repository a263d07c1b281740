-- spec/tls_spec.lua: corun.tls (src/tls.c, lua/corun/tls.lua) against
-- itself, `openssl s_server`, `openssl s_client` and Python's ssl, with a
-- test CA made by `openssl` in a temporary directory.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async
local tls = corun.tls

local pki = require "pki"

local DIR = pki.make()

local function server_opts(extra)
  local o = { server = true, cert = DIR .. "/srv.pem", key = DIR .. "/srv.key" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- A corun TLS server on 127.0.0.1: handler(tls_stream) per connection;
-- handshake failures are recorded in srv_errors.
local srv_errors = {}
local function tls_server(handler, opts)
  return assert(corun.tcp.listen("127.0.0.1", 0, function(raw)
    local s, err = tls.wrap(raw, server_opts(opts))
    if not s then
      srv_errors[#srv_errors + 1] = err
      return
    end
    local _ <close> = s
    handler(s)
  end))
end

local function echo(s)
  while true do
    local line = s:read("L")
    if not line then return end
    assert(s:write("echo:", line))
  end
end

-- Run a program (argv list) with 'input' on stdin; returns code, stdout.
-- Peers run without an ASan LD_PRELOAD (the specs under ASan).
local function run(argv, input)
  local code, out, err = corun.process.run("env", { "-u", "LD_PRELOAD", table.unpack(argv) },
                                           { input = input })
  return code, out, err
end

local function spawn(cmd, args, opts)
  return corun.process.spawn("env", { "-u", "LD_PRELOAD", cmd, table.unpack(args) }, opts)
end

describe("corun.tls", function()
  after_each(helper.check)
  teardown(pki.cleanup)

  it("a corun client and server talk, reads in every mode", async(function()
    local srv = tls_server(echo)
    local c = assert(tls.connect("localhost", srv.port, { cafile = DIR .. "/ca.pem" }))
    assert(c:write("one\n", "two\r\n", 3, "\n"))
    assert.equal("echo:one", c:read("l"))
    assert.equal("echo:two\r\n", c:read("L"))
    assert.equal("echo:", c:read(5))
    assert.equal("3", c:read("l"))
    local big = string.rep("abcdefgh", 40000)   -- 320 KB: many records
    assert(c:write(big, "\n"))
    assert.equal("echo:" .. big, c:read("l"))
    assert.matches("^TLSv1%.[23]$", c:info().protocol)
    c:close()
    assert.same({ nil, "closed" }, { c:read("l") })
    srv:close()
  end))

  it("read('a') reads to the peer's close_notify", async(function()
    local srv = tls_server(function(s) s:write("all of it\n", "and more") end)
    local c = assert(tls.connect("127.0.0.1", srv.port, { cafile = DIR .. "/ca.pem" }))
    assert.equal("all of it\nand more", c:read("a"))
    assert.is_nil(c:read("l"))
    c:close()
    srv:close()
  end))

  it("verifies: an unknown CA and a wrong host name fail", async(function()
    local srv = tls_server(echo)
    local c, err, code = tls.connect("localhost", srv.port)  -- system CAs
    assert.is_nil(c)
    assert.equal("ETLS", code)
    assert.matches("^ETLS: certificate verify failed: ", err)
    c, err, code = tls.connect("localhost", srv.port, { cafile = DIR .. "/other_ca.pem" })
    assert.is_nil(c)
    assert.equal("ETLS", code)
    assert.matches("^ETLS: certificate verify failed: unable to get local issuer certificate", err)
    c, err, code = tls.connect("127.0.0.1", srv.port, { cafile = DIR .. "/ca.pem",
                                                         servername = "wrong.example" })
    assert.is_nil(c)
    assert.equal("ETLS: certificate verify failed: hostname mismatch", err)
    assert.equal("ETLS", code)
    -- verify = false (insecure) connects anyway
    c = assert(tls.connect("localhost", srv.port, { verify = false }))
    c:write("x\n")
    assert.equal("echo:x", c:read("l"))
    c:close()
    corun.sleep(0.05)
    assert.matches("^ETLS: ", srv_errors[1])
    srv:close()
  end))

  it("checks IP addresses against the certificate's IP entries", async(function()
    local srv = tls_server(echo)
    local c = assert(tls.connect("127.0.0.1", srv.port, { cafile = DIR .. "/ca.pem" }))
    c:close()
    srv:close()
  end))

  it("client certificates and ALPN", async(function()
    local srv = tls_server(function(s)
      s:write(tostring(s:info().alpn), "\n")
    end, { verify = true, cafile = DIR .. "/ca.pem", alpn = { "h2", "http/1.1" } })
    local c = assert(tls.connect("localhost", srv.port, {
      cafile = DIR .. "/ca.pem", cert = DIR .. "/client.pem",
      key = DIR .. "/client.key", alpn = "http/1.1" }))
    assert.equal("http/1.1", c:read("l"))
    assert.equal("http/1.1", c:info().alpn)
    c:close()
    -- without a client certificate the server refuses
    local n = #srv_errors
    c = tls.connect("localhost", srv.port, { cafile = DIR .. "/ca.pem" })
    if c then assert.is_nil(c:read("l")) end  -- TLS 1.3: refused after
    corun.sleep(0.05)
    assert.equal(n + 1, #srv_errors)
    assert.matches("^ETLS: ", srv_errors[n + 1])
    srv:close()
  end))

  it("a peer that stops mid-handshake times out", async(function()
    local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(raw)
      raw:read("a")  -- says nothing
    end))
    local t0 = corun.time()
    local c, err, code = tls.connect("127.0.0.1", srv.port, { timeout = 0.3 })
    assert.is_nil(c)
    assert.equal("ETLS: handshake timed out", err)
    assert.equal("ETLS", code)
    assert.is_true(corun.time() - t0 >= 0.25)
    -- a server whose client stops: wrap times out too
    local got
    local srv2 = assert(corun.tcp.listen("127.0.0.1", 0, function(raw)
      got = { tls.wrap(raw, server_opts { timeout = 0.2 }) }
    end))
    local raw = assert(corun.tcp.connect("127.0.0.1", srv2.port))
    raw:write("\22\3\1\0\200")  -- a record header, then nothing
    corun.sleep(0.5)
    assert.same({ nil, "ETLS: handshake timed out", "ETLS" }, got)
    raw:close()
    srv:close()
    srv2:close()
  end))

  it("a peer that does not speak TLS gets an ETLS error", async(function()
    local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(raw)
      raw:write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
      raw:read("a")
    end))
    local c, err, code = tls.connect("127.0.0.1", srv.port, { timeout = 5 })
    assert.is_nil(c)
    assert.equal("ETLS", code)
    assert.matches("^ETLS: ", err)
    srv:close()
  end))

  it("a peer that closes mid-handshake", async(function()
    local srv = assert(corun.tcp.listen("127.0.0.1", 0, function(raw)
      raw:read(5)
      raw:close()
    end))
    assert.same({ nil, "ETLS: connection closed during handshake", "ETLS" },
                { tls.connect("127.0.0.1", srv.port, { timeout = 5 }) })
    srv:close()
  end))

  it("a read times out and can be cancelled", async(function()
    local srv = tls_server(function(s) s:read("a") end)
    local c = assert(tls.connect("localhost", srv.port, { cafile = DIR .. "/ca.pem" }))
    assert.same({ nil, "timeout" }, { c:read("l", 0.1) })
    local t = corun.spawn(function() return c:read("l") end)
    corun.sleep(0.05)
    t:cancel()
    assert.is_true(corun.is_cancelled(select(2, pcall(t.join, t))))
    c:close()
    srv:close()
  end))

  it("talks to openssl s_server", async(function()
    local p = assert(spawn("openssl", { "s_server", "-accept",
      "127.0.0.1:0", "-cert", DIR .. "/srv.pem", "-key", DIR .. "/srv.key",
      "-rev", "-naccept", "1" }, { stdout = "pipe", stderr = "null" }))
    local _ <close> = helper.closer(function() p:kill(); p:wait() end)
    local port
    repeat
      local line = p.stdout:read("l", 10)
      port = line and line:match("ACCEPT [%d.]+:(%d+)")
    until port or not line
    assert(port, "openssl s_server did not start")
    local c = assert(tls.connect("localhost", tonumber(port), { cafile = DIR .. "/ca.pem" }))
    assert(c:write("hello\n"))
    assert.equal("olleh", c:read("l", 10))
    c:close()
  end))

  it("answers openssl s_client and Python's ssl", async(function()
    local srv = tls_server(function(s)
      local line = s:read("l")
      s:write("pong:", tostring(line), "\n")
    end)
    local code, out = run({ "openssl", "s_client", "-connect",
      "127.0.0.1:" .. srv.port, "-servername", "localhost", "-CAfile",
      DIR .. "/ca.pem", "-verify_return_error", "-quiet" }, "ping\n")
    assert.equal(0, code)
    assert.equal("pong:ping\n", out)
    local py = ([[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=%q)
with socket.create_connection(("127.0.0.1", %d)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"from python\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(100)
            if not chunk: break
            data += chunk
        sys.stdout.write(data.decode())
]]):format(DIR .. "/ca.pem", srv.port)
    code, out = run({ "python3", "-c", py })
    assert.equal(0, code)
    assert.equal("pong:from python\n", out)
    srv:close()
  end))

  it("talks to a Python ssl server, which checks it", async(function()
    local py = ([[
import socket, ssl, sys
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(%q, %q)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
with ctx.wrap_socket(c, server_side=True) as s:
    data = s.recv(100)
    s.sendall(b"py:" + data)
]]):format(DIR .. "/srv.pem", DIR .. "/srv.key")
    local p = assert(spawn("python3", { "-c", py }, { stdout = "pipe" }))
    local port = assert(tonumber(p.stdout:read("l", 10)))
    local c = assert(tls.connect("localhost", port, { cafile = DIR .. "/ca.pem" }))
    assert(c:write("hi\n"))
    assert.equal("py:hi", c:read("l", 10))
    c:close()
    assert.equal(0, p:wait(10))
  end))

  it("misuse raises", async(function()
    assert.has_error(function() tls.connect(1, 2) end,
      "bad argument #1 to 'connect' (string expected)")
    assert.has_error(function() tls.wrap(nil) end,
      "bad argument #1 to 'wrap' (stream expected)")
    assert.has_error(function() tls.connect("x", 1, { timeout = -1 }) end,
      "bad argument #3 to 'connect' (timeout must be a number >= 0)")
    local c, err, code = tls.connect("localhost", 1, { cafile = DIR .. "/missing.pem" })
    assert.is_nil(c)
    assert.matches("^E", err)
    local ok, e = pcall(tls.wrap, {}, { server = true })
    assert.is_false(ok)
    assert.matches("a server needs cert and key", e)
    c, err, code = tls.wrap({}, { cafile = DIR .. "/missing.pem" })
    assert.is_nil(c)
    assert.equal("ETLS", code)
    assert.matches("^ETLS: ", err)
  end))
end)
