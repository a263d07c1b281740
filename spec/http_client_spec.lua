-- spec/http_client_spec.lua: the corun.http client (src/http_client.c,
-- lua/corun/http.lua) against Python's http.server (spec/http_peer.py),
-- over http and over https with a test CA made by `openssl`.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async
local http = corun.http

local pki = require "pki"
local DIR = pki.make()

-- Start spec/http_peer.py (https with the test certificate when tls) and
-- run fn(base URL); the peer is stopped afterwards.
local function with_peer(tls, fn)
  local args = { "spec/http_peer.py" }
  if tls then
    args[2], args[3] = DIR .. "/srv.pem", DIR .. "/srv.key"
  end
  local p = assert(corun.process.spawn("env", { "-u", "LD_PRELOAD", "python3",
                                               table.unpack(args) }, { stdout = "pipe" }))
  local port = assert(tonumber(p.stdout:read("l", 20)), "http_peer.py did not start")
  local base = (tls and "https://localhost:" or "http://127.0.0.1:") .. port
  local ok, err = pcall(fn, base)
  p:kill()
  p:wait()
  if not ok then error(err, 0) end
end

local function decode(s)   -- the flat JSON of /echo, enough for the specs
  local t = { headers = {} }
  t.method = s:match('"method": "([^"]*)"')
  t.body = s:match('"body": "([^"]*)"')
  for k, v in s:match('"headers": {(.-)}'):gmatch('"([^"]+)": "([^"]*)"') do
    t.headers[k] = v
  end
  return t
end

