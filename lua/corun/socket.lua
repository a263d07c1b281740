--[[
** corun.socket: LuaSocket's interface (socket.core plus what socket.lua
** adds) over corun's streams, servers, UDP sockets and resolver, so code
** written for LuaSocket (socket.http, ltn12 users, ...) runs unmodified
** inside corun tasks: every blocking call is a suspension point of the
** calling task (cancellable), and settimeout keeps LuaSocket's meanings.
**
** corun.socket.install() makes require "socket" and require "socket.core"
** return this module. Calls that wait need a task: outside one they raise
** an error saying so (corun's tasks and servers live within one corun.run,
** so running each call in a run of its own could not serve).
**
** Return values and error strings are LuaSocket's: "timeout", "closed",
** "connection refused", "host or service not provided, or not known", ...
** Composed only of corun's public functions and stream methods.
--]]

local corun = require "corun"
local core = require "corun.core"

local time, current, spawn, queue = corun.time, corun.current, corun.spawn,
                                    corun.queue
local find, sub, gsub, concat = string.find, string.sub, string.gsub,
                                table.concat
local huge = math.huge

local M = {}
M._VERSION = "LuaSocket 3.1.0"
M._SETSIZE = 1024
M._SOCKETINVALID = -1
M.BLOCKSIZE = 2048

--[[ errors ]]

-- LuaSocket's texts for corun's "ENAME: message" failures.
local messages = {
  ECONNREFUSED = "connection refused",
  ECONNRESET = "closed", ECONNABORTED = "closed", EPIPE = "closed",
  EOF = "closed",
  EADDRINUSE = "address already in use",
  EISCONN = "already connected",
  EACCES = "permission denied",
  ETIMEDOUT = "timeout",
  ENOTCONN = "Transport endpoint is not connected",
  EAI_AGAIN = "temporary failure in name resolution",
  EAI_BADFLAGS = "invalid value for ai_flags",
  EAI_FAIL = "non-recoverable failure in name resolution",
  EAI_FAMILY = "ai_family not supported",
  EAI_MEMORY = "memory allocation failure",
  EAI_NONAME = "host or service not provided, or not known",
  EAI_NODATA = "host or service not provided, or not known",
  EAI_OVERFLOW = "argument buffer overflow",
  EAI_PROTOCOL = "resolved protocol is unknown",
  EAI_SERVICE = "service not supported for socket type",
  EAI_SOCKTYPE = "ai_socktype not supported",
}

local function lserr(err)
  if err == nil then return "closed" end
  if err == "timeout" or err == "closed" then return err end
  local name, msg = err:match("^([%u_%d]+): (.*)$")
  if not name then return err end
  return messages[name] or (msg:gsub("^%l", string.upper))
end
M._error = lserr

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

-- f(...), a call that may wait: it needs a task (corun's servers and
-- tasks live within one corun.run, so a run per call cannot serve).
local function blocking(f, fname)
  local msg = ("corun.socket: '%s' must be called from inside a task "
               .. "(start one with corun.run or corun.spawn, or run the "
               .. "script with the corun runner)"):format(fname)
  return function(...)
    if not current() then error(msg, 2) end
    return f(...)
  end
end

--[[ try, protect, skip, choose ]]

local tryerror = {}   -- metatable of the errors newtry raises

function M.newtry(finalizer)
  return function(...)
    local ok = ...
    if ok then return ... end
    if finalizer then pcall(finalizer) end
    error(setmetatable({ (select(2, ...)) }, tryerror), 0)
  end
end

M.try = M.newtry()

local function protected(ok, ...)
  if ok then return ... end
  local err = ...
  if getmetatable(err) == tryerror then return nil, err[1] end
  error(err, 0)
end

