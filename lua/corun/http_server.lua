--[[
** corun.http_server: corun.http.serve, an HTTP/1.1 server on
** corun.tcp.listen (a task per connection) and the C core's binding of
** http-parser. Loaded by corun.http; not meant to be required directly.
**
** A connection waits for a byte, then hands the parser what it has
** received (p:feed parses a plain stream's buffer in place; a TLS
** stream's plaintext is given as a string), and the parser takes only
** what belongs to the current request, so pipelined requests are answered
** one at a time, in order. Keep-alive as HTTP/1.1 says (HTTP/1.0 only
** with "Connection: keep-alive"). Limits: the head's size (431), the
** body's size (413), a malformed request (400); each answer closes the
** connection. A client that is slow to send its request (from its first
** byte to its body's last) past request_timeout gets 408 and is dropped
** (slowloris); an idle keep-alive connection is closed after
** idle_timeout. The request table and the response head are made in C
** (src/http_server.c).
--]]

local corun = require "corun"

local DEFAULTS = {
  max_header_size = 16 * 1024,     -- request line and headers, bytes
  max_body_size = 8 * 1024 * 1024, -- bytes (0: no limit)
  request_timeout = 30,            -- s, first byte to last of a request
  idle_timeout = 60,               -- s, a keep-alive connection between requests
  close_timeout = 10,              -- s, server:close() waits this long
}

local PLAIN = { { "Content-Type", "text/plain" } }

local function argerror(fname, n, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 4)
end

local function remaining(deadline)
  local t = deadline - corun.time()
  return t > 0 and t or 0
end

return function(M, core, headers_of)
  local now = corun.time
  local header_list = core.http_header_list

  -- Requests: what p:request() makes; header_list is made when asked for.
  local Req = {}
  Req.__name = "corun.http_request"
  function Req.__index(req, k)
    if k == "header_list" then
      local list = header_list(rawget(req, "_fields"))
      rawset(req, "header_list", list)
      return list
    end
  end

  -- A short answer of the server's own (an error): head and body.
  local function plain(p, code, msg, keep)
    local head = p:response(code, msg .. "\n", keep, false, PLAIN)
    return head, msg .. "\n"
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
    local hdrs = self.hdrs
    if not hdrs then
      hdrs = {}
      self.hdrs = hdrs
    end
    hdrs[#hdrs + 1] = { k, v }
    return self
  end

  -- res:write(chunk): the first write sends the head (chunked, unless a
  -- Content-Length header was set); true or nil, err.
  function Res:write(chunk)
    chunk = chunk == nil and "" or tostring(chunk)
    local s = self.stream
    if not self.started then
      self.started = true
      if self.srv.closing then self.keep = false end
      local head, chunked = self.p:response(self.code, false, self.keep,
                                            self.head_only, self.hdrs)
      -- no body for HEAD, 1xx, 204, 304: then chunks are dropped
      self.chunked = chunked
      if not chunked and not self.head_only then
        local c = self.code
        self.head_only = c == 204 or c == 304 or (c >= 100 and c < 200)
      end
      local ok, err = s:write(head)
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

  -- Wait for more of the request (up to 'deadline') and feed it: phase,
  -- rest as p:feed, or nil, status (408, 4xx; nil: the client went away),
  -- message.
  local function more(c, p, deadline)
    local s = c.stream
    local b, err = s:read(1, remaining(deadline))
    if not b then
      if err == "timeout" then return nil, 408, "request timeout" end
      return nil, nil, err or "closed"
    end
    local phase, rest, status
    if c.tls then phase, rest, status = p:feed(b, s:_take())
    else phase, rest, status = p:feed(b, s) end
    if not phase then return nil, status, rest end
    return phase, rest
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

  -- Feed 'p' from connection 'c' until its phase reaches 'want' (1: the
  -- head is in, 2: the whole request), within the request deadline (set
  -- on the first read if nil). Returns phase, rest (p:feed's, or the one
  -- given when nothing was read) and the deadline; or nil when the request
  -- did not come (answered with its error status when there is one).
  local function read_to(c, p, o, phase, rest, want, deadline)
    local status, msg
    while phase < want do
      deadline = deadline or now() + o.request_timeout
      phase, status, msg = more(c, p, deadline)
      if not phase then
        if status then c.stream:write(plain(p, status, msg, false)) end
        return nil
      end
      rest = status
    end
    return phase, rest, deadline
  end

  -- One request, its parsing started by a feed that returned 'phase':
  -- read the rest of it, run the handler, answer. Returns whether to go on
  -- with the next request on this connection, and whether input for it
  -- is there already (p:feed's rest).
  local function one_request(srv, c, p, phase, rest)
    local s, o = c.stream, srv.opts
    local deadline, msg
    phase, rest, deadline = read_to(c, p, o, phase, rest, 1, nil)
    if not phase then return false end  -- the head did not come
    local method, target, path, query, version, headers, fields, keep = p:request()
    local req = setmetatable({ method = method, target = target, path = path,
      query = query, version = version, headers = headers, _fields = fields,
      keep_alive = keep, body = false, peer = c.peer }, Req)
    keep = keep and not srv.closing
    local expect = rawget(headers, "expect")
    if expect and phase < 2 then
      if expect:lower() ~= "100-continue" then
        s:write(plain(p, 417, "unsupported Expect", false))
        return false
      end
      s:write("HTTP/1.1 100 Continue\r\n\r\n")
    end
    if o.stream then
      local drained = phase == 2
      function req.iter()
        return function()
          local chunk = p:body()
          while chunk == "" and phase < 2 do
            local ph, r
            deadline = deadline or now() + o.request_timeout
            ph, r, msg = more(c, p, deadline)
            if not ph then
              c.broken = r or true
              if r then error(("http: request body: %s"):format(msg), 0) end
              return nil
            end
            phase, rest = ph, r
            drained = phase == 2
            chunk = p:body()
          end
          if chunk ~= "" then return chunk end
          return nil
        end
      end
      req.drained = function() return drained end
      req.body = nil
    else
      phase, rest, deadline = read_to(c, p, o, phase, rest, 2, deadline)
      if not phase then return false end  -- nor the whole body
      req.body = p:body()
    end
    local head_only = method == "HEAD"
    local res = setmetatable({ stream = s, p = p, code = 200, keep = keep,
                               srv = srv, head_only = head_only }, Res)
    c.busy = true
    local ok, code, body, hdrs = pcall(srv.handler, req, res)
    c.busy = false
    if not ok then
      log_error(srv, code, req)
      if not res.started then s:write(plain(p, 500, "internal server error", false)) end
      return false
    end
    if o.stream and phase < 2 then
      -- the handler left some of the body unread: read and drop it
      for _ in req.iter() do end
      if phase < 2 then return false end
    end
    keep = res.keep and not srv.closing
    if res.started then
      if not finish_stream(res) then return false end
    else
      if code == nil then code = res.code end
      if math.type(code) ~= "integer" then
        log_error(srv, "handler returned a status that is not an integer: "
                  .. tostring(code), req)
        s:write(plain(p, 500, "internal server error", false))
        return false
      end
      if body == nil then body = ""
      elseif type(body) ~= "string" then body = tostring(body) end
      local rok, head, send = pcall(p.response, p, code, body, keep, head_only,
                                    res.hdrs, hdrs)
      if not rok then
        log_error(srv, head, req)
        s:write(plain(p, 500, "internal server error", false))
        return false
      end
      local wok
      if send and #body > 0 then wok = s:write(head, body)
      else wok = s:write(head) end
      if not wok then return false end
    end
    return keep and not srv.closing, rest
  end

  local function serve_connection(srv, raw)
    local s = raw
    if srv.tls then
      local err
      s, err = corun.tls.wrap(raw, srv.tls)
      if not s then return end
    end
    local o = srv.opts
    local host, port = raw:peername()
    local c = { stream = s, idle = true, tls = srv.tls ~= nil,
                peer = host and { host = host, port = port } or nil }
    srv.conns[c] = true
    local p = core.http_parser(o.max_header_size, o.max_body_size,
                               getmetatable(headers_of({})), Req)
    local ok, err = pcall(function()
      local go, rest = true, false
      while go and not srv.closing do
        local phase, r2, r3
        if rest then   -- pipelined: the next request is (partly) there
          if c.tls then phase, r2, r3 = p:feed(nil, s:_take())
          else phase, r2, r3 = p:feed(nil, s) end
        else
          c.idle = true
          local b = s:read(1, o.idle_timeout)
          c.idle = false
          if not b then break end
          if c.tls then phase, r2, r3 = p:feed(b, s:_take())
          else phase, r2, r3 = p:feed(b, s) end
        end
        if not phase then
          s:write(plain(p, r3, r2, false))
          break
        end
        go, rest = one_request(srv, c, p, phase, r2)
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
