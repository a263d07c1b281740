-- spec/regress/010_redis_queue_spec.lua: issue 10 #4, #5, #13 and issue 11
-- "Delivery" (the Redis queue, lua/corun/redis.lua):
-- - after redis-server restarts without persistence, get recreates the
--   consumer group (it used to raise NOGROUP forever while put worked);
-- - join while Redis is down raises a clear error (it used to be
--   "bad argument #2 to 'tonumber'");
-- - task_done acknowledges the calling task's oldest item: two tasks on
--   one object, the process killed with SIGKILL while task A holds item 1,
--   and a fresh consumer still gets item 1 (it used to be lost);
-- - a task that ends holding items gives them back at once;
-- - a poison item ends in <name>:dead after max_deliveries with its error
--   and attempts, and the queue goes on; q:dead, q:requeue_dead;
-- - task_failed retries after a backoff, then dead-letters;
-- - a task holding an item keeps it (claims renewed) past 'visibility'.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local rh = require "redis_helper"
local both, fail = helper.both, helper.fail
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Two tasks, one queue object: A gets an item and holds it; then B gets
-- one, acknowledges it and says so; then the process waits to be killed.
local TWO_TASKS = [[
local corun = require "corun"
local url, name = arg[1], arg[2]
local q = corun.redis.queue(url, name, {visibility = 30})
local got_a
corun.spawn(function()
  got_a = q:get()
  corun.sleep(3600)
end)
while got_a == nil do corun.sleep(0.01) end
local b = corun.spawn(function()
  local x = q:get()
  q:task_done()
  return x
end)
io.write("A ", got_a, " B ", b:join(), "\n")
io.stdout:flush()
corun.sleep(3600)
]]

local cli = rh.cli