-- protect(f): errors raised by try become nil, err; others propagate
-- (corun's Cancelled among them). pcall is yieldable: f may suspend.
function M.protect(f)
  return function(...) return protected(pcall(f, ...)) end
end

function M.skip(d, ...)
  return select(d + 1, ...)
end

function M.choose(tbl)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then
      name, opt1, opt2 = "default", name, opt1
    end
    local f = tbl[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

--[[ time ]]

M.gettime = core.gettimeofday

M.sleep = blocking(function(sec)
  if type(sec) ~= "number" then argerror("sleep", 1, "number expected") end
  if sec > 0 then corun.sleep(sec) end
end, "sleep")

--[[ timeouts: LuaSocket's block and total meanings ]]

-- The wait allowed now for an operation that started at 'start' (nil:
-- no limit). 'block' bounds each wait, 'total' the whole operation.
local function retry(self, start)
  local b, t = self.block, self.total
  if b < 0 and t < 0 then return nil end
  if t < 0 then return b end
  local left = t - (time() - start)
  if left < 0 then left = 0 end
  if b < 0 or left < b then return left end
  return b
end

local function settimeout(self, value, mode)
  value = tonumber(value) or -1
  mode = mode or "b"
  local m = sub(mode, 1, 1)
  if m == "b" then self.block = value
  elseif m == "t" or m == "r" then self.total = value
  else argerror("settimeout", 3, "invalid timeout mode") end
  return 1.0
end

--[[ TCP ]]

local tcp = {}
tcp.__index = tcp

function tcp.__tostring(self)
  return ("tcp{%s}: %s"):format(self.kind, self.id)
end

local function newtcp(kind, family)
  local self = setmetatable({ kind = kind, family = family, block = -1,
                              total = -1, buf = "", opts = {},
                              recvd = 0, sent = 0, born = time() }, tcp)
  self.id = ("%p"):format(self)
  return self
end

-- Options LuaSocket knows; those libuv cannot set are accepted, kept for
-- getoption and otherwise ignored.
local tcpopts = {
  ["tcp-nodelay"] = "nodelay", keepalive = "keepalive",
  ["tcp-keepidle"] = "keepalive", ["recv-buffer-size"] = "rcvbuf",
  ["send-buffer-size"] = "sndbuf",
  reuseaddr = false, reuseport = false, linger = false,
  ["ipv6-v6only"] = false, ["tcp-keepcnt"] = false,
  ["tcp-keepintvl"] = false, ["tcp-defer-accept"] = false,
  ["tcp-fastopen"] = false, ["tcp-fastopen-connect"] = false,
}

local function applyopt(self, name, value)
  local native = tcpopts[name]
  if not native or not self.stream then return true end
  if name == "keepalive" then
    return self.stream:setoption("keepalive", value and
                                 (self.opts["tcp-keepidle"] or true))
  elseif name == "tcp-keepidle" then
    if not self.opts.keepalive then return true end
    return self.stream:setoption("keepalive", value)
  end
  return self.stream:setoption(native, value)
end

local function badoption(fname, name)
  argerror(fname, 2, ("unsupported option `%s'"):format(tostring(name)), 4)
end

function tcp:setoption(name, value)
  if type(name) ~= "string" or tcpopts[name] == nil then
    badoption("setoption", name)
  end
  self.opts[name] = value
  local ok, err = applyopt(self, name, value)
  if not ok then return nil, lserr(err) end
  return 1.0
end

-- getoption for a socket whose options are named in 'known': the value
-- last set (false when never set), as LuaSocket answers.
local function getoption(known, self, name)
  if type(name) ~= "string" or known[name] == nil then
    badoption("getoption", name)
  end
  local v = self.opts[name]
  if v == nil then v = false end
  return v
end

function tcp:getoption(name) return getoption(tcpopts, self, name) end

tcp.settimeout = settimeout

local function adopt(self, stream)
  self.stream = stream
  self.kind = "client"
  for name, value in pairs(self.opts) do applyopt(self, name, value) end
end

tcp.connect = blocking(function(self, host, port)
  if self.kind == "client" then return nil, "already connected" end
  if self.kind ~= "master" then return nil, "closed" end
  if type(host) ~= "string" then argerror("connect", 1, "string expected") end
  port = tonumber(port)
  if not port then argerror("connect", 2, "number expected") end
  if port < 1 or port > 65535 then return nil, "connection refused" end
  local s, err = corun.tcp.connect(host, math.tointeger(port),
                                   retry(self, time()))
  if not s then return nil, lserr(err) end
  adopt(self, s)
  return 1.0
end, "connect")

local function numeric(addr)
  return addr:match("^%d+%.%d+%.%d+%.%d+$") or addr:find(":", 1, true)
end

-- bind(host, port): in a task a name is resolved first (an address of
-- the socket's family), so getsockname gives the address bound, as
-- LuaSocket. Outside a task corun.tcp.listen resolves it (synchronously).
function tcp:bind(host, port)
  if self.kind ~= "master" then return nil, "already bound" end
  if host == "*" then host = self.family == "inet6" and "::" or "0.0.0.0" end
  port = tonumber(port)
  if type(host) ~= "string" then argerror("bind", 2, "string expected") end
  if not port then argerror("bind", 3, "number expected") end
  if not numeric(host) and current() then
    local list, err = corun.dns.resolve(host, { family = self.family })
    if not list then return nil, lserr(err) end
    host = list[1].addr
  end
  local q = queue()
  local server, err = core.tcp.listen(host, math.tointeger(port),
                                      function(stream) q:put(stream) end)
  if not server then return nil, lserr(err) end
  self.server, self.q, self.pending = server, q, {}
  self.host = host
  self.kind = "server"
  return 1.0
end

-- The listening happens in bind (corun's listen binds and listens at
-- once), so listen only checks the state.
function tcp:listen(backlog)
  if self.kind ~= "server" then return nil, "Invalid argument" end
  return 1.0
end

tcp.accept = blocking(function(self)
  if self.kind ~= "server" then return nil, "closed" end
  local s = table.remove(self.pending, 1)
  if not s then
    local err
    s, err = self.q:get(retry(self, time()))
    if not s then return nil, lserr(err) end
  end
  local c = newtcp("client", self.family)
  for name, value in pairs(self.opts) do c.opts[name] = value end
  adopt(c, s)
  return c
end, "accept")

-- Wait for more data (within the socket's timeouts, or without limit
-- when 'forever'): returns a chunk, or nil, err.
local function fill(self, start, forever)
  if self.eof then return nil, "closed" end
  local s = self.stream
  local d, err = s:read(1, not forever and retry(self, start) or nil)
  if d == nil then
    if err == "timeout" then return nil, "timeout" end
    self.eof = true
    return nil, lserr(err)
  end
  local rest = s:_take()
  self.recvd = self.recvd + #d + #rest
  return d .. rest
end

local function recvline(self, start)
  local buf, from = self.buf, 1
  while true do
    local i = find(buf, "\n", from, true)
    if i then
      self.buf = sub(buf, i + 1)
      return (gsub(sub(buf, 1, i - 1), "\r", ""))
    end
    from = #buf + 1
    local chunk, err = fill(self, start)
    if not chunk then
      self.buf = ""
      return nil, err, (gsub(buf, "\r", ""))
    end
    buf = buf .. chunk
  end
end

local function recvn(self, n, start)
  local parts, have = { self.buf }, #self.buf
  while have < n do
    local chunk, err = fill(self, start)
    if not chunk then
      self.buf = ""
      return nil, err, concat(parts)
    end
    parts[#parts + 1] = chunk
    have = have + #chunk
  end
  local all = concat(parts)
  self.buf = sub(all, n + 1)
  return sub(all, 1, n)
end

local function recvall(self, start)
  local parts, total = { self.buf }, 0
  self.buf = ""
  while true do
    local chunk, err = fill(self, start)
    if not chunk then
      local data = concat(parts)
      if err == "closed" then
        if total > 0 or #data > 0 then return data end
        return nil, "closed", data
      end
      return nil, err, data
    end
    parts[#parts + 1] = chunk
    total = total + #chunk
  end
end

-- receive([pattern], [prefix]) -> data, nil, nil | nil, err, partial
-- A method of clients only (LuaSocket's classes raise for the others).
local function checkclient(self, fname)
  if self.kind ~= "client" and self.kind ~= "closed" then
    error(("bad argument #1 to '%s' (tcp{client} expected)"):format(fname), 3)
  end
end

tcp.receive = blocking(function(self, pattern, prefix)
  checkclient(self, "receive")
  if self.kind ~= "client" then return nil, "closed", "" end
  pattern = pattern or "*l"
  prefix = prefix or ""
  if self.stream == nil or self.rshut then return nil, "closed", prefix end
  local start = time()
  local data, err, partial
  if type(pattern) == "number" or tonumber(pattern) then
    local n = math.tointeger(tonumber(pattern))
    if not n or n < 0 then argerror("receive", 2, "invalid receive pattern") end
    if n == 0 and #self.buf == 0 and self.stream:_buffered() == 0 then
      -- as LuaSocket: wait for data (kept for later), or time out
      local chunk
      chunk, err = fill(self, start)
      if chunk then self.buf = chunk; data = "" else partial = "" end
    else
      data, err, partial = recvn(self, n, start)
    end
  else
    local p = type(pattern) == "string" and gsub(pattern, "^%*", "") or ""
    local c = sub(p, 1, 1)
    if c == "l" then data, err, partial = recvline(self, start)
    elseif c == "a" then data, err, partial = recvall(self, start)
    else argerror("receive", 2, "invalid receive pattern") end
  end
  if data then return prefix .. data, nil, nil end
  return nil, err, prefix .. partial
end, "receive")

-- send(data, [i], [j]) -> index of the last byte sent, nil, nil | nil,
-- err, last (floats, as LuaSocket's)
function tcp:send(data, i, j)
  checkclient(self, "send")
  if type(data) ~= "string" and type(data) ~= "number" then
    argerror("send", 2, "string expected, got " .. type(data))
  end
  data = tostring(data)
  local size = #data
  i = math.tointeger(tonumber(i) or 1) or 1
  j = math.tointeger(tonumber(j) or -1) or -1
  if i < 0 then i = size + i + 1 end
  if j < 0 then j = size + j + 1 end
  if i < 1 then i = 1 end
  if j > size then j = size end
  if self.kind ~= "client" or self.stream == nil then
    return nil, "closed", i - 1.0
  end
  if i > j then return i - 1.0, nil, nil end
  local ok, err = self.stream:write(sub(data, i, j))
  if not ok then return nil, lserr(err), i - 1.0 end
  self.sent = self.sent + (j - i + 1)
  return j + 0.0, nil, nil
end

function tcp:close()
  if self.stream then self.stream:close() end
  if self.server then
    self.server:close()
    for _, s in ipairs(self.pending) do s:close() end
    self.pending = {}
    while true do
      local s = self.q:get_nowait()
      if not s then break end
      s:close()
    end
    self.q:close()
  end
  self.stream, self.server = nil, nil
  self.kind = "closed"
  return 1.0
end

function tcp:shutdown(how)
  checkclient(self, "shutdown")
  how = how or "both"
  if how ~= "both" and how ~= "send" and how ~= "receive" then
    argerror("shutdown", 2, ("invalid option '%s'"):format(tostring(how)))
  end
  if self.kind ~= "client" then return nil, "closed" end
  if how ~= "receive" then
    local ok, err = self.stream:shutdown()
    if not ok then return nil, lserr(err) end
  end
  if how ~= "send" then self.rshut = true end
  return 1.0
end

local EBADF = "Bad file descriptor"

-- getpeername() -> host, port (an integer), family
function tcp:getpeername()
  if self.kind ~= "client" then return nil, EBADF end
  local host, port, family = self.stream:getpeername()
  if not host then return nil, lserr(port) end
  return host, port, family
end

-- getsockname() -> host, port (a string, as LuaSocket's), family
function tcp:getsockname()
  if self.kind == "server" then
    return self.host, tostring(self.server.port),
           find(self.host, ":", 1, true) and "inet6" or "inet"
  end
  if self.kind ~= "client" then return nil, EBADF end
  local host, port, family = self.stream:getsockname()
  if not host then return nil, lserr(port) end
  return host, tostring(port), family
end

function tcp:dirty()
  return self.kind == "client" and (#self.buf > 0 or
         self.stream:_buffered() > 0)
end

function tcp:getfd()
  return self.stream and self.stream:fileno() or -1
end

function tcp:setfd() end

function tcp:getfamily()
  return self.family
end

function tcp:getstats()
  return self.recvd + 0.0, self.sent + 0.0, time() - self.born
end

function tcp:setstats(received, sent, age)
  self.recvd, self.sent = tonumber(received) or 0, tonumber(sent) or 0
  self.born = time() - (tonumber(age) or 0)
  return 1.0
end

-- The streams of connected sockets (for code that wants corun's API).
function tcp:getstream()
  return self.stream
end

-- For corun.ssl, whose connections are TCP clients over a TLS stream.
M._tcp, M._newtcp, M._retry = tcp, newtcp, retry

function M.tcp() return newtcp("master", "inet") end
function M.tcp4() return newtcp("master", "inet") end
function M.tcp6() return newtcp("master", "inet6") end

--[[ UDP ]]

local udp = {}
udp.__index = udp

function udp.__tostring(self)
  return ("udp{%s}: %s"):format(self.kind, self.id)
end

local function newudp(family)
  local self = setmetatable({ kind = "unconnected", family = family,
                              block = -1, total = -1, opts = {} }, udp)
  self.id = ("%p"):format(self)
  return self
end

udp.settimeout = settimeout

-- The corun socket, made on first use with the family of 'host'.
local function sock(self, host)
  if self.closed then return nil end
  if not self.u then
    local fam = self.family
    if not fam then fam = host and find(host, ":", 1, true) and "inet6" or "inet" end
    self.u = corun.udp.open(fam)
    self.family = fam
    for name, value in pairs(self.opts) do self:setoption(name, value) end
  end
  return self.u
end

local function star(self, host)
  if host == "*" then return self.family == "inet6" and "::" or "0.0.0.0" end
  return host
end

function udp:setsockname(host, port)
  if type(host) ~= "string" then argerror("setsockname", 1, "string expected") end
  port = math.tointeger(tonumber(port))
  if not port then argerror("setsockname", 2, "number expected") end
  local u = sock(self, star(self, host))
  if not u then return nil, "closed" end
  local ok, err = u:bind(star(self, host), port,
                         { reuseaddr = self.opts.reuseaddr or self.opts.reuseport })
  if not ok then return nil, lserr(err) end
  return 1.0
end

function udp:setpeername(host, port)
  if host == "*" then
    if self.u then self.u:connect() end
    self.kind = "unconnected"
    return 1.0
  end
  if type(host) ~= "string" then argerror("setpeername", 1, "string expected") end
  port = math.tointeger(tonumber(port))
  if not port then argerror("setpeername", 2, "number expected") end
  local u = sock(self, host)
  if not u then return nil, "closed" end
  local ok, err = u:connect(host, port)
  if not ok then return nil, lserr(err) end
  self.kind = "connected"
  return 1.0
end

function udp:sendto(data, host, port)
  if type(data) ~= "string" then argerror("sendto", 1, "string expected") end
  if type(host) ~= "string" then argerror("sendto", 2, "string expected") end
  port = math.tointeger(tonumber(port))
  if not port then argerror("sendto", 3, "number expected") end
  if self.kind == "connected" then
    error("bad argument #1 to 'sendto' (udp{unconnected} expected)", 2)
  end
  local u = sock(self, host)
  if not u then return nil, "closed" end
  local ok, err = u:send(data, host, port)
  if not ok then return nil, lserr(err) end
  return #data + 0.0
end

function udp:send(data)
  if type(data) ~= "string" then argerror("send", 1, "string expected") end
  if self.closed then return nil, "closed" end
  if self.kind ~= "connected" then
    error("bad argument #1 to 'send' (udp{connected} expected)", 2)
  end
  local ok, err = self.u:send(data)
  if not ok then return nil, lserr(err) end
  return #data + 0.0
end

local function recvfrom(self, size)
  size = math.tointeger(tonumber(size) or 8192) or 8192
  local u = sock(self)
  if not u then return nil, "closed" end
  local d, host, port = u:recv(retry(self, time()))
  if not d then
    if host == "timeout" or host == "closed" then return nil, host end
    return nil, lserr(host)
  end
  if #d > size then d = sub(d, 1, size) end
  return d, host, port
end

-- receive([size]) -> data | nil, err (LuaSocket truncates at 8192 bytes
-- unless asked for more)
udp.receive = blocking(function(self, size)
  local d, err = recvfrom(self, size)
  if d then return d end
  return nil, err
end, "receive")

udp.receivefrom = blocking(recvfrom, "receivefrom")

local udpopts = {
  broadcast = "broadcast", ["ip-multicast-ttl"] = "multicast_ttl",
  ["ip-multicast-loop"] = "multicast_loop",
  ["ip-multicast-if"] = "multicast_interface",
  ["ipv6-unicast-hops"] = "ttl", ["ipv6-multicast-hops"] = "multicast_ttl",
  ["ipv6-multicast-loop"] = "multicast_loop",
  ["recv-buffer-size"] = "rcvbuf", ["send-buffer-size"] = "sndbuf",
  ["ip-add-membership"] = "join", ["ip-drop-membership"] = "leave",
  ["ipv6-add-membership"] = "join", ["ipv6-drop-membership"] = "leave",
  reuseaddr = false, reuseport = false, dontroute = false,
  ["ipv6-v6only"] = false,
}

function udp:setoption(name, value)
  local native = type(name) == "string" and udpopts[name]
  if native == nil then badoption("setoption", name) end
  self.opts[name] = value
  if not native or not self.u then return 1.0 end
  local ok, err
  if native == "join" or native == "leave" then
    if type(value) ~= "table" then argerror("setoption", 2, "table expected") end
    local iface = value.interface
    if iface == "*" then iface = nil end
    ok, err = self.u[native](self.u, value.multiaddr, iface)
  else
    ok, err = self.u:setoption(native, value)
  end
  if not ok then return nil, lserr(err) end
  return 1.0
end

function udp:getoption(name) return getoption(udpopts, self, name) end

function udp:getsockname()
  local u = sock(self)
  if not u then return nil, "closed" end
  local host, port = u:getsockname()
  if not host then return nil, lserr(port) end
  return host, tostring(port), self.family
end

function udp:getpeername()
  if self.kind ~= "connected" then return nil, messages.ENOTCONN end  -- as LuaSocket
  local host, port = self.u:getpeername()
  if not host then return nil, lserr(port) end
  return host, port, self.family
end

function udp:close()
  if self.u then self.u:close() end
  self.closed = true
  self.kind = "closed"
  return 1.0
end

function udp:getfd()
  return self.u and self.u:fileno() or -1
end

function udp:setfd() end
function udp:dirty() return false end
function udp:getfamily() return self.family end

function M.udp() return newudp(nil) end
function M.udp4() return newudp("inet") end
function M.udp6() return newudp("inet6") end

--[[ select over corun.socket objects ]]

local function readable(s)
  local mt = getmetatable(s)
  if mt == tcp then
    if s.kind == "server" then
      if #s.pending > 0 then return true end
      local c = s.q:get_nowait()
      if c then s.pending[#s.pending + 1] = c; return true end
      return false
    end
    return s.kind == "client" and (#s.buf > 0 or s.eof or s.rshut or
                                   s.stream:_buffered() > 0)
  elseif mt == udp then
    return false   -- waited for below
  end
  error("select: only corun.socket sockets can be selected (got "
        .. tostring(s) .. ")", 4)
end

-- A task that returns once s is readable (data taken into s's buffer, a
-- connection into its pending list, a datagram held back).
local function watcher(s, ready)
  return spawn(function()
    if getmetatable(s) == tcp then
      if s.kind == "server" then
        local c = s.q:get()
        if c then s.pending[#s.pending + 1] = c end
      elseif s.kind == "client" then
        local chunk = fill(s, time(), true)
        if chunk then s.buf = s.buf .. chunk end
      end
    end
    ready:put(s)
  end)
end

local function assoc(list)
  local t = {}
  for i, s in ipairs(list) do t[i] = s; t[s] = i end
  return t
end

local function collect(recvt)
  local r = {}
  for _, s in ipairs(recvt or {}) do
    if readable(s) then r[#r + 1] = s end
  end
  return r
end

-- select(recvt, sendt, [timeout]) -> readable, writable, err. Connected
-- TCP sockets are always writable (writes are queued); UDP sockets in
-- recvt are not supported (use receive with a timeout).
M.select = blocking(function(recvt, sendt, timeout)
  timeout = tonumber(timeout)
  if timeout and timeout < 0 then timeout = nil end
  for _, s in ipairs(recvt or {}) do
    if getmetatable(s) == udp then
      error("select: UDP sockets cannot be selected for reading", 2)
    end
  end
  local w = {}
  for _, s in ipairs(sendt or {}) do
    local mt = getmetatable(s)
    if mt ~= tcp and mt ~= udp then
      error("select: only corun.socket sockets can be selected", 2)
    end
    if (mt == tcp and s.kind == "client") or (mt == udp and not s.closed) then
      w[#w + 1] = s
    end
  end
  local r = collect(recvt)
  if #r > 0 or #w > 0 then return assoc(r), assoc(w), nil end
  if timeout == 0 then return {}, {}, "timeout" end
  local ready, tasks = queue(), {}
  for _, s in ipairs(recvt or {}) do
    if s.kind ~= "closed" then tasks[#tasks + 1] = watcher(s, ready) end
  end
  local ok, got = pcall(function()
    if #tasks == 0 then
      if timeout then corun.sleep(timeout) end
      return nil
    end
    return ready:get(timeout)
  end)
  for _, t in ipairs(tasks) do t:cancel() end
  for _, t in ipairs(tasks) do pcall(t.join, t) end
  if not ok then error(got, 0) end
  r = collect(recvt)
  if #r == 0 then return {}, {}, "timeout" end
  return assoc(r), {}, nil
end, "select")

--[[ dns ]]

M.dns = {}

local function resolveinfo(name, list)
  local r = { name = name, alias = {}, ip = {} }
  for _, a in ipairs(list) do
    if a.family == "inet" then r.ip[#r.ip + 1] = a.addr end
    if a.canonname then r.name = a.canonname end
  end
  return r
end

M.dns.toip = blocking(function(name)
  if type(name) ~= "string" then argerror("toip", 1, "string expected") end
  local list = corun.dns.resolve(name, { family = "inet" })
  if not list or #list == 0 then return nil, "host not found" end
  return list[1].addr, resolveinfo(name, list)
end, "toip")

M.dns.tohostname = blocking(function(addr)
  if type(addr) ~= "string" then argerror("tohostname", 1, "string expected") end
  local ip = addr
  if not numeric(addr) then
    local list = corun.dns.resolve(addr, { family = "inet" })
    if not list or #list == 0 then return nil, "host not found" end
    ip = list[1].addr
  end
  local name = corun.dns.reverse(ip)
  if not name then return nil, "host not found" end
  return name, { name = name, alias = {}, ip = { ip } }
end, "tohostname")

-- getaddrinfo(host) -> {{family =, addr =}, ...} | nil, err
M.dns.getaddrinfo = blocking(function(host)
  if type(host) ~= "string" then argerror("getaddrinfo", 1, "string expected") end
  local list, err = corun.dns.resolve(host)
  if not list then return nil, lserr(err) end
  local r = {}
  for i, a in ipairs(list) do r[i] = { family = a.family, addr = a.addr } end
  return r
end, "getaddrinfo")

-- getnameinfo(host) -> {name, ...} | nil, err
M.dns.getnameinfo = blocking(function(host)
  if type(host) ~= "string" then argerror("getnameinfo", 1, "string expected") end
  local ip = host
  if not numeric(host) then
    local list, err = corun.dns.resolve(host)
    if not list then return nil, lserr(err) end
    ip = list[1].addr
  end
  local name, err = corun.dns.reverse(ip)
  if not name then return nil, lserr(err) end
  return { name }
end, "getnameinfo")

function M.dns.gethostname()
  local name, err = core.gethostname()
  if not name then return nil, lserr(err) end
  return name
end

--[[ what socket.lua adds to socket.core ]]

function M.connect(address, port, laddress, lport, family)
  local s = family == "inet6" and M.tcp6() or M.tcp()
  local ok, err = s:connect(address, port)
  if not ok then
    s:close()
    return nil, err
  end
  return s
end

function M.connect4(address, port) return M.connect(address, port, nil, nil, "inet") end
function M.connect6(address, port) return M.connect(address, port, nil, nil, "inet6") end

function M.bind(host, port, backlog)
  local s = (host and find(host, ":", 1, true)) and M.tcp6() or M.tcp()
  local ok, err = s:bind(host, port)
  if not ok then
    s:close()
    return nil, err
  end
  s:listen(backlog)
  return s
end

local sourcet, sinkt = {}, {}
M.sourcet, M.sinkt = sourcet, sinkt

local function sockfns(s)
  return { getfd = function() return s:getfd() end,
           dirty = function() return s:dirty() end }
end

sinkt["close-when-done"] = function(s)
  return setmetatable(sockfns(s), { __call = function(_, chunk)
    if not chunk then
      s:close()
      return 1
    end
    return s:send(chunk)
  end })
end

sinkt["keep-open"] = function(s)
  return setmetatable(sockfns(s), { __call = function(_, chunk)
    if chunk then return s:send(chunk) end
    return 1
  end })
end

sinkt.default = sinkt["keep-open"]
M.sink = M.choose(sinkt)

sourcet["by-length"] = function(s, length)
  return setmetatable(sockfns(s), { __call = function()
    if length <= 0 then return nil end
    local chunk, err = s:receive(math.min(M.BLOCKSIZE, length))
    if err then return nil, err end
    length = length - #chunk
    return chunk
  end })
end

sourcet["until-closed"] = function(s)
  local done
  return setmetatable(sockfns(s), { __call = function()
    if done then return nil end
    local chunk, err, partial = s:receive(M.BLOCKSIZE)
    if not err then return chunk end
    if err == "closed" then
      s:close()
      done = true
      return partial
    end
    return nil, err
  end })
end

sourcet.default = sourcet["until-closed"]
M.source = M.choose(sourcet)

function M.__unload() end

--[[ install ]]

local saved

-- LuaSocket's Lua modules that keep the socket module they loaded with.
local submodules = { "socket.http", "socket.url", "socket.headers",
                     "socket.ftp", "socket.smtp", "socket.tp", "socket.mbox",
                     "ssl.https" }

-- install(): require "socket" and require "socket.core" give this module
-- from now on, and require "ssl" gives corun.ssl (LuaSec's interface on
-- corun.tls; when corun was built with TLS). LuaSocket's and LuaSec's own
-- Lua modules (socket.http, ssl.https, ...) already loaded with the real
-- ones are dropped from package.loaded, so that the next require loads
-- them again, on these modules.
function M.install()
  local ssl = core.tls_context and require "corun.ssl"
  if package.loaded.socket ~= M then
    saved = saved or { socket = package.loaded.socket,
                       core = package.loaded["socket.core"],
                       ssl = package.loaded.ssl }
    for _, name in ipairs(submodules) do package.loaded[name] = nil end
  end
  package.loaded.socket = M
  package.loaded["socket.core"] = M
  if ssl then package.loaded.ssl = ssl end
  return M
end

-- uninstall(): what require "socket" (and "ssl") gave before install().
function M.uninstall()
  if saved then
    package.loaded.socket = saved.socket
    package.loaded["socket.core"] = saved.core
    package.loaded.ssl = saved.ssl
    saved = nil
  end
end

return M
