-- spec/regress/016_barrier_states_spec.lua: issue 16. The barrier has
-- asyncio's states (filling, draining, resetting, broken): a cancelled
-- waiter just leaves the count; tasks released but not yet resumed see a
-- reset()/abort() as broken; arrivals during draining or resetting wait
-- for it to end; a timed-out wait breaks the round it belonged to
-- (threading.Barrier). And no sequence of wait/reset/abort/cancel leaves a
-- task blocked for ever (the stress at the end).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async, async_virtual = cb.async, cb.async_virtual

local function add(list, v) list[#list + 1] = v end

local function pack(...) return { n = select("#", ...), ... } end

local function join_cancelled(t)
  local e = catch(t.join, t)
  assert(corun.is_cancelled(e), "expected Cancelled, got " .. tostring(e))
end

describe("regress 016: barrier states", function()
  after_each(helper.check)

  it("state() and tostring name the state", async(function()
    local b = corun.barrier(2)
    assert.equal("filling", b:state())
    assert.truthy(tostring(b):find("(filling, 0/2)", 1, true))
    local t = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.truthy(tostring(b):find("(filling, 1/2)", 1, true))
    assert.equal(1, b:wait())
    assert.equal("draining", b:state())   -- t has not resumed yet
    assert.equal(0, b:n_waiting())
    assert.equal(0, t:join())
    assert.equal("filling", b:state())
    b:abort()
    assert.equal("broken", b:state())
    assert.truthy(tostring(b):find("(broken, 0/2)", 1, true))
    b:reset()
    assert.equal("filling", b:state())
  end))

  it("a cancelled filling waiter leaves the count; the round still fills",
  async(function()
    local b = corun.barrier(3)
    local x = corun.spawn(function() return b:wait() end)
    local y = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    x:cancel()
    corun.sleep(0)
    assert.equal(1, b:n_waiting())
    assert.is_false(b:broken())
    join_cancelled(x)
    local z = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(2, b:wait())
    assert.same({ 0, 1 }, { y:join(), z:join() })
  end))

  it("arrivals while it drains wait until the released tasks have resumed",
  async(function()
    local b = corun.barrier(2)
    local log = {}
    local x = corun.spawn(function()
      add(log, "x " .. b:wait())
      add(log, "x " .. b:wait())
    end)
    corun.sleep(0)
    -- the main task trips it and waits again at once: it must not make a
    -- round with itself or skip x's turn
    add(log, "main " .. b:wait())
    assert.equal("draining", b:state())
    local r = pack(b:wait())
    add(log, "main " .. tostring(r[1]))
    x:join()
    -- x arrived first in the second round (the main task was blocked)
    assert.same({ "main 1", "x 0", "main 1", "x 0" }, log)
  end))

  it("reset while draining: tasks not yet resumed get broken; arrivals wait "
     .. "for the reset to end", async(function()
    local b = corun.barrier(3)
    local got = {}
    local ts = {}
    for i = 1, 2 do
      ts[i] = corun.spawn(function() got[i] = pack(b:wait()) end)
    end
    corun.sleep(0)
    assert.equal(2, b:wait())            -- trips: ts are released
    b:reset()
    assert.equal("resetting", b:state())
    local late = corun.spawn(function() return b:wait() end)
    for i = 1, 2 do ts[i]:join() end
    assert.same({ n = 2, nil, "broken" }, got[1])
    assert.same({ n = 2, nil, "broken" }, got[2])
    assert.equal("filling", b:state())
    corun.sleep(0)
    assert.equal(1, b:n_waiting())       -- late arrived after the reset
    local other = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(2, b:wait())
    assert.same({ 0, 1 }, { late:join(), other:join() })
  end))

  it("abort while draining: released tasks not yet resumed and blocked "
     .. "arrivals get broken", async(function()
    local b = corun.barrier(2)
    local x = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(1, b:wait())
    local blocked = corun.spawn(function() return b:wait() end)
    corun.sleep(0)                        -- x drains; blocked ... see below
    b:abort()
    assert.same({ nil, "broken" }, { blocked:join() })
    assert.equal(0, x:join())             -- x resumed before the abort
    local y = corun.spawn(function() return b:wait() end)
    assert.same({ nil, "broken" }, { y:join() })
    -- and released-but-not-resumed sees an abort as broken:
    local b2 = corun.barrier(2)
    local z = corun.spawn(function() return b2:wait() end)
    corun.sleep(0)
    assert.equal(1, b2:wait())
    b2:abort()
    assert.same({ nil, "broken" }, { z:join() })
  end))

  it("an arrival blocked while it drains can be cancelled; the barrier "
     .. "does not count it", async(function()
    local b = corun.barrier(2)
    local x = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    -- c and k are ready before the trip, so they run before x resumes
    local c = corun.spawn(function() return b:wait() end)
    local k = corun.spawn(function()
      assert.equal("draining", b:state())   -- c is blocked
      c:cancel()
    end)
    assert.equal(1, b:wait())              -- trips: x is released
    k:join()
    join_cancelled(c)
    assert.equal(0, x:join())
    assert.equal("filling", b:state())
    assert.equal(0, b:n_waiting())
    assert.is_false(b:broken())
  end))

  it("a wait that times out breaks only the round it belongs to",
  async_virtual(function()
    local b = corun.barrier(3)
    -- w1's and w2's timers are armed before a's: at t=1 they arrive after
    -- a's deadline has passed but before a resumes, and fill the round
    local w1 = corun.spawn(function() corun.sleep(1) return b:wait() end)
    local w2 = corun.spawn(function() corun.sleep(1) return b:wait() end)
    local y = corun.spawn(function() return b:wait() end)
    local a = corun.spawn(function() return b:wait(1) end)
    corun.sleep(0)
    assert.equal(2, b:n_waiting())
    assert.same({ 0, 1, 2 }, { y:join(), w1:join(), w2:join() })
    assert.same({ nil, "timeout" }, { a:join() })
    assert.is_false(b:broken())          -- its round completed anyway
    -- while a timeout in a round still filling breaks it (threading)
    local c = corun.spawn(function() return b:wait() end)
    assert.same({ nil, "timeout" }, { b:wait(1) })
    assert.same({ nil, "broken" }, { c:join() })
    assert.is_true(b:broken())
  end))

  it("reset with nobody inside makes it filling at once", async(function()
    local b = corun.barrier(2)
    b:abort()
    b:reset()
    assert.equal("filling", b:state())
    local t = corun.spawn(function() return b:wait() end)
    corun.sleep(0)
    assert.equal(1, b:wait())
    assert.equal(0, t:join())
  end))
end)

--[[ stress ]]

-- Workers wait round after round, some with timeouts; some of them call
-- reset() or abort() right after passing (while the others drain); a
-- chaos task cancels tasks and resets or aborts at random; a monitor resets
-- a broken barrier now and then. Every result must be an index in 0..n-1,
-- nil,"timeout" or nil,"broken". Once the chaos stops and the workers have
-- had time to use up their rounds, every live worker must be a filling
-- waiter (none stuck while it drains or resets), fewer than n of them; then
-- an abort ends them all within a bound.
local function stress(seed, n, ntasks, rounds)
  local rnd = helper.lcg(seed)
  local st = { ok = 0, timeout = 0, broken = 0, cancelled = 0, resets = 0,
               aborts = 0 }
  local b
  local inwait = {}   -- tasks inside wait, for the chaos to pick from
  local function worker()
    for _ = 1, rounds do
      corun.sleep((rnd(8) - 1) * 0.125)
      local T = rnd(4) == 1 and rnd(4) * 0.125 or nil
      local me = corun.current()
      inwait[#inwait + 1] = me
      local r = table.pack(pcall(b.wait, b, T))
      for i = 1, #inwait do
        if inwait[i] == me then table.remove(inwait, i) break end
      end
      if not r[1] then
        if corun.is_cancelled(r[2]) then st.cancelled = st.cancelled + 1 end
        error(r[2], 0)
      end
      local k, why = r[2], r[3]
      if k then
        assert(math.type(k) == "integer" and k >= 0 and k < n, tostring(k))
        st.ok = st.ok + 1
        local p = rnd(30)
        if p == 1 then b:reset() st.resets = st.resets + 1
        elseif p == 2 then b:abort() st.aborts = st.aborts + 1 end
      else
        assert(why == "timeout" or why == "broken", tostring(why))
        st[why] = st[why] + 1
      end
    end
  end
  local live, waiting, state, bound_ok
  corun.run({ clock = "virtual" }, function()
    b = corun.barrier(n)
    local all = {}
    for i = 1, ntasks do all[i] = corun.spawn(worker) end
    local stop = false
    local monitor = corun.spawn(function()
      while not stop do
        corun.sleep(0.5)
        if b:broken() then b:reset() st.resets = st.resets + 1 end
      end
    end)
    for _ = 1, ntasks do
      corun.sleep((rnd(4) - 1) * 0.125)
      local p = rnd(10)
      if p <= 6 then
        local pool = p <= 4 and #inwait > 0 and inwait or all
        pool[rnd(#pool)]:cancel("chaos")
      elseif p <= 8 then
        b:reset() st.resets = st.resets + 1
      elseif p == 9 then
        b:abort() st.aborts = st.aborts + 1
      end
    end
    stop = true
    monitor:join()
    b:reset()
    corun.sleep(rounds * 2)          -- enough for every worker's rounds
    live = 0
    for _, t in ipairs(all) do if not t:done() then live = live + 1 end end
    waiting, state = b:n_waiting(), b:state()
    b:abort()
    local _, pending = corun.wait(all, { timeout = 1 })
    bound_ok = #pending == 0
    for _, t in ipairs(all) do pcall(t.join, t) end
  end)
  assert.is_true(bound_ok, "tasks still blocked 1 s after the abort")
  -- draining and resetting always end; a broken barrier lets every worker
  -- use up its rounds (n_waiting() is then 0)
  assert(state == "filling" or state == "broken", state)
  assert.equal(live, waiting)
  assert.is_true(live < n, live .. " live waiters of " .. n .. " parties")
  return st
end

describe("regress 016: barrier stress", function()
  after_each(helper.check)

  for _, c in ipairs {
    { 161, 7, 60, 25 }, { 162, 2, 20, 40 }, { 163, 13, 100, 15 },
    { 164, 5, 40, 30 },
  } do
    it(("seed %d: %d parties, %d tasks, %d rounds"):format(table.unpack(c)),
    function()
      local st = stress(table.unpack(c))
      if os.getenv("STRESS_STATS") then
        local ks = {}
        for k, v in pairs(st) do ks[#ks + 1] = k .. "=" .. v end
        table.sort(ks)
        print(table.concat(ks, " "))
      end
      assert.is_true(st.ok > 0, "ok")
      assert.is_true(st.broken > 0, "broken")
      assert.is_true(st.timeout > 0, "timeout")
      assert.is_true(st.cancelled > 0, "cancelled")
      assert.is_true(st.resets > 0 and st.aborts > 0)
    end)
  end
end)

describe("regress 016: semaphore:locked(), queue maxsize", function()
  after_each(helper.check)

  it("semaphore:locked() is true when acquire would wait", async(function()
    local s = corun.semaphore(1)
    assert.is_false(s:locked())
    s:acquire()
    assert.is_true(s:locked())
    local t = corun.spawn(function() return s:acquire() end)
    corun.sleep(0)
    s:release()            -- handed to t: still locked
    assert.is_true(s:locked())
    assert.is_true(t:join())
    assert.is_true(corun.semaphore(0):locked())
    assert.is_false(corun.bounded_semaphore(2):locked())
  end))

  it("queue(1.3) says maxsize must be an integer", function()
    for _, name in ipairs { "queue", "lifo_queue", "priority_queue" } do
      local e = tostring(catch(corun[name], 1.3))
      assert.equal("bad argument #1 to '" .. name
                   .. "' (maxsize must be an integer)",
                   (e:gsub("^[^:]*:%d+: ", "")))
      assert.truthy(tostring(catch(corun[name], "x")):find("integer expected",
                                                          1, true))
    end
    assert.equal(3, corun.queue(3.0):maxsize())
    assert.equal(0, corun.queue():maxsize())
  end)
end)
