--[[
** corun.http: an HTTP client (the C core on libcurl's multi-socket
** interface) and an HTTP/1.1 server (corun.tcp.listen plus the C core's
** binding of http-parser).
**
**   local resp = assert(corun.http.get("https://example.org/"))
**   print(resp.status, resp.headers["Content-Type"], #resp.body)
**   local srv = corun.http.serve("127.0.0.1", 0, function(req, res)
**     return 200, "hello " .. req.path, {["content-type"] = "text/plain"}
**   end)
**
** Every request is a suspension point of the calling task: other tasks
** run meanwhile, and a timeout or a cancel aborts the transfer at once.
** Failures: nil, "ECURL_<NAME>: message", "ECURL_<NAME>".
--]]

local core = require "corun.core"
if not core.http_request then
  error("corun was built without HTTP (libcurl or http-parser not found at "
        .. "build time, or -DCORUN_HTTP=OFF): corun.http is not available", 2)
end

local M = {}
local is_cancelled = core.is_cancelled

local function argerror(fname, n, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

--[[ headers: case-insensitive lookup, repeated headers kept ]]

local Headers = {}
Headers.__index = function(t, k)
  if type(k) == "string" then return rawget(t, k:lower()) end
end
Headers.__name = "corun.http_headers"

-- A headers table from a list of {name, value} pairs: h[name] (any case)
-- is the value, repeated headers joined with ", " (as HTTP allows);
-- the pairs themselves stay in the list given.
local function headers_of(list)
  local h = setmetatable({}, Headers)
  for i = 1, #list do
    local k, v = list[i][1]:lower(), list[i][2]
    local old = rawget(h, k)
    rawset(h, k, old and old .. ", " .. v or v)
  end
  return h
end
M.headers_of = headers_of

--[[ the client ]]

local Response = {}
Response.__index = Response
Response.__name = "corun.http_response"

-- for chunk in resp:iter() do ... end: the body in chunks. A streamed
-- response ({stream = true}) gets them as they arrive, the transfer
-- pausing while more than 64 KB wait unread; an error in mid-body is
-- raised from the loop.
function Response:iter()
  local xfer = rawget(self, "_xfer")
  if xfer then
    return function()
      local chunk, err = xfer:read()
      if chunk == nil and err then error(err, 2) end
      if chunk == nil then xfer:close() end
      return chunk
    end
  end
  local body = self.body
  return function()
    local b = body
    body = nil
    if b ~= nil and b ~= "" then return b end
  end
end

-- resp:read([timeout]) -> the next chunk of a streamed body | nil at its
-- end | nil, err, code | nil, "timeout"
function Response:read(timeout)
  local xfer = rawget(self, "_xfer")
  if not xfer then
    local b = self.body
    self.body = nil
    if b ~= nil and b ~= "" then return b end
    return nil
  end
  return xfer:read(timeout)
end

-- resp:close(): abort a streamed transfer not read to its end.
function Response:close()
  local xfer = rawget(self, "_xfer")
  if xfer then xfer:close() end
end
Response.__close = Response.close

-- resp.headers:values(name) is not offered (a header could be named so):
-- use resp.header_list, the {name, value} pairs in order.
local function parse_head(raw)
  local list, version, reason = {}, nil, nil
  for line in raw:gmatch("([^\r\n]*)\r?\n") do
    if version == nil then
      version, reason = line:match("^HTTP/(%S+)%s+%d+%s*(.*)$")
    else
      local k, v = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
      if k then list[#list + 1] = { k, v } end
    end
  end
  return list, version, reason
end

local function header_lines(fname, h)
  local out = {}
  if h == nil then return out end
  if type(h) ~= "table" then argerror(fname, 1, "headers must be a table", 5) end
  if #h > 0 then  -- a list of {name, value}
    for i = 1, #h do
      local p = h[i]
      out[#out + 1] = tostring(p[1]) .. ": " .. tostring(p[2])
    end
  else
    for k, v in pairs(h) do
      if type(k) ~= "string" then argerror(fname, 1, "header names must be strings", 5) end
      if type(v) == "table" then   -- repeated: {k = {v1, v2}}
        for _, x in ipairs(v) do out[#out + 1] = k .. ": " .. tostring(x) end
      else
        out[#out + 1] = k .. ": " .. tostring(v)
      end
    end
  end
  for i = 1, #out do
    if out[i]:find("[\r\n]") then argerror(fname, 1, "header with a line break", 5) end
  end
  return out
end

-- A request body: a string (sent with its length), or a function
-- returning chunks (then nil) or a stream (read to its end), streamed
-- (chunked) by a feeder task while the request runs: the transfer waits
-- for the feeder, and the feeder waits while 64 KB are still unsent.
local function source_of(fname, b)
  if type(b) == "function" then return b end
  if (type(b) == "table" or type(b) == "userdata") and b.read then
    return function()
      local chunk, err = b:read(65536)
      if chunk == nil and err then error(err, 0) end
      return chunk
    end
  end
  argerror(fname, 1, "body must be a string, a function or a stream", 5)
end

local function feed(src, xfer, failed)
  local ok, err = pcall(function()
    for chunk in src do
      if type(chunk) ~= "string" then chunk = tostring(chunk) end
      if #chunk > 0 and not xfer:send(chunk) then return end
    end
    xfer:send(nil)
  end)
  if not ok then
    if is_cancelled(err) then error(err, 0) end
    failed[1] = tostring(err)
    xfer:close()  -- the request fails: the body could not be read
  end
end

local function check_number(fname, opts, k)
  local v = opts[k]
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    argerror(fname, 1, k .. " must be a number >= 0", 5)
  end
end

local function request(fname, opts)
  if type(opts) ~= "table" then argerror(fname, 1, "table expected", 4) end
  local url = opts.url
  if type(url) ~= "string" then argerror(fname, 1, "url must be a string", 4) end
  check_number(fname, opts, "timeout")
  check_number(fname, opts, "connect_timeout")
  local body, src = opts.body, nil
  if type(body) == "number" then body = tostring(body) end
  if body ~= nil and type(body) ~= "string" then
    src, body = source_of(fname, body), nil
  end
  local method = opts.method and tostring(opts.method):upper()
                 or ((body or src) and "POST" or "GET")
  if not method:match("^[%w_-]+$") then argerror(fname, 1, "bad method", 4) end
  local follow = opts.follow
  if follow == nil then follow = true end
  local feeder, failed = nil, {}
  local on_upload = src and function(x)
    feeder = core.spawn(feed, src, x, failed)
  end
  local ok, status, head, rbody, eurl, xfer = pcall(core.http_request, {
    url = url, method = method, headers = header_lines(fname, opts.headers),
    body = body, timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    follow = follow, max_redirects = opts.max_redirects, verify = opts.verify,
    cafile = opts.cafile, cert = opts.cert, key = opts.key,
    max_body = opts.max_body, resolve = opts.resolve,
    stream = opts.stream and true or nil, on_upload = on_upload,
  })
  if feeder and not feeder:done() and not (ok and status and opts.stream) then
    feeder:cancel()  -- the transfer is over: stop reading the source
  end
  if not ok then error(status, 0) end
  if not status and failed[1] then
    return nil, "ECURL_ABORTED_BY_CALLBACK: request body: " .. failed[1],
           "ECURL_ABORTED_BY_CALLBACK"
  end
  if not status then return nil, head, rbody end
  if opts.stream then  -- no body yet: status, head, url, transfer
    rbody, eurl, xfer = nil, rbody, eurl
  end
  local list, version, reason = parse_head(head)
  return setmetatable({
    status = status, reason = reason, version = version, url = eurl,
    headers = headers_of(list), header_list = list, body = rbody,
    _xfer = xfer,
  }, Response)
end

-- http.request{method =, url =, headers =, body =, timeout =, follow =,
-- max_redirects =, cafile =, verify =, ...} -> response | nil, err, code
function M.request(opts)
  return request("request", opts)
end

local function with(fname, url, opts, method, body)
  if type(url) ~= "string" then argerror(fname, 1, "url must be a string", 4) end
  if opts ~= nil and type(opts) ~= "table" then argerror(fname, 2, "table expected", 4) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.method = url, o.method or method
  if body ~= nil then o.body = body end
  return request(fname, o)
end

-- http.get(url, [opts]) -> response | nil, err, code
function M.get(url, opts)
  return with("get", url, opts, "GET")
end

-- http.post(url, body, [opts]) -> response | nil, err, code
function M.post(url, body, opts)
  return with("post", url, opts, "POST", body or "")
end

M.Response = Response

if core.http_parser then
  require("corun.http_server")(M, core, headers_of)
end

return M
