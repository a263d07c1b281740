--[[
** corun.tls: TLS streams (the C core's OpenSSL memory BIOs, moved over a
** corun stream).
**
**   local s = assert(corun.tls.connect("example.org", 443))
**   s:write("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
**   print(s:read("l"))
**   local srv = corun.tcp.listen(host, 0, function(raw)
**     local s = assert(corun.tls.wrap(raw, {server = true, cert =, key =}))
**     ...
**   end)
**
** A TLS stream has the stream API: read(n | "l" | "L" | "a", [timeout]),
** write(...), close(). Reads pull one TLS record at a time from the
** underlying stream (its 5-byte header, then exactly its length), so the
** underlying stream's parking, timeouts and cancellation apply as they
** are; writes encrypt and write through, so its back-pressure applies too.
** Failures: nil, "ETLS: <OpenSSL's reason>", "ETLS".
--]]

local core = require "corun.core"
if not core.tls_context then
  error("corun was built without TLS (OpenSSL not found at build time, "
        .. "or -DCORUN_TLS=OFF): corun.tls is not available", 2)
end

local M = {}

-- Handshake timeout when opts.timeout is not given: a peer that stops
-- mid-handshake never hangs a task for ever.
M.handshake_timeout = 30

local MAX_RECORD = 16384 + 2048   -- the largest TLS ciphertext record

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- Contexts are cached by their options (loading the system CAs is costly).
local contexts = setmetatable({}, { __mode = "v" })

local function context(opts, server)
  local alpn = opts.alpn
  if type(alpn) == "table" then alpn = table.concat(alpn, ",") end
  local verify = opts.verify
  if verify == nil then verify = not server end
  local key = table.concat({ server and "s" or "c", tostring(opts.cafile),
    tostring(opts.cert), tostring(opts.key), tostring(alpn),
    tostring(verify) }, "\0")
  local ctx = contexts[key]
  if ctx then return ctx end
  local err, code
  ctx, err, code = core.tls_context {
    server = server, cafile = opts.cafile, cert = opts.cert, key = opts.key,
    alpn = opts.alpn, verify = opts.verify,
  }
  if not ctx then return nil, err, code end
  contexts[key] = ctx
  return ctx
end

local Stream = {}
Stream.__index = Stream
Stream.__name = "corun.tls_stream"

local function remaining(deadline)
  if not deadline then return nil end
  local t = deadline - core.time()
  return t > 0 and t or 0
end

-- Send what OpenSSL has queued for the peer.
local function flush(self)
  local out = self.conn:take()
  if out then
    local ok, err, code = self.raw:write(out)
    if not ok then return nil, err, code end
  end
  return true
end

-- Feed the next TLS record from the underlying stream. Returns true, or
-- nil, why ("timeout", an I/O error) or nil, nil at end of stream.
local function fill(self, deadline)
  local raw = self.raw
  local hdr, err, code = raw:read(5, remaining(deadline))
  if not hdr then return nil, err, code end
  self.conn:feed(hdr)
  if #hdr < 5 then return true end  -- OpenSSL reports the truncation
  local t, len = hdr:byte(1), hdr:byte(4) * 256 + hdr:byte(5)
  if t < 20 or t > 24 or len > MAX_RECORD then
    return true  -- not TLS: OpenSSL names the error from the header
  end
  if len > 0 then
    local body
    body, err, code = raw:read(len, remaining(deadline))
    if not body then return nil, err, code end
    self.conn:feed(body)
  end
  return true
end

local function eof_error(what)
  return nil, "ETLS: connection closed " .. what, "ETLS"
end

local function handshake(self, timeout)
  local deadline = core.time() + (timeout or M.handshake_timeout)
  while true do
    local r, err, code = self.conn:handshake()
    local ok, ferr, fcode = flush(self)
    if r == true then
      if not ok then return nil, ferr, fcode end
      return true
    end
    if r == nil then return nil, err, code end
    if not ok then return nil, ferr, fcode end
    ok, err, code = fill(self, deadline)
    if not ok then
      if err == "timeout" then return nil, "ETLS: handshake timed out", "ETLS" end
      if err == nil then return eof_error("during handshake") end
      return nil, err, code
    end
  end
end

-- Decrypt more into the buffer: true, or nil, why (nil why: end of stream).
local function pull(self, deadline)
  while true do
    local data, err, code = self.conn:read()
    if data ~= "" and type(data) == "string" then
      self.buf = self.buf .. data
      return true
    end
    if data == false then
      self.eof = true
      return nil
    end
    if data == nil then
      self.err, self.code = err, code
      return nil, err, code
    end
    local ok
    ok, err, code = flush(self)  -- a key update, a renegotiation
    if not ok then return nil, err, code end
    ok, err, code = fill(self, deadline)
    if not ok then
      if err == nil then self.eof = true  -- no close_notify: still the end
      elseif err ~= "timeout" then self.err, self.code = err, code end
      return nil, err, code
    end
  end
end

local function take(self, n, skip)
  local s = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1 + (skip or 0))
  return s
end

