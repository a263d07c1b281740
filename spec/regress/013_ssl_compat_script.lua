-- spec/regress/013_ssl_compat_script.lua: one sequence of LuaSec calls
-- whose results are printed with their Lua types; run by
-- 013_ssl_compat_spec.lua once with Debian's real LuaSec and LuaSocket
-- (arg[1] == "real") and once with corun.ssl and corun.socket inside a
-- corun task, against the same `openssl s_server -www` (port arg[2], test
-- CA directory arg[3]); the two outputs are compared.
local socket, ssl, corun
if arg[1] == "real" then
  socket, ssl = require "socket", require "ssl"
else
  corun = require "corun"
  socket = corun.socket.install()
  ssl = require "ssl"
end
local PORT, DIR = tonumber(arg[2]), arg[3]

local function show(label, ...)
  local t = table.pack(...)
  local parts = {}
  for i = 1, t.n do
    local v = t[i]
    local s = tostring(v):gsub("0x%x+", "X")
    parts[i] = (math.type(v) or type(v)) .. ":" .. s
  end
  print(label, table.concat(parts, " "))
end

local function params(extra)
  local p = { mode = "client", protocol = "any", verify = "peer",
              cafile = DIR .. "/ca.pem" }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function connect(port, p)
  local s = assert(socket.tcp())
  assert(s:connect("127.0.0.1", port or PORT))
  return assert(ssl.wrap(s, p or params()))
end

local function body()
  -- wait for s_server to listen
  for _ = 1, 100 do
    local s = socket.tcp()
    if s:connect("127.0.0.1", PORT) then s:close() break end
    s:close()
    socket.sleep(0.05)
  end
  local c = connect()
  show("tostring", (tostring(c):match("^[^:]*")))
  show("sni", c:sni("localhost"))
  show("handshake", c:dohandshake())
  show("handshake again", c:dohandshake())
  show("verification", c:getpeerverification())
  show("info protocol", c:info("protocol"))
  show("info bits", math.type(c:info().bits), c:info().cipher == c:info("cipher"))
  local cert = c:getpeercertificate()
  show("cert", (tostring(cert):match("^[^:]*")))
  show("cert subject", cert:subject()[1].name, cert:subject()[1].value,
       cert:subject()[1].oid)
  show("cert issuer", cert:issuer()[1].value)
  show("cert pem", (cert:pem():match("^[^\n]*")))
  show("cert notafter", (cert:notafter():match("GMT$")))
  show("settimeout", c:settimeout(5))
  show("send", c:send("GET / HTTP/1.0\r\n\r\n"))
  show("receive l", c:receive("*l"))
  show("receive n", c:receive(13))
  show("receive prefix", c:receive("*l", "pre:"))
  local all = c:receive("*a")
  show("receive a", type(all), all:find("</HTML>", 1, true) ~= nil)
  show("receive a again", c:receive("*a"))
  show("receive l closed", c:receive())
  show("close", c:close())
  show("send closed", c:send("x"))
  show("receive closed", c:receive())

  c = connect()
  c:sni("localhost")
  show("receive timeout", c:dohandshake(), c:settimeout(0.1), c:receive())
  show("partial", c:send("GET / HTTP/1.0\r\n"), c:receive(5))
  c:close()

  c = connect(nil, params { cafile = DIR .. "/other_ca.pem" })
  show("unknown CA", c:dohandshake())
  c:close()

  c = connect(nil, params { verify = "none", cafile = false })
  show("verify none", c:dohandshake())
  show("verify none verification", c:getpeerverification())
  c:close()

  c = connect(nil, params { protocol = "tlsv1_2" })
  show("tlsv1_2", c:dohandshake(), c:info("protocol"))
  c:close()

  local function wrap(p) return ssl.wrap(socket.tcp(), p) end
  show("bad mode", wrap { mode = "cliente", protocol = "any" })
  show("bad protocol", wrap { mode = "client", protocol = "tlsv9" })
  show("bad verify", wrap { mode = "client", protocol = "any", verify = "bogus" })
  show("bad option", wrap { mode = "client", protocol = "any", options = "bogus" })
  show("good options", (tostring(wrap { mode = "client", protocol = "any",
    options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1" } }):match("^[^:]*")))
  show("context", (tostring(ssl.newcontext(params())):match("^[^:]*")))

  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, sport = srv:getsockname()
  c = connect(sport, params())
  c:settimeout(0.1)
  show("handshake timeout", c:dohandshake())
  c:settimeout(0)
  show("handshake timeout 0", c:dohandshake())
  local a = assert(srv:accept())
  a:close()
  c:settimeout(2)
  show("handshake closed", c:dohandshake())
  c:close()
  c = connect(sport, params())
  a = assert(srv:accept())
  a:send("HTTP/1.0 400 not TLS\r\n\r\n")
  a:close()
  show("handshake garbage", c:dohandshake())
  c:close()
  srv:close()
end

if corun then corun.run(body) else body() end