describe("regress 010: the Redis queue", function()
  local env = rh.suite("regress010")
  local newname = env.newname
  local url, port, script
  setup(function()
    url, port = env.url, env.port
    script = env.script(TWO_TASKS)
  end)

  it("a server restarted without persistence: get recreates the group", async(function()
    local port2, stop2 = helper.redis_server()
    local url2 = ("redis://127.0.0.1:%d/0"):format(port2)
    local ok, e = pcall(function()
      local q = corun.redis.queue(url2, "jobs")
      q:put(1)
      assert.equal(1, q:get(5))
      q:task_done()
      stop2()
      local _
      _, stop2 = helper.redis_server(nil, port2)
      assert.is_true(q:put(2))
      assert.equal(2, q:get(5))
      q:task_done()
      assert.is_true(q:join(5))
      q:disconnect()
    end)
    stop2()
    if not ok then error(e, 0) end
  end))

  it("join while Redis is down: a clear error, no library location", async(function()
    local port2, stop2 = helper.redis_server()
    local q = corun.redis.queue(("redis://127.0.0.1:%d/0"):format(port2), "jobs",
                                { reconnect = 0.3 })
    q:put(1)
    stop2()
    local okj, e = pcall(q.join, q)
    assert.is_false(okj)
    assert.equal("redis queue: join: connection lost (gave up reconnecting after 0.3 s)", e)
    -- with a timeout shorter than 'reconnect': nil, "timeout"
    local q2 = corun.redis.queue(("redis://127.0.0.1:%d/0"):format(port2), "jobs")
    assert.same(fail("timeout"), both(q2:join(0.2)))
    q:disconnect()
    q2:disconnect()
  end))

  it("two tasks on one object: B's task_done does not acknowledge A's item; after kill -9 a fresh consumer gets it",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    for i = 1, 5 do q:put(i) end
    local p = assert(corun.process.spawn(CORUN, { script, url, name },
                                         { stdout = "pipe" }))
    local line = p.stdout:read("l", 30)
    assert.equal("A 1 B 2", line)
    local r <close> = corun.redis.connect(url)
    -- item 1 is still pending (held by A), item 2 acknowledged (3..5
    -- are pending too: prefetched by the object)
    local pending = r:call("XPENDING", name, "corun", "-", "+", 10)
    local ids = {}
    for _, e in ipairs(pending) do ids[e[1]] = true end
    local firsts = r:call("XRANGE", name, "-", "+", "COUNT", 2)
    assert.is_true(ids[firsts[1][1]])
    assert.is_nil(ids[firsts[2][1]])
    assert.equal(4, #pending)
    assert.is_true(p:kill("kill"))
    p:wait(10)
    local fresh = corun.redis.queue(url, name, { visibility = 0.5 })
    local got = {}
    for _ = 1, 4 do
      got[#got + 1] = assert(fresh:get(10))
      fresh:task_done()
    end
    table.sort(got)
    assert.same({ 1, 3, 4, 5 }, got)
    assert.same(fail("timeout"), both(fresh:get(0.7)))
    assert.is_true(fresh:join(1))
    q:disconnect()
    fresh:disconnect()
  end))

  it("two tasks on one object in one process: each task_done acknowledges its own item",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    q:put("a")
    q:put("b")
    local a_got, release = nil, corun.event()
    local a = corun.spawn(function()
      a_got = q:get()
      release:wait()
      q:task_done()
    end)
    while a_got == nil do corun.sleep(0.01) end
    assert.equal("b", q:get())
    q:task_done()   -- this task's "b", not A's "a"
    local r <close> = corun.redis.connect(url)
    local pending = r:call("XPENDING", name, "corun", "-", "+", 10)
    assert.equal(1, #pending)
    assert.equal(r:call("XRANGE", name, "-", "+", "COUNT", 1)[1][1], pending[1][1])
    helper.raises("task_done: called more times than items got (by this task)",
                  q.task_done, q)
    release:set()
    a:join()
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("a task that ends holding an item gives it back at once (no visibility wait)",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { visibility = 3600 })
    q:put("x")
    local t = corun.spawn(function()
      assert.equal("x", q:get())
      error("worker crashed")
    end)
    assert.matches("worker crashed", tostring(select(2, pcall(t.join, t))))
    local t0 = corun.time()
    assert.equal("x", q:get(10))
    assert.is_true(corun.time() - t0 < 5)
    q:task_done()
    -- cancelled while holding it
    q:put("y")
    t = corun.spawn(function()
      assert.equal("y", q:get())
      corun.sleep(3600)
    end)
    corun.sleep(0.2)
    t:cancel()
    pcall(t.join, t)
    assert.equal("y", q:get(10))
    q:task_done()
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("a long job is not taken over while its task is alive (claims renewed)",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { visibility = 0.3 })
    local other = corun.redis.queue(url, name, { visibility = 0.3 })
    q:put("long")
    local worker = corun.spawn(function()
      assert.equal("long", q:get(5))
      corun.sleep(1.5)              -- five times the visibility
      q:task_done()
    end)
    corun.sleep(0.1)
    assert.same(fail("timeout"), both(other:get(1.2)))
    worker:join()
    assert.is_true(q:join(1))
    local r <close> = corun.redis.connect(url)
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    q:disconnect()
    other:disconnect()
  end))

  it("a poison item ends in <name>:dead after max_deliveries; the queue goes on",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { max_deliveries = 3 })
    q:put("poison")
    for i = 1, 3 do q:put(i) end
    local processed, tries = {}, 0
    for _ = 1, 20 do
      local t = corun.spawn(function()
        local item = q:get(1)
        if item == nil then return end
        if item == "poison" then
          tries = tries + 1
          error("cannot digest poison")
        end
        processed[#processed + 1] = item
        q:task_done()
      end)
      pcall(t.join, t)
      if #processed == 3 and q:join(0) then break end
    end
    assert.same({ 1, 2, 3 }, processed)
    assert.equal(3, tries)
    assert.is_true(q:join(1))
    local dead = q:dead()
    assert.equal(1, #dead)
    assert.equal("poison", dead[1].item)
    assert.equal(3, dead[1].attempts)
    assert.matches("failed without task_done", dead[1].error)
    assert.matches("cannot digest poison", dead[1].error)
    assert.matches("max_deliveries 3", dead[1].why)
    assert.matches("^" .. q.consumer:gsub("%p", "%%%0") .. "$", dead[1].consumer)
    local r <close> = corun.redis.connect(url)
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    -- requeue it: delivered again, join waits for it
    assert.equal(1, q:requeue_dead("all"))
    assert.same({}, q:dead())
    assert.same(fail("timeout"), both(q:join(0.1)))
    assert.equal("poison", q:get(5))
    q:task_done()
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("task_failed: retried after a backoff with its error kept, then dead",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name, { max_deliveries = 2,
      backoff_base = 0.5, backoff_factor = 2, backoff_cap = 10 })
    q:put({ job = "flaky" })
    assert.same({ job = "flaky" }, q:get(5))
    local t0 = corun.time()
    q:task_failed("first failure")
    assert.same(fail("timeout"), both(q:get(0.2)))      -- backing off
    assert.same({ job = "flaky" }, q:get(5))
    local waited = corun.time() - t0
    assert.is_true(waited >= 0.35, "retried after " .. waited)
    assert.same(fail("timeout"), both(q:join(0.1)))
    q:task_failed("second failure")
    assert.is_true(q:join(1))
    local dead = q:dead(10)
    assert.equal(1, #dead)
    assert.same({ job = "flaky" }, dead[1].item)
    assert.equal(2, dead[1].attempts)
    assert.equal("second failure", dead[1].error)
    assert.matches("failed 2 times", dead[1].why)
    -- requeue by id
    assert.equal(0, q:requeue_dead("0-1"))
    assert.equal(1, q:requeue_dead(dead[1].id))
    assert.same({ job = "flaky" }, q:get(5))
    q:task_done()
    assert.is_true(q:join(1))
    helper.raises("bad argument #1 to 'requeue_dead'", q.requeue_dead, q)
    helper.raises("task_failed: called more times than items got", q.task_failed, q)
    q:disconnect()
  end))

  it("a crashing consumer process counts as a delivery: dead after max_deliveries",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    q:put("crash")
    for _ = 1, 2 do
      local code = corun.process.run(CORUN, { "-e", ([[
        local corun = require "corun"
        local q = corun.redis.queue(%q, %q, {visibility = 0.2, max_deliveries = 2})
        assert(q:get(10) == "crash")
        os.exit(3)
      ]]):format(url, name) })
      assert.equal(3, code)
    end
    corun.sleep(0.3)
    local q2 = corun.redis.queue(url, name, { visibility = 0.2, max_deliveries = 2 })
    assert.same(fail("timeout"), both(q2:get(0.5)))
    local dead = q2:dead()
    assert.equal(1, #dead)
    assert.equal("crash", dead[1].item)
    assert.equal(2, dead[1].attempts)
    assert.is_true(q2:join(1))
    local _, out = cli(port, "XLEN", name .. ":dead")
    assert.equal("1\n", out)
    q:disconnect()
    q2:disconnect()
  end))
end)
