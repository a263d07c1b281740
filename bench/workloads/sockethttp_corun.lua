-- sockethttp_corun.lua: sockethttp workload (corun only). A local
-- corun.http.serve server answers GET /n with a 64-byte body; 32 tasks
-- fetch N URLs from it (2,000 in all), once with Debian's LuaSocket
-- socket.http (unmodified, on corun.socket: a fresh connection per request,
-- as socket.http sends "Connection: close") and once with corun.http.get
-- (libcurl, keep-alive), and once more with corun.http.get sending
-- "Connection: close" (a connection per request, as socket.http),
-- alternating, best of two rounds each. rate = socket.http requests/s;
-- http_rate = corun.http's (keep-alive); ratio = rate / http_rate;
-- close_rate and close_ratio: the same against corun.http without keep-alive.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local util = require "benchutil"
local corun = require "corun"

local N, TASKS = util.scaled(2000), 32
local BODY = string.rep("x", 63) .. "\n"

corun.socket.install()
local http = require "socket.http"

local srv = assert(corun.http.serve("127.0.0.1", 0, function()
  return 200, BODY, { ["content-type"] = "text/plain" }
end))
local base = "http://127.0.0.1:" .. srv.port .. "/"

local function lua_get(url)
  local body, code = http.request(url)
  assert(code == 200 and body == BODY, "socket.http: " .. tostring(code))
end

local function curl_get(url)
  local r = assert(corun.http.get(url))
  assert(r.status == 200 and r.body == BODY, "corun.http: " .. tostring(r.status))
end

local CLOSE = { headers = { connection = "close" } }
local function curl_close(url)
  local r = assert(corun.http.get(url, CLOSE))
  assert(r.status == 200 and r.body == BODY, "corun.http: " .. tostring(r.status))
end

-- N fetches from TASKS tasks; the seconds it took.
local function round(get)
  local t0, next = corun.time(), 0
  local g = {}
  for i = 1, TASKS do
    g[i] = corun.spawn(function()
      while next < N do
        next = next + 1
        get(base .. next)
      end
    end)
  end
  for i = 1, TASKS do g[i]:join() end
  return corun.time() - t0
end

local sdt, hdt, cdt = math.huge, math.huge, math.huge
for _ = 1, 2 do
  sdt = math.min(sdt, round(lua_get))
  hdt = math.min(hdt, round(curl_get))
  cdt = math.min(cdt, round(curl_close))
end
srv:close()

local rate = N > 0 and N / sdt or 0
local hrate = N > 0 and N / hdt or 0
local crate = N > 0 and N / cdt or 0
util.result("sockethttp",
  "rate=%.1f seconds=%.4f n=%d tasks=%d http_rate=%.1f http_seconds=%.4f "
  .. "ratio=%.4f close_rate=%.1f close_ratio=%.4f",
  rate, sdt, N, TASKS, hrate, hdt, hrate > 0 and rate / hrate or 0,
  crate, crate > 0 and rate / crate or 0)
