--[[
** corun.http_server: corun.http.serve, an HTTP/1.1 server on
** corun.tcp.listen (a task per connection) and the C core's binding of
** http-parser. Loaded by corun.http; not meant to be required directly.
**
** A connection reads what the parser asks for (a line in the head and
** between chunks, else exactly the bytes still due), so pipelined requests
** are answered one at a time, in order. Keep-alive as HTTP/1.1 says
** (HTTP/1.0 only with "Connection: keep-alive"). Limits: the head's size
** (431), the body's size (413), a malformed request (400); each answer
** closes the connection. A client that is slow to send its request (from
** its first byte to its body's last) past request_timeout gets 408 and is
** dropped (slowloris); an idle keep-alive connection is closed after
** idle_timeout.
--]]

local corun = require "corun"

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK",
  [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request", [401] = "Unauthorized",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [413] = "Content Too Large",
  [415] = "Unsupported Media Type", [417] = "Expectation Failed",
  [422] = "Unprocessable Content", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local DEFAULTS = {
  max_header_size = 16 * 1024,     -- request line and headers, bytes
  max_body_size = 8 * 1024 * 1024, -- bytes (0: no limit)
  request_timeout = 30,            -- s, first byte to last of a request
  idle_timeout = 60,               -- s, a keep-alive connection between requests
  close_timeout = 10,              -- s, server:close() waits this long
}

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 4)
end

local date_cache, date_sec = nil, nil
local function http_date()
  local now = os.time()
  if now ~= date_sec then
    date_sec, date_cache = now, os.date("!%a, %d %b %Y %H:%M:%S GMT", now)
  end
  return date_cache
end

local function remaining(deadline)
  local t = deadline - corun.time()
  return t > 0 and t or 0
end

return function(M, core, headers_of)

  local function status_line(code)
    return ("HTTP/1.1 %d %s\r\n"):format(code, REASONS[code] or "Unknown")
  end

  -- Append "Name: value\r\n" lines of a headers table (name -> value or a
  -- list of values; or a list of {name, value}) to out; note which were
  -- given (lowercased) in seen.
  local function add_headers(out, h, seen)
    if h == nil then return end
    local function one(k, v)
      k, v = tostring(k), tostring(v)
      if k:find("[\r\n:]") or v:find("[\r\n]") then
        error("http: header with a line break or a bad name: " .. k, 0)
      end
      seen[k:lower()] = v
      out[#out + 1] = k .. ": " .. v .. "\r\n"
    end
    if #h > 0 then
      for _, kv in ipairs(h) do one(kv[1], kv[2]) end
    else
      for k, v in pairs(h) do
        if type(v) == "table" then
          for _, x in ipairs(v) do one(k, x) end
        else
          one(k, v)
        end
      end
    end
  end

  -- A complete response: status line, headers, Content-Length, body.
  local function response(code, body, headers, keep, head_only)
    local out, seen = { status_line(code) }, {}
    add_headers(out, headers, seen)
    if not seen["date"] then out[#out + 1] = "Date: " .. http_date() .. "\r\n" end
    if not keep then out[#out + 1] = "Connection: close\r\n" end
    local nobody = code == 204 or code == 304 or (code >= 100 and code < 200)
    if not nobody and not seen["content-length"] then
      out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
    end
    out[#out + 1] = "\r\n"
    if not head_only and not nobody then out[#out + 1] = body end
    return table.concat(out)
  end

  local function plain(code, msg, keep)
    return response(code, msg .. "\n", { ["Content-Type"] = "text/plain" }, keep)
  end

  --[[ the res object: status, headers, then chunked writes ]]

  local Res = {}
  Res.__index = Res

  function Res:status(code)
    if self.started then error("res:status: the response has started", 2) end
    if math.type(code) ~= "integer" or code < 100 or code > 999 then
      error("bad argument #1 to 'status' (an HTTP status code expected)", 2)
    end
    self.code = code
    return self
  end

  function Res:header(k, v)
    if self.started then error("res:header: the response has started", 2) end
    if type(k) ~= "string" then error("bad argument #1 to 'header' (string expected)", 2) end
    self.hdrs[#self.hdrs + 1] = { k, v }
    return self
  end

  -- res:write(chunk): the first write sends the head (chunked, unless a
  -- Content-Length header was set); true or nil, err.
  function Res:write(chunk)
    chunk = chunk == nil and "" or tostring(chunk)
    local s = self.stream
    if not self.started then
      self.started = true
      local out, seen = { status_line(self.code) }, {}
      add_headers(out, self.hdrs, seen)
      if not seen["date"] then out[#out + 1] = "Date: " .. http_date() .. "\r\n" end
      if self.srv.closing then self.keep = false end
      if not self.keep then out[#out + 1] = "Connection: close\r\n" end
      self.chunked = seen["content-length"] == nil
      if self.chunked then out[#out + 1] = "Transfer-Encoding: chunked\r\n" end
      out[#out + 1] = "\r\n"
      local ok, err = s:write(table.concat(out))
      if not ok then self.failed = true return nil, err end
    end
    if #chunk == 0 or self.head_only then return true end
    local ok, err
    if self.chunked then
      ok, err = s:write(("%x\r\n"):format(#chunk), chunk, "\r\n")
    else
      ok, err = s:write(chunk)
    end
    if not ok then self.failed = true end
    return ok, err
  end

  local function finish_stream(res)
    if not res.started then res:write("") end
    if res.chunked and not res.head_only and not res.failed then
      return res.stream:write("0\r\n\r\n")
    end
    return not res.failed
  end

  --[[ connections ]]

  local function parse_target(target)
    local path, query = target:match("^([^?#]*)%??([^#]*)")
    return path or target, query ~= "" and query or nil
  end

  -- Read and feed units until 'until_done' (the message) or the head is
  -- complete. Returns true, or nil, status, message.
  local function pump(c, p, deadline, want_done)
    local s = c.stream
    while true do
      local n = c.need
      local data, err
      if n > 0 then data, err = s:read(n, remaining(deadline))
      else data, err = s:read("L", remaining(deadline)) end
      if not data then
        if err == "timeout" then return nil, 408, "request timeout" end
        return nil, nil, err or "closed"   -- the client went away
      end
      local need, head, done = p:feed(data)
      if not need then return nil, done, head end  -- nil, message, status
      c.need = need
      if head then c.head_now = true end
      if done then c.done = true end
      if done or (head and not want_done) then return true end
      if n == 0 and data:sub(-1) ~= "\n" then   -- EOF inside a line
        return nil, nil, "closed"
      end
    end
  end

  local function request_of(c, p)
    local method, target, list, keep, version = p:head()
    local path, query = parse_target(target)
    return {
      method = method, target = target, path = path, query = query,
      version = version, headers = headers_of(list), header_list = list,
      keep_alive = keep, peer = c.peer,
    }, keep
  end

  -- A handler's failure: to opts.on_error(err, req) when given, else a
  -- line on stderr (also when on_error itself raises).
  local function log_error(srv, err, req)
    local on_error = srv.opts.on_error
    if on_error ~= nil then
      local ok, e2 = pcall(on_error, err, req)
      if ok then return end
      io.stderr:write("corun.http: on_error failed: ", tostring(e2), "\n")
    end
    io.stderr:write("corun.http: handler failed: ", tostring(err), "\n")
  end

  -- One request: read it, run the handler, answer. Returns true to go on
  -- with the next request on this connection.
  local function one_request(srv, c, p, first)
    local s, o = c.stream, srv.opts
    local deadline = corun.time() + o.request_timeout
    c.need, c.done = 0, false
    local need, head, done = p:feed(first)
    if not need then
      s:write(plain(done, head, false))
      return false
    end
    c.need, c.done = need, done
    if not head then
      local ok, status, msg = pump(c, p, deadline, false)
      if not ok then
        if status then s:write(plain(status, msg, false)) end
        return false
      end
    end
    local req, keep = request_of(c, p)
    keep = keep and not srv.closing
    local expect = req.headers["expect"]
    if expect and not c.done then
      if expect:lower() ~= "100-continue" then
        s:write(plain(417, "unsupported Expect", false))
        return false
      end
      s:write("HTTP/1.1 100 Continue\r\n\r\n")
    end
    if o.stream then
      local drained = c.done
      function req.iter()
        return function()
          if c.done then
            local rest = p:body()
            if rest ~= "" then return rest end
            return nil
          end
          local ok, status, msg = pump(c, p, deadline, true)
          local chunk = p:body()
          if not ok then
            c.broken = status or true
            if status then error(("http: request body: %s"):format(msg), 0) end
            return nil
          end
          drained = c.done
          if chunk ~= "" then return chunk end
          return nil
        end
      end
      req.drained = function() return drained end
    elseif not c.done then
      local ok, status, msg = pump(c, p, deadline, true)
      if not ok then
        if status then s:write(plain(status, msg, false)) end
        return false
      end
      req.body = p:body()
    else
      req.body = p:body()
    end
    local res = setmetatable({ stream = s, code = 200, hdrs = {}, keep = keep, srv = srv,
                               head_only = req.method == "HEAD" }, Res)
    c.busy = true
    local r = table.pack(pcall(srv.handler, req, res))
    c.busy = false
    if not r[1] then
      log_error(srv, r[2], req)
      if not res.started then s:write(plain(500, "internal server error", false)) end
      return false
    end
    if o.stream and not c.done then
      -- the handler left some of the body unread: read and drop it
      for _ in req.iter() do end
      if not c.done then return false end
    end
    keep = res.keep and not srv.closing
    if res.started then
      if not finish_stream(res) then return false end
    else
      local code, body, hdrs = r[2], r[3], r[4]
      if code == nil then code = res.code end
      if math.type(code) ~= "integer" then
        log_error(srv, "handler returned a status that is not an integer: "
                  .. tostring(code), req)
        s:write(plain(500, "internal server error", false))
        return false
      end
      body = body == nil and "" or tostring(body)
      if #res.hdrs > 0 then
        local all = {}
        for _, kv in ipairs(res.hdrs) do all[#all + 1] = kv end
        if hdrs then
          if #hdrs > 0 then for _, kv in ipairs(hdrs) do all[#all + 1] = kv end
          else for k, v in pairs(hdrs) do all[#all + 1] = { k, v } end end
        end
        hdrs = all
      end
      local ok, text = pcall(response, code, body, hdrs, keep, res.head_only)
      if not ok then
        log_error(srv, text, req)
        s:write(plain(500, "internal server error", false))
        return false
      end
      if not s:write(text) then return false end
    end
    return keep and not srv.closing
  end

  local function serve_connection(srv, raw)
    local s = raw
    if srv.tls then
      local err
      s, err = corun.tls.wrap(raw, srv.tls)
      if not s then return end
    end
    local c = { stream = s, idle = true, need = 0 }
    srv.conns[c] = true
    local p = core.http_parser(srv.opts.max_header_size, srv.opts.max_body_size)
    local ok, err = pcall(function()
      while not srv.closing do
        c.idle = true
        local first = s:read("L", srv.opts.idle_timeout)
        c.idle = false
        if not first or srv.closing and first == "" then break end
        if not one_request(srv, c, p, first) then break end
      end
    end)
    srv.conns[c] = nil
    if srv.tls then s:close() end
    if srv.closing and next(srv.conns) == nil then srv.drained:set() end
    if not ok then error(err, 0) end
  end

  --[[ the server ]]

  local Server = {}
  Server.__index = Server
  Server.__name = "corun.http_server"

  -- server:close([timeout]): stop accepting, close idle connections, let
  -- requests in flight finish (their connections close after them), and
  -- wait up to timeout (default opts.close_timeout) s for them; then
  -- close what is left. Returns true, or false when it had to cut some.
  function Server:close(timeout)
    if self.closed then return true end
    self.closed, self.closing = true, true
    self.listener:close()
    for c in pairs(self.conns) do
      if c.idle then c.stream:close() end
    end
    if next(self.conns) == nil then return true end
    if corun.current() == nil then return false end
    local ok = self.drained:wait(timeout or self.opts.close_timeout)
    if ok then return true end
    for c in pairs(self.conns) do c.stream:close() end
    return false
  end
  Server.__close = Server.close

  function Server:__tostring()
    return ("corun.http server (%s, port %d)"):format(
      self.closed and "closed" or "open", self.port)
  end

  -- http.serve(host, port, handler, [opts]) -> server | nil, err
  function M.serve(host, port, handler, opts)
    if type(host) ~= "string" then argerror("serve", 1, "string expected") end
    if math.type(port) ~= "integer" then argerror("serve", 2, "integer expected") end
    if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
      argerror("serve", 3, "function expected")
    end
    if opts ~= nil and type(opts) ~= "table" then argerror("serve", 4, "table expected") end
    local on_error = opts and opts.on_error
    if on_error ~= nil and type(on_error) ~= "function"
       and not (getmetatable(on_error) or {}).__call then
      argerror("serve", 4, "on_error must be a function")
    end
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    for k in pairs(DEFAULTS) do
      if type(o[k]) ~= "number" or o[k] ~= o[k] or o[k] < 0 then
        argerror("serve", 4, k .. " must be a number >= 0")
      end
    end
    local tlsopts
    if o.tls then
      if type(o.tls) ~= "table" or not o.tls.cert or not o.tls.key then
        argerror("serve", 4, "tls must be a table with cert and key")
      end
      tlsopts = { server = true }
      for k, v in pairs(o.tls) do tlsopts[k] = v end
      tlsopts.timeout = tlsopts.timeout or o.request_timeout
      local _ = corun.tls  -- says so now when corun was built without TLS
    end
    local srv = setmetatable({ handler = handler, opts = o, conns = {},
      drained = corun.event(), tls = tlsopts }, Server)
    local listener, err, code = corun.tcp.listen(host, port, function(stream)
      serve_connection(srv, stream)
    end, { backlog = o.backlog })
    if not listener then return nil, err, code end
    srv.listener, srv.port = listener, listener.port
    return srv
  end
end
