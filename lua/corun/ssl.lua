--[[
** corun.ssl: LuaSec's interface (ssl.wrap, ssl.newcontext, the
** connection's dohandshake/send/receive/...) over corun.tls's OpenSSL
** connections, for corun.socket's TCP objects. With corun.socket.install()
** require "ssl" gives this module, so LuaSec's own ssl.https (pure Lua)
** runs unmodified inside corun tasks.
**
**   local sock = socket.tcp()
**   assert(sock:connect("example.org", 443))
**   local conn = assert(ssl.wrap(sock, {mode = "client", protocol = "any",
**                                        verify = "peer", cafile = ca}))
**   conn:sni("example.org")
**   assert(conn:dohandshake())
**   conn:send("GET / HTTP/1.0\r\nHost: example.org\r\n\r\n")
**   print(conn:receive("*l"))
**
** Every wait is a suspension point of the calling task (cancellable).
** Returns are LuaSec's: dohandshake gives true or false, why ("wantread"
** when the socket's timeout ran out, "closed", "certificate verify
** failed", OpenSSL's reason); receive and send give LuaSocket's values,
** with "wantread" for a receive that timed out, as LuaSec.
** Unlike LuaSec, a client that verifies (verify = "peer") also checks the
** certificate against the name given to conn:sni() (ssl.https gives the
** URL's host).
--]]

local corun = require "corun"
local core = require "corun.core"
local socket = require "corun.socket"

if not core.tls_context then
  error("corun was built without TLS (OpenSSL not found at build time, "
        .. "or -DCORUN_TLS=OFF): corun.ssl is not available", 2)
end

local tcp, newtcp, retry, lserr = socket._tcp, socket._newtcp, socket._retry,
                                  socket._error
local time, current = corun.time, corun.current

local M = {
  _VERSION = "1.2.0",
  _COPYRIGHT = "corun.ssl: LuaSec's interface on corun.tls (OpenSSL)",
}

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function needtask(fname)
  if not current() then
    error(("corun.ssl: '%s' must be called from inside a task (start one "
           .. "with corun.run or corun.spawn, or run the script with the "
           .. "corun runner)"):format(fname), 3)
  end
end

--[[ configuration: what LuaSec's params may say ]]

-- protocol -> {min, max} TLS versions (corun speaks TLS 1.2 and 1.3).
local protocols = {
  any = {}, sslv23 = {},
  tlsv1_2 = { "tlsv1_2", "tlsv1_2" }, tlsv1_3 = { "tlsv1_3", "tlsv1_3" },
}
local oldprotocols = { sslv3 = true, tlsv1 = true, tlsv1_1 = true }

local verifies = { none = true, peer = true, client_once = true,
                   fail_if_no_peer_cert = true }

-- LuaSec's option names (OpenSSL's SSL_OP_*); OpenSSL's defaults already
-- do what most of them ask. no_tlsv1_2 and no_tlsv1_3 narrow the versions.
local options = {}
for name in ([[all allow_client_renegotiation allow_no_dhe_kex
  allow_unsafe_legacy_renegotiation cipher_server_preference
  cisco_anyconnect cleanse_plaintext cookie_exchange cryptopro_tlsext_bug
  dont_insert_empty_fragments enable_ktls enable_middlebox_compat
  ignore_unexpected_eof legacy_server_connect microsoft_big_sslv3_buffer
  microsoft_sess_id_bug msie_sslv2_rsa_padding netscape_ca_dn_bug
  netscape_challenge_bug netscape_demo_cipher_change_bug
  netscape_reuse_cipher_change_bug no_anti_replay no_compression
  no_dtlsv1 no_dtlsv1_2 no_encrypt_then_mac no_extended_master_secret
  no_query_mtu no_renegotiation no_session_resumption_on_renegotiation
  no_sslv2 no_sslv3 no_ticket no_tlsv1 no_tlsv1_1 no_tlsv1_2 no_tlsv1_3
  pkcs1_check_1 pkcs1_check_2 prioritize_chacha safari_ecdhe_ecdsa_bug
  single_dh_use single_ecdh_use ssleay_080_client_dh_bug
  sslref2_reuse_cert_type_bug tls_block_padding_bug tls_d5_bug
  tls_rollback_bug tlsext_padding]]):gmatch("%S+") do
  options[name] = true
end

M.config = {
  protocols = { tlsv1_2 = true, tlsv1_3 = true },
  options = options,
  capabilities = { alpn = true, curves_list = false, dane = false },
  algorithms = { ec = true },
}

-- A string or a list of strings, as a list.
local function list(v)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then return nil end
  return v
end

-- The reason in a corun.tls failure, as LuaSec words it.
local function tlsreason(err)
  local r = tostring(err):gsub("^ETLS: ", "")
  if r:find("^certificate verify failed") then return "certificate verify failed" end
  if r == "connection closed during handshake" then return "closed" end
  return r
end

local function readable(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, (tostring(err):gsub("^.-: ", "")) end
  f:close()
  return true
end

local Context = { __name = "SSL:Context" }
Context.__index = Context

function Context.__tostring(self)
  return ("SSL context: %p"):format(self)
end

-- Contexts made for the same params are shared (loading CAs is costly).
local contexts = setmetatable({}, { __mode = "v" })

local function ctxkey(cfg, verify, opts, alpn)
  local parts = { cfg.mode, tostring(cfg.protocol), tostring(cfg.key),
                  tostring(cfg.certificate), tostring(cfg.cafile),
                  tostring(cfg.capath), tostring(cfg.ciphers),
                  tostring(cfg.ciphersuites), tostring(cfg.depth),
                  table.concat(verify, ","), table.concat(opts, ","),
                  table.concat(alpn, ",") }
  return table.concat(parts, "\0")
end

-- newcontext(params) -> context | nil, err (LuaSec's params: mode,
-- protocol, key, certificate, cafile, capath, verify, options, ciphers,
-- ciphersuites, depth, alpn).
function M.newcontext(cfg)
  if type(cfg) ~= "table" then argerror("newcontext", 1, "table expected") end
  local mode = cfg.mode
  if type(mode) ~= "string" then
    argerror("newcontext", 1, 'params.mode must be "client" or "server"')
  end
  if mode ~= "client" and mode ~= "server" then return nil, "invalid mode" end
  local proto = cfg.protocol or "any"
  local range = protocols[proto]
  if not range then
    if oldprotocols[proto] then
      return nil, ("protocol not supported (%s): corun speaks TLS 1.2 and 1.3")
                  :format(tostring(proto))
    end
    return nil, ("invalid protocol (%s)"):format(tostring(proto))
  end
  local verify = list(cfg.verify)
  if not verify then return nil, "invalid verify option (" .. tostring(cfg.verify) .. ")" end
  local peer = false
  for _, v in ipairs(verify) do
    if not verifies[v] then return nil, ("invalid verify option (%s)"):format(tostring(v)) end
    if v == "peer" or v == "fail_if_no_peer_cert" then peer = true end
  end
  local opts = list(cfg.options)
  if not opts then return nil, "invalid option (" .. tostring(cfg.options) .. ")" end
  local minv, maxv = range[1], range[2]
  for _, o in ipairs(opts) do
    if not options[o] then return nil, ("invalid option (%s)"):format(tostring(o)) end
    if o == "no_tlsv1_2" then minv = "tlsv1_3" end
    if o == "no_tlsv1_3" then maxv = "tlsv1_2" end
  end
  if maxv == "tlsv1_2" and minv == "tlsv1_3" then
    return nil, "no protocol left: options exclude both TLS 1.2 and TLS 1.3"
  end
  local alpn = cfg.alpn
  if type(alpn) == "function" then
    return nil, "invalid ALPN parameter (ALPN callbacks are not supported)"
  end
  alpn = list(alpn)
  if not alpn then return nil, "invalid ALPN parameter" end
  for _, a in ipairs(alpn) do
    if type(a) ~= "string" then return nil, "invalid ALPN parameter" end
    if #a == 0 then return nil, "invalid ALPN name (empty string)" end
    if #a > 255 then return nil, "invalid ALPN name (length > 255)" end
  end
  local cert, key = cfg.certificate or nil, cfg.key or nil
  local cafile, capath = cfg.cafile or nil, cfg.capath or nil
  if cfg.certificates and cert == nil and key == nil then
    local first = cfg.certificates[1] or {}
    cert, key = first.certificate, first.key
    if first.password then return nil, "keys with a password are not supported" end
  end
  if cfg.password ~= nil then return nil, "keys with a password are not supported" end
  local ok, why
  if key then
    ok, why = readable(key)
    if not ok then return nil, ("error loading private key (%s)"):format(why) end
  end
  if cert then
    ok, why = readable(cert)
    if not ok then return nil, ("error loading certificate (%s)"):format(why) end
  end
  if cafile then
    ok, why = readable(cafile)
    if not ok then return nil, ("error loading CA locations (%s)"):format(why) end
  end
  if mode == "server" and not (cert and key) then
    return nil, "a server needs a certificate and a key"
  end
  local k = ctxkey({ mode = mode, protocol = proto, key = key,
                     certificate = cert, cafile = cafile,
                     capath = capath, ciphers = cfg.ciphers,
                     ciphersuites = cfg.ciphersuites, depth = cfg.depth },
                   verify, opts, alpn)
  local c = contexts[k]
  if c then return c end
  local ctx, err = core.tls_context {
    server = mode == "server", cafile = cafile, capath = capath,
    cert = cert, key = key, verify = peer,
    alpn = #alpn > 0 and alpn or nil,
    ciphers = cfg.ciphers, ciphersuites = cfg.ciphersuites,
    min_protocol = minv, max_protocol = maxv,
    depth = math.tointeger(cfg.depth),
  }
  if not ctx then return nil, tlsreason(err) end
  c = setmetatable({ mode = mode, core = ctx }, Context)
  contexts[k] = c
  return c
end

--[[ the TLS transport under a connection ]]

-- The stream a connection's TCP methods (corun.socket's) read and write:
-- plaintext in and out, ciphertext moved over the raw corun stream.
local Io = {}
Io.__index = Io

local function rawread(io, timeout)
  local raw = io.raw
  local d, err = raw:read(1, timeout)
  if d == nil then
    if err == "timeout" then return nil, "timeout" end
    if err == nil then return nil, "closed" end
    return nil, lserr(err)
  end
  return d .. raw:_take()
end

-- Send what OpenSSL has queued for the peer.
local function flush(io)
  local out = io.tls:take()
  if out then
    local ok, err = io.raw:write(out)
    if not ok then return nil, lserr(err) end
  end
  return true
end

-- read(_, [timeout]) -> plaintext | nil (the peer closed) | nil, why
function Io:read(_, timeout)
  local deadline = timeout and time() + timeout
  local t = self.tls
  while true do
    local data, err = t:read()
    if data == false then return nil end
    if data == nil then return nil, tlsreason(err) end
    if data ~= "" then return data end
    local ok, werr = flush(self)
    if not ok then return nil, werr end
    local chunk, rerr = rawread(self, deadline and math.max(0, deadline - time()))
    if not chunk then
      if rerr == "closed" then return nil end
      return nil, rerr
    end
    t:feed(chunk)
  end
end

function Io:_take() return "" end
function Io:_buffered() return 0 end

function Io:write(data)
  local ok = self.tls:write(data)
  if not ok then return nil, "closed" end
  return flush(self)
end

function Io:close()
  if self.closed then return end
  self.closed = true
  if self.tls then
    pcall(function()
      self.tls:shutdown()
      flush(self)
    end)
  end
  self.raw:close()
end

function Io:fileno() return self.raw:fileno() end

--[[ connections ]]

local Conn = { __name = "SSL:Connection" }
local methods = {}
Conn.__index = methods

function Conn.__tostring(self)
  return "SSL connection: " .. self.id
end

-- LuaSocket's methods, the TCP client's own (over the TLS transport).
-- Each is an own field: ssl.https forwards the methods it finds in the
-- connection's __index table.
for _, name in ipairs { "settimeout", "dirty", "getfd", "getstats",
                        "setstats", "getfamily" } do
  methods[name] = tcp[name]
end

function methods:receive(pattern, prefix)
  if not self.ready then return nil, "closed", prefix or "" end
  local data, err, partial = tcp.receive(self, pattern, prefix)
  if err == "timeout" then err = "wantread" end
  return data, err, partial
end

function methods:send(data, i, j)
  if not self.ready then
    if type(data) ~= "string" and type(data) ~= "number" then
      argerror("send", 2, "string expected, got " .. type(data))
    end
    return nil, "closed", (math.tointeger(tonumber(i) or 1) or 1) - 1.0
  end
  return tcp.send(self, data, i, j)
end

-- close(): sends the close_notify and closes the socket (returns nothing,
-- as LuaSec).
function methods:close()
  if self.stream then self.stream:close() end
  self.stream = nil
  self.kind = "closed"
  self.ready = false
end
Conn.__close = methods.close

-- sni(name): the server name a client sends (before dohandshake); with
-- verify = "peer" the certificate must be for that name.
function methods:sni(name)
  if self.mode == "server" then
    error("corun.ssl: server-side SNI (a table of contexts) is not supported", 2)
  end
  if type(name) ~= "string" then argerror("sni", 1, "string expected") end
  self.sniname = name
end

function methods:getsniname()
  return self.sniname
end

local handshake

-- dohandshake() -> true | false, why ("wantread" when the socket's
-- timeout ran out: call again to go on; "closed"; OpenSSL's reason).
-- A task cancelled in the handshake closes the connection.
function methods:dohandshake()
  if self.ready then return true end
  if self.kind ~= "client" or not self.stream then return false, "closed" end
  needtask("dohandshake")
  local r = table.pack(pcall(handshake, self))
  if not r[1] then
    self:close()
    error(r[2], 0)
  end
  if r[2] == false and r[3] ~= "wantread" then
    -- a failed handshake leaves nothing usable: close the socket now
    -- (ssl.https does not close it), keep what getpeerverification reads
    self.stream:close()
    self.kind = "closed"
  end
  return table.unpack(r, 2, r.n)
end

function handshake(self)
  local io = self.stream
  local t = io.tls
  if not t then
    local err
    t, err = self.ctx.core:new(self.mode == "client" and self.sniname or nil)
    if not t then return false, tlsreason(err) end
    io.tls = t
    if io.pending ~= "" then
      t:feed(io.pending)
      io.pending = ""
    end
  end
  local start = time()
  while true do
    local r, err = t:handshake()
    local ok, werr = flush(io)
    if r == true then
      if not ok then return false, werr end
      self.ready = true
      return true
    end
    if r == nil then
      self.failed = tlsreason(err)
      return false, self.failed
    end
    if not ok then return false, werr end
    local chunk, rerr = rawread(io, retry(self, start))
    if not chunk then
      if rerr == "timeout" then return false, "wantread" end
      return false, rerr
    end
    t:feed(chunk)
  end
end

-- want() -> "nothing" | "read": what the connection waits for.
function methods:want()
  if self.ready or not self.stream then return "nothing" end
  return "read"
end

-- info([field]) -> {protocol =, cipher =, bits =, algbits =} or a field
function methods:info(field)
  local io = self.stream
  if not (self.ready and io) then return nil end
  local i = io.tls:info()
  local r = { protocol = i.protocol, cipher = i.cipher,
              bits = i.bits + 0.0, algbits = i.bits + 0.0 }
  if field then return r[field] end
  return r
end

function methods:getalpn()
  local io = self.stream
  if not (self.ready and io) then return nil end
  return io.tls:info().alpn
end

-- Certificates: a minimal X509 object (pem, subject, issuer, serial,
-- notbefore, notafter, digest).
local Cert = { __name = "X509:Certificate" }
local certmethods = {}
Cert.__index = certmethods

function Cert.__tostring(self)
  return "X509 certificate: " .. self.id
end

function certmethods:pem() return self.t.pem end
function certmethods:subject() return self.t.subject end
function certmethods:issuer() return self.t.issuer end
function certmethods:serial() return self.t.serial end
function certmethods:notbefore() return self.t.notbefore end
function certmethods:notafter() return self.t.notafter end

function certmethods:digest(alg)
  alg = alg or "sha1"
  local d = self.t[alg]
  if not d then error(("digest: algorithm '%s' not supported (sha1, sha256)")
                      :format(tostring(alg)), 2) end
  return d
end

-- getpeercertificate([n]) -> the peer's certificate (n = 0 or nil) | nil
function methods:getpeercertificate(n)
  local io = self.stream
  if (n ~= nil and n ~= 0) or not (io and io.tls) then return nil end
  local t = io.tls:peercert()
  if not t then return nil end
  local c = setmetatable({ t = t }, Cert)
  c.id = ("%p"):format(c)
  return c
end

function methods:getpeerchain()
  local c = self:getpeercertificate()
  if not c then return nil end
  return { c }
end

-- getpeerverification() -> true | false, why
function methods:getpeerverification()
  local io = self.stream
  if not (io and io.tls) then return false, "closed" end
  local why = io.tls:verify_result()
  if why then return false, why end
  if not self.ready then return false, self.failed or "closed" end
  return true
end

-- setfd is a no-op (corun keeps the descriptor behind the stream).
function methods:setfd() end

-- wrap(sock, params | context) -> connection | nil, err. The socket's
-- stream (and anything it had received) moves to the connection; the
-- socket itself is closed, as with LuaSec.
function M.wrap(sock, cfg)
  if getmetatable(sock) ~= tcp then
    argerror("wrap", 1, "a corun.socket TCP object expected, got " .. tostring(sock))
  end
  local ctx, err
  if getmetatable(cfg) == Context then ctx = cfg
  elseif type(cfg) == "table" then
    ctx, err = M.newcontext(cfg)
    if not ctx then return nil, err end
  else
    argerror("wrap", 2, "table or context expected")
  end
  local conn = newtcp("client", sock.family)
  setmetatable(conn, Conn)
  conn.ctx, conn.mode = ctx, ctx.mode
  if sock.kind == "client" and sock.stream then
    conn.stream = setmetatable({ raw = sock.stream, pending = sock.buf }, Io)
    sock.stream, sock.buf, sock.kind = nil, "", "closed"
  else
    conn.kind = "closed"
  end
  return conn
end

return M
