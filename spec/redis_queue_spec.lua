-- spec/redis_queue_spec.lua: the distributed queue corun.redis.queue
-- (lua/corun/redis.lua on Redis streams and consumer groups): the queue
-- API, how items are stored, malformed entries, and consumers in separate
-- `corun` processes: 10,000 items through 4 of them, one killed with
-- SIGKILL while holding items, join across processes.
-- The server: CORUN_REDIS_URL (test/run.sh starts one) or a throwaway
-- redis-server of our own (helper.redis). Every test uses its own streams.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local rh = require "redis_helper"
local catch = helper.catch
local both, fail, raises = helper.both, helper.fail, helper.raises
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- A consumer process: corun CONSUMER url name visibility [hold]. It gets
-- items (integers) until the queue is closed, counts each in the hash
-- <name>:count (HINCRBY, before task_done) and ends printing
-- "done <items> <sum>". With "hold" it gets 5 items, prints
-- "held a b c d e" and sleeps without acknowledging them (to be killed).
local CONSUMER = [[
local corun = require "corun"
local url, name, visibility, mode = arg[1], arg[2], tonumber(arg[3]), arg[4]
local q = corun.redis.queue(url, name, {visibility = visibility})
local r = corun.redis.connect(url)
if mode == "hold" then
  local got = {}
  for i = 1, 5 do got[i] = assert(q:get()) end
  io.write("held ", table.concat(got, " "), "\n")
  io.stdout:flush()
  corun.sleep(3600)
end
local n, sum = 0, 0
for item in q:iter() do
  assert(r:call("HINCRBY", name .. ":count", item, 1))
  n, sum = n + 1, sum + item
  q:task_done()
end
io.write(("done %d %d\n"):format(n, sum))
]]

-- A producer process: corun PRODUCER url name n. Puts 1..n, joins the
-- queue, then prints "joined <items counted in <name>:count>".
local PRODUCER = [[
local corun = require "corun"
local url, name, n = arg[1], arg[2], tonumber(arg[3])
local q = corun.redis.queue(url, name)
local r = corun.redis.connect(url)
for i = 1, n do q:put(i) end
io.write("put ", n, "\n")
io.stdout:flush()
assert(q:join())
io.write("joined ", r:call("HLEN", name .. ":count"), "\n")
]]

