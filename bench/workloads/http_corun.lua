-- http_corun.lua: the http workloads' server on corun.http.serve. Listens
-- on 127.0.0.1 (port $HTTP_PORT, default 0: a free port), prints "PORT n"
-- on stdout and serves until killed: every request gets 200 and the same
-- tiny body ("hello world\n", text/plain), keep-alive. http_driver.py runs
-- it under wrk (the http row), with idle connections (http_idle) and as
-- the server of the client row (http_client).
local corun = require "corun"

local HEADERS = { ["Content-Type"] = "text/plain" }
local server = assert(corun.http.serve("127.0.0.1",
  tonumber(os.getenv("HTTP_PORT")) or 0, function()
    return 200, "hello world\n", HEADERS
  end))
print("PORT " .. server.port)
io.stdout:flush()
