-- spec/regress/013_socket_compat_script.lua: one sequence of LuaSocket
-- calls whose results are printed with their Lua types; run by
-- 013_socket_compat_spec.lua once with the real LuaSocket (arg[1] ==
-- "real") and once with corun.socket inside a corun task, and the two
-- outputs compared.
local socket, corun
if arg[1] == "real" then socket = require "socket"
else
  corun = require "corun"
  socket = corun.socket
end
local function show(label, ...)
  local t = table.pack(...)
  local parts = {}
  for i = 1, t.n do
    local v = t[i]
    local s = tostring(v):gsub("0x%x+", "X")
    if (math.type(v) == "integer" or type(v) == "string") and
       s:match("^%d%d%d%d%d?$") then s = "PORT" end  -- ports differ
    s = s:gsub("to '[^']*'", "to 'F'")  -- LuaSocket names no function
    parts[i] = (math.type(v) or type(v)) .. ":" .. s
  end
  print(label, table.concat(parts, " "))
end
local function body()
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
show("getsockname", srv:getsockname())
local c = assert(socket.connect("127.0.0.1", port))
local a = assert(srv:accept())
show("send", c:send("hello\nworld"))
show("send ij", c:send("abcdef", 2, 4))
show("send empty", c:send("abcdef", 4, 2))
show("recv l", a:receive())
a:settimeout(0.1)
show("recv l timeout", a:receive())
show("recv n", c:send("12345"), a:receive(3))
show("recv n timeout", a:receive(5))
show("recv 0", a:receive(0))
show("settimeout", a:settimeout(1))
show("setoption", c:setoption("tcp-nodelay", true))
show("getoption", c:getoption("tcp-nodelay"))
show("getpeername", c:getpeername())
show("dirty", a:dirty())
show("shutdown", c:shutdown("send"))
show("recv a", a:receive("*a"))
show("recv a again", a:receive("*a"))
show("recv l closed", a:receive())
show("close", a:close())
show("send closed", a:send("x"))
show("recv closed", pcall(a.receive, a))
show("getfd", type(c:getfd()))
show("tostring", tostring(c):match("^[^:]*"))
show("accept timeout", (function() srv:settimeout(0.05) return srv:accept() end)())
show("connect refused", socket.connect("127.0.0.1", 1))
show("connect badhost", socket.connect("no-such-host.invalid", 80))
show("toip", socket.dns.toip("localhost"))
show("toip bad", socket.dns.toip("no-such-host.invalid"))
show("tohostname", socket.dns.tohostname("127.0.0.1"))
show("getaddrinfo", #socket.dns.getaddrinfo("localhost"))
show("bind inuse", socket.bind("127.0.0.1", port))
local byname = assert(socket.bind("localhost", 0))
show("bind by name", byname:getsockname())
byname:close()
show("bind badhost", socket.bind("no-such-host.invalid", 0))
local m = socket.tcp()
show("master tostring", tostring(m):match("^[^:]*"))
show("master getpeername", m:getpeername())
show("master getsockname", m:getsockname())
show("master receive", pcall(m.receive, m))
show("udp unconnected send", pcall(socket.udp().send, socket.udp(), "x"))
show("setoption bad", pcall(c.setoption, c, "bogus", 1))
show("settimeout bad", pcall(c.settimeout, c, 1, "x"))
show("receive bad", pcall(c.receive, c, "*x"))
show("shutdown bad", pcall(c.shutdown, c, "x"))
show("select timeout", socket.select({srv}, nil, 0.01))
local u = socket.udp()
show("udp tostring", tostring(u):match("^[^:]*"))
show("udp setsockname", u:setsockname("127.0.0.1", 0))
local _, up = u:getsockname()
local u2 = socket.udp()
show("udp sendto", u2:sendto("dgram", "127.0.0.1", up))
show("udp receivefrom", u:receivefrom())
u:settimeout(0.05)
show("udp receive timeout", u:receive())
show("udp setpeername", u2:setpeername("127.0.0.1", up))
show("udp send", u2:send("x"))
show("udp sendto connected", pcall(u2.sendto, u2, "x", "127.0.0.1", up))
show("udp receive", u:receive())
show("udp getpeername", u2:getpeername())
show("udp big", u2:send(string.rep("x", 70000)))
show("udp close", u:close())
show("gettime", math.type(socket.gettime()))
show("sleep", socket.sleep(0.01))
show("skip", socket.skip(1, "a", "b"))
show("protect", socket.protect(function() socket.try(nil, "boom") end)())
end

if corun then corun.run(body) else body() end