describe("corun.redis.queue", function()
  local env = rh.suite("queue")
  local newname = env.newname
  local url, port, consumer_script, producer_script
  setup(function()
    url, port = env.url, env.port
    consumer_script = env.script(CONSUMER)
    producer_script = env.script(PRODUCER)
  end)

  local function spawn_consumer(name, visibility, mode)
    return assert(corun.process.spawn(CORUN,
      { consumer_script, url, name, tostring(visibility or 30), mode },
      { stdout = "pipe" }))
  end

  -- Read a child's whole stdout and wait for it; returns output, exit code.
  local function finish(p)
    local out = p.stdout:read("a")
    local code, sig = p:wait(60)
    assert(code == 0 and not sig, ("child exited %s %s"):format(code, sig))
    return out
  end

  -- Every value of hash 'key' is 1 and there are n of them, keys 1..n.
  local function counted_once(r, key, nitems)
    local h = r:call("HGETALL", key)
    assert.equal(2 * nitems, #h)
    local seen = {}
    for i = 1, #h, 2 do
      local item, count = tonumber(h[i]), h[i + 1]
      if count ~= "1" then error(("item %s processed %s times"):format(h[i], count)) end
      seen[item] = true
    end
    for i = 1, nitems do assert(seen[i], "item " .. i .. " never processed") end
  end

  it("put, get, task_done, join: items of any data type, in order",
  async(function()
    local q = corun.redis.queue(url, newname())
    local items = { "text", 42, 1.5, true, false, { a = 1, list = { 1, 2, { x = "y" } } },
                    "", "with\0zero", -7 }
    for _, item in ipairs(items) do assert.is_true(q:put(item)) end
    for _, item in ipairs(items) do
      local got = q:get()
      assert.same(item, got)
      assert.equal(math.type(item), math.type(got))
    end
    assert.same(fail("timeout"), both(q:join(0.1)))  -- none acknowledged yet
    for _ = 1, #items - 1 do q:task_done() end
    assert.same(fail("timeout"), both(q:join(0.1)))
    q:task_done()
    assert.same(both(true), both(q:join(1)))
    assert.same(both(true), both(q:join()))
    raises("task_done: called more times than items got", q.task_done, q)
    q:disconnect()
  end))

  it("get(timeout) on an empty queue returns nil, 'timeout' in time",
  async(function()
    local q = corun.redis.queue(url, newname())
    local t0 = corun.time()
    assert.same(fail("timeout"), both(q:get(0.3)))
    local dt = corun.time() - t0
    assert.is_true(dt >= 0.29 and dt < 1.5, "took " .. dt)
    q:disconnect()
  end))

  it("strings stay readable in the stream; other data is encoded",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    q:put("hello, world")
    q:put({ n = 1 })
    q:put(7)
    local r <close> = corun.redis.connect(url)
    local entries = r:call("XRANGE", name, "-", "+")
    assert.equal(3, #entries)
    assert.same({ "s", "hello, world" }, entries[1][2])
    assert.equal("c", entries[2][2][1])
    assert.equal("c", entries[3][2][1])
    local code, out = corun.process.run("env", { "-u", "LD_PRELOAD", "redis-cli",
      "-u", url, "XRANGE", name, "-", "+" })
    assert.equal(0, code)
    assert.truthy(out:find("hello, world", 1, true))
    assert.equal("3", r:call("GET", name .. ":puts"))
    q:disconnect()
  end))

  it("functions are refused at put; nothing is added", async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    raises("cannot put item: functions are not allowed here", q.put, q, print)
    raises("cannot put item: functions are not allowed here", q.put, q,
           function() end)
    raises("functions are not allowed here", q.put, q, { job = 1, cb = print })
    raises("bad argument #1 to 'put' (nil is not a valid item)", q.put, q, nil)
    local r <close> = corun.redis.connect(url)
    assert.equal(0, r:call("XLEN", name))
    assert.is_nil(r:call("GET", name .. ":puts"))
    q:put("ok")
    assert.equal("ok", q:get())
    q:task_done()
    q:disconnect()
  end))

  it("a malformed entry fails that get, lands in <name>:dead, and later gets work",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    local r <close> = corun.redis.connect(url)
    q:put("first")
    local bad = r:call("XADD", name, "*", "c", "garbage \1\2\3")
    local odd = r:call("XADD", name, "*", "zz", "unknown field")
    q:put({ "last" })
    assert.equal("first", q:get())
    q:task_done()
    local v, err = q:get(5)
    assert.is_nil(v)
    assert.equal("malformed entry " .. bad .. ":", err:sub(1, #bad + 17))
    v, err = q:get(5)
    assert.is_nil(v)
    assert.equal("malformed entry " .. odd .. ": unknown encoding", err)
    assert.same({ "last" }, q:get(5))
    q:task_done()
    local dead = r:call("XRANGE", name .. ":dead", "-", "+")
    assert.equal(2, #dead)
    assert.same({ "id", bad }, { dead[1][2][1], dead[1][2][2] })
    assert.same({ "id", odd }, { dead[2][2][1], dead[2][2][2] })
    -- the malformed ones were acknowledged: nothing is pending, and join
    -- (which counts only puts) is satisfied
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    assert.is_true(q:join(1))
    q:disconnect()
  end))

  it("close: consumers drain what is left, then get nil, 'closed'; iter stops",
  async(function()
    local name = newname()
    local q = corun.redis.queue(url, name)
    local waiter = corun.redis.queue(url, name)
    local waiting = corun.spawn(function() return both(waiter:get()) end)
    corun.sleep(0.1)
    q:close()
    assert.same(fail("closed"), waiting:join(5))   -- woken by close
    -- items put before (or after) close are still delivered
    local q2 = corun.redis.queue(url, newname())
    for i = 1, 5 do q2:put(i) end
    q2:close()
    local got = {}
    for item in q2:iter() do
      got[#got + 1] = item
      q2:task_done()
    end
    assert.same({ 1, 2, 3, 4, 5 }, got)
    assert.same(fail("closed"), both(q2:get()))
    assert.same(fail("closed"), both(q2:get(0.1)))
    assert.is_true(q2:join())
    for _, x in ipairs({ q, waiter, q2 }) do x:disconnect() end
  end))

  it("two consumers of one group share the items: each delivered once",
  async(function()
    local name = newname()
    local prod = corun.redis.queue(url, name)
    local got, tasks = {}, {}
    for c = 1, 2 do
      tasks[c] = corun.spawn(function()
        local q = corun.redis.queue(url, name, { consumer = "c" .. c })
        local mine = 0
        for item in q:iter() do
          got[item] = (got[item] or 0) + 1
          mine = mine + 1
          q:task_done()
        end
        q:disconnect()
        return mine
      end)
    end
    for i = 1, 200 do prod:put(i) end
    prod:join()
    prod:close()
    local counts = corun.gather(tasks)
    assert.equal(200, counts[1] + counts[2])
    for i = 1, 200 do assert.equal(1, got[i]) end
    prod:disconnect()
  end))

  --[[ consumers in separate processes ]]

  it("4 consumer processes: 10,000 items, sum checked, none lost, none twice",
  async(function()
    local name = newname()
    local N = 10000
    local kids = {}
    for i = 1, 4 do kids[i] = spawn_consumer(name) end
    local q = corun.redis.queue(url, name)
    -- 10 producer tasks share the queue object (one connection)
    corun.gather((function()
      local t = {}
      for k = 0, 9 do
        t[#t + 1] = function()
          for i = k * N // 10 + 1, (k + 1) * N // 10 do q:put(i) end
        end
      end
      return t
    end)())
    assert.is_true(q:join(60))
    q:close()
    local items, sum, busy = 0, 0, 0
    for _, p in ipairs(kids) do
      local out = finish(p)
      local a, b = out:match("^done (%d+) (%d+)\n$")
      assert(a, "unexpected consumer output: " .. out)
      items, sum = items + tonumber(a), sum + tonumber(b)
      if tonumber(a) > 0 then busy = busy + 1 end
    end
    assert.equal(N, items)
    assert.equal(N * (N + 1) // 2, sum)
    assert.is_true(busy >= 2, "only " .. busy .. " consumers got items")
    local r <close> = corun.redis.connect(url)
    counted_once(r, name .. ":count", N)
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    assert.equal(0, r:call("XLEN", name .. ":dead"))
    q:disconnect()
  end))

  it("a consumer killed with SIGKILL while holding items: they are re-delivered and processed exactly once",
  async(function()
    local name = newname()
    local N = 200
    local q = corun.redis.queue(url, name)
    for i = 1, N do q:put(i) end
    local holder = spawn_consumer(name, 1, "hold")
    local line = holder.stdout:read("l", 30)
    local held = {}
    for id in assert(line, "the holder said nothing"):gmatch("%d+") do
      held[#held + 1] = tonumber(id)
    end
    assert.equal(5, #held)
    assert.is_true(holder:kill("kill"))
    assert.same({ 0, "kill" }, { holder:wait(10) })
    local r <close> = corun.redis.connect(url)
    -- the 5 its task got and 5 more prefetched (prefetch 10): all held
    assert.equal(10, r:call("XPENDING", name, "corun")[1])
    local t0 = corun.time()
    local kids = {}
    for i = 1, 3 do kids[i] = spawn_consumer(name, 1) end
    assert.is_true(q:join(30))
    local waited = corun.time() - t0
    q:close()
    local items, sum = 0, 0
    for _, p in ipairs(kids) do
      local a, b = finish(p):match("^done (%d+) (%d+)\n$")
      items, sum = items + tonumber(a), sum + tonumber(b)
    end
    assert.equal(N, items)            -- the 5 held items once more, no more
    assert.equal(N * (N + 1) // 2, sum)
    counted_once(r, name .. ":count", N)
    for _, item in ipairs(held) do
      assert.equal("1", r:call("HGET", name .. ":count", item))
    end
    assert.equal(0, r:call("XPENDING", name, "corun")[1])
    -- they waited out the visibility (1 s) before being claimed
    assert.is_true(waited >= 0.9, "re-delivered after " .. waited .. " s")
    q:disconnect()
  end))

  it("join across processes: a producer process joins while consumer processes work",
  async(function()
    local name = newname()
    local N = 2000
    local kids = { spawn_consumer(name), spawn_consumer(name) }
    local producer = assert(corun.process.spawn(CORUN,
      { producer_script, url, name, tostring(N) }, { stdout = "pipe" }))
    assert.equal("put " .. N, producer.stdout:read("l", 30))
    -- join returns only when every item has been counted and acknowledged
    assert.equal("joined " .. N, producer.stdout:read("l", 60))
    finish(producer)
    local q = corun.redis.queue(url, name)
    assert.is_true(q:join(0))
    q:close()
    local items = 0
    for _, p in ipairs(kids) do
      items = items + tonumber(finish(p):match("^done (%d+) "))
    end
    assert.equal(N, items)
    local r <close> = corun.redis.connect(url)
    counted_once(r, name .. ":count", N)
    q:disconnect()
  end))
end)
