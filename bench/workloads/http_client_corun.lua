-- http_client_corun.lua: the http_client workload on corun.http: 64 tasks
-- share 10,000 GETs (N scaled by BENCH_SCALE) of http://127.0.0.1:$HTTP_PORT/
-- over keep-alive (one loop, libcurl reusing its connections), each task
-- taking the next request number until none is left; every answer is
-- checked. http_driver.py starts the server (http_node.js) and runs this
-- client as it runs http_client_node.js.
package.path = arg[0]:match("^(.-)[^/]*$") .. "?.lua;" .. package.path
local bu = require "benchutil"
local corun = require "corun"

local N, TASKS = bu.scaled(10000), 64
local url = "http://127.0.0.1:" .. assert(os.getenv("HTTP_PORT"), "HTTP_PORT") .. "/"
local get = corun.http.get

local left, ok = N, 0
local function worker()
  while left > 0 do
    left = left - 1
    local r = assert(get(url))
    assert(r.status == 200 and r.body == "hello world\n", "bad answer")
    ok = ok + 1
  end
end

local t0 = corun.time()
local tasks = {}
for i = 1, TASKS do tasks[i] = corun.spawn(worker) end
for i = 1, TASKS do tasks[i]:join() end
local dt = corun.time() - t0
assert(ok == N, "lost requests")
bu.result("http_client", "rate=%.1f seconds=%.4f n=%d tasks=%d", N / dt, dt, N, TASKS)