describe("corun.http client", function()
  after_each(helper.check)
  teardown(pki.cleanup)

  it("GET, POST, other methods, headers in and out", async(function() with_peer(false, function(base)
    local r = assert(http.get(base .. "/hello"))
    assert.equal(200, r.status)
    assert.equal("hello\n", r.body)
    assert.equal("text/plain", r.headers["Content-Type"])
    assert.equal("text/plain", r.headers["content-type"])
    assert.equal("1.1", r.version)
    assert.equal("OK", r.reason)
    r = assert(http.post(base .. "/echo", "a=1&b=2", { headers = { ["X-Token"] = "t1" } }))
    local e = decode(r.body)
    assert.equal("POST", e.method)
    assert.equal("a=1&b=2", e.body)
    assert.equal("t1", e.headers["x-token"])
    r = assert(http.request { method = "put", url = base .. "/echo", body = "up",
                              headers = { { "X-Twice", "1" }, { "X-Twice", "2" } } })
    e = decode(r.body)
    assert.equal("PUT", e.method)
    assert.equal("up", e.body)
    assert.equal("1, 2", e.headers["x-twice"])
    r = assert(http.request { method = "DELETE", url = base .. "/echo" })
    assert.equal("DELETE", decode(r.body).method)
    r = assert(http.request { method = "HEAD", url = base .. "/hello" })
    assert.equal(200, r.status)
    assert.equal("", r.body)
    assert.equal("6", r.headers["content-length"])
  end) end))

  it("a body from a function or a stream is streamed (chunked)", async(function()
    local srv = assert(http.serve("127.0.0.1", 0, function(req)
      return 200, ("%s %s %d %s"):format(req.method, tostring(req.headers["transfer-encoding"]),
                                         #req.body, req.body:sub(1, 14))
    end, { max_body_size = 0 }))
    local base = "http://127.0.0.1:" .. srv.port
    local parts = { "one ", "two ", "three" }
    local i = 0
    local r = assert(http.post(base, function()
      i = i + 1
      return parts[i]
    end))
    assert.equal("POST chunked 13 one two three", r.body)
    local p = assert(corun.process.spawn("env", { "-u", "LD_PRELOAD", "printf", "from a stream" },
                                         { stdout = "pipe" }))
    r = assert(http.request { method = "PUT", url = base, body = p.stdout })
    p:wait()
    assert.equal("PUT chunked 13 from a stream", r.body)
    -- 20 MB from a slow source: the feeder is asked for chunks as they go
    local n, big = 0, string.rep("b", 100000)
    r = assert(http.post(base, function()
      n = n + 1
      if n <= 200 then return big end
    end))
    assert.equal("POST chunked 20000000 bbbbbbbbbbbbbb", r.body)
    -- a source that fails fails the request
    local _, err, code = http.post(base, function() error("source broke", 0) end)
    assert.equal("ECURL_ABORTED_BY_CALLBACK", code)
    assert.equal("ECURL_ABORTED_BY_CALLBACK: request body: source broke", err)
    -- a string body is sent with its length
    r = assert(http.post(base, "plain"))
    assert.equal("POST nil 5 plain", r.body)
    srv:close()
  end))

  it("repeated headers are kept, lookup ignores case", async(function() with_peer(false, function(base)
    local r = assert(http.get(base .. "/cookies"))
    assert.equal("a=1, b=2", r.headers["SET-COOKIE"])
    assert.equal("yes", r.headers["x-mixed-case"])
    local cookies = {}
    for _, kv in ipairs(r.header_list) do
      if kv[1]:lower() == "set-cookie" then cookies[#cookies + 1] = kv[2] end
    end
    assert.same({ "a=1", "b=2" }, cookies)
  end) end))

  it("status codes, redirects followed or not", async(function() with_peer(false, function(base)
    local r = assert(http.get(base .. "/status/404"))
    assert.equal(404, r.status)
    assert.equal("status 404", r.body)
    r = assert(http.get(base .. "/redirect"))
    assert.equal(200, r.status)
    assert.equal(base .. "/hello", r.url)
    r = assert(http.get(base .. "/redirect", { follow = false }))
    assert.equal(302, r.status)
    assert.equal("/hello", r.headers.location)
    assert.same({ nil, "ECURL_TOO_MANY_REDIRECTS: Maximum (3) redirects followed",
                  "ECURL_TOO_MANY_REDIRECTS" },
                { http.get(base .. "/loop", { max_redirects = 3 }) })
  end) end))

  it("errors: refused, bad URL, timeout, body limit", async(function() with_peer(false, function(base)
    local r, err, code = http.get("http://127.0.0.1:1/")
    assert.is_nil(r)
    assert.equal("ECURL_COULDNT_CONNECT", code)
    assert.matches("^ECURL_COULDNT_CONNECT: ", err)
    r, err, code = http.get("nope://x")
    assert.is_nil(r)
    assert.equal("ECURL_UNSUPPORTED_PROTOCOL", code)
    local t0 = corun.time()
    r, err, code = http.get(base .. "/slow", { timeout = 0.2 })
    assert.is_nil(r)
    assert.equal("ECURL_OPERATION_TIMEDOUT", code)
    assert.is_true(corun.time() - t0 < 1.5)
    r, err, code = http.get(base .. "/big", { max_body = 1000 })
    assert.is_nil(r)
    assert.equal("ECURL_FILESIZE_EXCEEDED", code)
    r = assert(http.get(base .. "/big"))
    assert.equal(1 << 20, #r.body)
  end) end))

  it("a cancel or corun.timeout aborts the transfer at once", async(function() with_peer(false, function(base)
    local t0 = corun.time()
    local ok, err = pcall(corun.timeout, 0.2, http.get, base .. "/slow")
    assert.is_false(ok)
    assert.is_true(corun.is_timeout(err))
    assert.is_true(corun.time() - t0 < 1.5)
    local t = corun.spawn(http.get, base .. "/slow")
    corun.sleep(0.1)
    t:cancel()
    ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.is_true(corun.is_cancelled(err))
    -- the client still works afterwards
    assert.equal(200, assert(http.get(base .. "/hello")).status)
  end) end))

  it("requests from many tasks run concurrently", async(function() with_peer(false, function(base)
    local t0 = corun.time()
    local tasks = {}
    for i = 1, 5 do tasks[i] = corun.spawn(http.get, base .. "/slow") end
    for i = 1, 5 do assert.equal("slow", tasks[i]:join().body) end
    assert.is_true(corun.time() - t0 < 6, "the requests did not overlap")
  end) end))

  it("1000 concurrent requests from one loop", async(function() with_peer(false, function(base)
    local n, ok = 1000, 0
    corun.group(function(g)
      for i = 1, n do
        g:spawn(function()
          local r = assert(http.post(base .. "/echo", "n" .. i, { timeout = 120 }))
          assert.equal("n" .. i, decode(r.body).body)
          ok = ok + 1
        end)
      end
    end)
    assert.equal(n, ok)
  end) end))

  it("https: the test CA passes, an unknown CA and a wrong host fail", async(function() with_peer(true, function(base)
    local r = assert(http.get(base .. "/hello", { cafile = DIR .. "/ca.pem" }))
    assert.equal("hello\n", r.body)
    local _, err, code = http.get(base .. "/hello")   -- system CAs
    assert.equal("ECURL_PEER_FAILED_VERIFICATION", code)
    assert.matches("^ECURL_PEER_FAILED_VERIFICATION: ", err)
    _, err, code = http.get(base .. "/hello", { cafile = DIR .. "/other_ca.pem" })
    assert.equal("ECURL_PEER_FAILED_VERIFICATION", code)
    local port = base:match(":(%d+)$")
    _, err, code = http.get("https://127.0.0.2:" .. port .. "/hello",
                            { cafile = DIR .. "/ca.pem", connect_timeout = 2 })
    assert.is_not_nil(code)   -- refused (not bound) or a name mismatch
    r = assert(http.get(base .. "/hello", { verify = false }))
    assert.equal(200, r.status)
  end) end))

  it("https to a name the certificate does not carry fails", async(function() with_peer(true, function(base)
    local port = base:match(":(%d+)$")
    -- 127.0.0.1 is in the certificate; "localhost" too; a made-up name
    -- resolved to 127.0.0.1 is not
    local _, err, code = http.request { url = "https://wrong.test:" .. port .. "/hello",
      cafile = DIR .. "/ca.pem", resolve = "wrong.test:" .. port .. ":127.0.0.1" }
    assert.equal("ECURL_PEER_FAILED_VERIFICATION", code)
    assert.matches("wrong.test", err)
  end) end))

  it("stream = true: the body as it arrives, with back-pressure", async(function()
    local sent, total = 0, 2000 * 10000   -- 20 MB
    local srv = assert(http.serve("127.0.0.1", 0, function(_, res)
      local chunk = string.rep("z", 10000)
      for _ = 1, 2000 do
        if not res:write(chunk) then return end
        sent = sent + #chunk
      end
    end))
    local base = "http://127.0.0.1:" .. srv.port
    local resp = assert(http.get(base .. "/", { stream = true }))
    assert.equal(200, resp.status)
    assert.is_nil(resp.body)
    assert.equal("chunked", resp.headers["transfer-encoding"])
    corun.sleep(0.3)
    assert.is_true(sent < total / 2, "the transfer did not pause: " .. sent)
    local n, chunks = 0, 0
    for c in resp:iter() do
      n = n + #c
      chunks = chunks + 1
    end
    assert.equal(total, n)
    assert.is_true(chunks > 1)
    assert.equal(total, sent)
    -- read some, then abandon it: the transfer is aborted
    resp = assert(http.get(base .. "/", { stream = true }))
    assert.is_true(#assert(resp:read()) > 0)
    resp:close()
    assert.has_error(function() resp:read() end, "the response body is closed")
    -- a timeout while reading
    resp = assert(http.get(base .. "/", { stream = true }))
    local ok, err = pcall(corun.timeout, 0.05, function()
      for _ in resp:iter() do corun.sleep(0.02) end
    end)
    assert.is_false(ok)
    assert.is_true(corun.is_timeout(err))
    resp:close()
    assert.same({ nil, "ECURL_COULDNT_CONNECT" },
                { select(1, http.get("http://127.0.0.1:1/", { stream = true })), select(3, http.get("http://127.0.0.1:1/", { stream = true })) })
    srv:close()
  end))

  it("misuse raises", function()
    assert.has_error(function() http.get(1) end, "bad argument #1 to 'get' (url must be a string)")
    assert.has_error(function() http.request("x") end, "bad argument #1 to 'request' (table expected)")
    assert.has_error(function() http.request { url = "http://x/", timeout = -1 } end,
      "bad argument #1 to 'request' (timeout must be a number >= 0)")
    assert.has_error(function() http.post("http://x/", {}) end,
      "bad argument #1 to 'post' (body must be a string, a function or a stream)")
  end)
end)