local function parsefmt(fmt)
  if fmt == nil then return "l" end
  if math.type(fmt) == "integer" then
    if fmt < 0 then argerror("read", 1, "size must be >= 0") end
    return "n"
  end
  if type(fmt) == "string" then
    local f = fmt:gsub("^%*", ""):sub(1, 1)
    if f == "l" or f == "L" or f == "a" then return f end
  end
  argerror("read", 1, 'invalid format (use a size, "l", "L" or "a")')
end

-- Try to answer from the buffer: the value, or nil when more is needed.
local function answer(self, f, n, done)
  local buf = self.buf
  if f == "n" then
    if #buf >= n or (done and #buf > 0) then return take(self, n) end
  elseif f == "l" or f == "L" then
    local nl = buf:find("\n", 1, true)
    if nl then
      if f == "L" then return take(self, nl) end
      return take(self, nl - 1, 1)
    end
    if done and #buf > 0 then return take(self, #buf) end
  elseif done then
    return take(self, #buf)
  end
end

-- s:read([fmt], [timeout]) as for corun streams.
function Stream:read(fmt, timeout)
  local f = parsefmt(fmt)
  if f == "n" and fmt == 0 then return "" end
  if self.closed and #self.buf == 0 then return nil, "closed" end
  local deadline = timeout and core.time() + timeout
  while true do
    local done = self.eof or self.err ~= nil or self.closed
    local v = answer(self, f, fmt, done)
    if v then
      if f == "a" and self.err then return nil, self.err, self.code end
      return v
    end
    if done then
      if self.err then return nil, self.err, self.code end
      return nil
    end
    local ok, err, code = pull(self, deadline)
    if not ok and err == "timeout" then return nil, "timeout" end
    if not ok and err and not self.err then return nil, err, code end
  end
end

-- s:_take([max]) -> up to max (default all) bytes of the plaintext
-- received and not yet read, at once (as a corun stream's _take).
function Stream:_take(max)
  local buf = self.buf
  if max == nil or max >= #buf then
    self.buf = ""
    return buf
  end
  return take(self, max)
end

-- s:write(...): strings or numbers, encrypted and written in order.
function Stream:write(...)
  if self.closed then return nil, "closed" end
  local n = select("#", ...)
  local data = n == 1 and (...) or table.concat({ ... })
  if type(data) == "number" then data = tostring(data) end
  if type(data) ~= "string" then argerror("write", 1, "string expected") end
  if #data == 0 then return true end
  local ok, err, code = self.conn:write(data)
  if not ok then return nil, err, code end
  return flush(self)
end

-- s:close(): send close_notify and close the underlying stream.
function Stream:close()
  if self.closed then return true end
  self.closed = true
  pcall(function()
    self.conn:shutdown()
    flush(self)
  end)
  self.raw:close()
  return true
end
Stream.__close = Stream.close
Stream.__gc = function(self) if not self.closed then self.raw:close() end end

-- s:info() -> {protocol =, cipher =, alpn =}
function Stream:info()
  return self.conn:info()
end

function Stream:__tostring()
  return ("corun.tls_stream (%s): %s"):format(self.closed and "closed" or "open",
                                              tostring(self.raw))
end

local function check_opts(fname, n, opts)
  if opts ~= nil and type(opts) ~= "table" then argerror(fname, n, "table expected") end
  opts = opts or {}
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    argerror(fname, n, "timeout must be a number >= 0")
  end
  return opts
end

local function new(raw, opts, host)
  local ctx, err, code = context(opts, opts.server)
  if not ctx then return nil, err, code end
  local conn
  conn, err, code = ctx:new(opts.servername or host)
  if not conn then return nil, err, code end
  local self = setmetatable({ raw = raw, conn = conn, buf = "" }, Stream)
  local ok
  ok, err, code = handshake(self, opts.timeout)
  if not ok then return nil, err, code end
  return self
end

-- tls.wrap(stream, opts) -> TLS stream | nil, err, "ETLS". opts: server,
-- cert, key, cafile, alpn, verify, servername (a client's SNI and the
-- name checked), timeout (of the handshake). On failure the stream is
-- left open (the caller's); on success the TLS stream owns it.
function M.wrap(stream, opts)
  if stream == nil or type(stream) == "string" or type(stream) == "number" then
    argerror("wrap", 1, "stream expected")
  end
  opts = check_opts("wrap", 2, opts)
  return new(stream, opts, opts.servername)
end

-- tls.connect(host, port, [opts]) -> TLS stream | nil, err
function M.connect(host, port, opts)
  if type(host) ~= "string" then argerror("connect", 1, "string expected") end
  opts = check_opts("connect", 3, opts)
  local deadline = opts.timeout and core.time() + opts.timeout
  local raw, err, code = core.tcp.connect(host, port, opts.timeout)
  if not raw then return nil, err, code end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.server = false
  o.timeout = deadline and remaining(deadline)
  local s
  s, err, code = new(raw, o, opts.servername or host)
  if not s then
    raw:close()
    return nil, err, code
  end
  return s
end

M.Stream = Stream
return M
