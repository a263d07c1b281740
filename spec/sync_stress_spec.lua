-- spec/sync_stress_spec.lua: the sync primitives (src/sync.c) under
-- hundreds of tasks, random timeouts and random cancellations, all drawn
-- from a deterministic LCG and run under the virtual clock. Each run checks
-- an invariant at the end.

local corun = require "corun"
local helper = require "helper"

-- Cancel n random tasks of 'all' at random times; counts in st.cancels.
local function chaos(rnd, all, n, step, st)
  return corun.spawn(function()
    for _ = 1, n do
      corun.sleep((rnd(6) - 1) * step)
      if all[rnd(#all)]:cancel("chaos") then st.cancels = st.cancels + 1 end
    end
  end)
end

-- Join every task of 'all': each finished normally or was cancelled.
local function join_all(all)
  for _, t in ipairs(all) do
    local ok, e = pcall(t.join, t)
    assert(ok or corun.is_cancelled(e), tostring(e))
  end
end

-- pcall(fn, ...) that counts a Cancelled error in st[key] and re-raises
-- every error; returns fn's results.
local function counted(st, key, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if corun.is_cancelled(r[2]) then st[key] = st[key] + 1 end
  error(r[2], 0)
end

--[[ lock / rlock ]]

-- Workers increment a counter inside the lock with a yield between the
-- read and the write, entering by acquire(timeout)/release, hold() or
-- with(). A lost update (counter < done) or two tasks inside at once would
-- mean the lock let two in.
local function lock_stress(seed, make, ntasks, rounds)
  local rnd = helper.lcg(seed)
  local l
  local reentrant = make == corun.rlock
  local counter, done, inside, max_inside = 0, 0, 0, 0
  local st = { timeouts = 0, cancels = 0, cancelled = 0, entered = 0 }
  local function timeout()
    if rnd(3) == 1 then return (rnd(6) - 1) * 0.25 end
  end
  local function critical()
    inside = inside + 1
    local _ <close> = helper.closer(function() inside = inside - 1 end)
    if inside > max_inside then max_inside = inside end
    st.entered = st.entered + 1
    local v = counter
    corun.sleep((rnd(3) - 1) * 0.125)
    if reentrant and rnd(2) == 1 then
      local _ <close> = l:hold()
      corun.sleep(0)
    end
    counter = v + 1
    done = done + 1
  end
  local function worker()
    for _ = 1, rounds do
      local m = rnd(3)
      if m == 1 then
        local ok, why = counted(st, "cancelled", l.acquire, l, timeout())
        if ok then
          local ok2, e = pcall(critical)
          l:release()
          if not ok2 then
            if corun.is_cancelled(e) then st.cancelled = st.cancelled + 1 end
            error(e, 0)
          end
        else
          assert(why == "timeout", tostring(why))
          st.timeouts = st.timeouts + 1
        end
      elseif m == 2 then
        local _ <close> = counted(st, "cancelled", l.hold, l)
        critical()
      else
        counted(st, "cancelled", l.with, l, critical)
      end
      if rnd(3) == 1 then corun.sleep((rnd(4) - 1) * 0.125) end
    end
  end
  corun.run({ clock = "virtual" }, function()
    l = make()
    local all = {}
    for i = 1, ntasks do all[i] = corun.spawn(worker) end
    chaos(rnd, all, ntasks // 3, 0.25, st):join()
    join_all(all)
    assert(not l:locked(), "lock still held at the end")
  end)
  assert.equal(done, counter)
  assert.equal(0, inside)
  assert.equal(1, max_inside)
  return st, done
end

describe("lock stress", function()
  after_each(helper.check)

  it("a counter updated under a lock is exact (lock)", function()
    local st, done = lock_stress(11, corun.lock, 300, 5)
    assert.is_true(done > 500, "done " .. done)
    assert.is_true(st.timeouts > 0)
    assert.is_true(st.cancels > 50)
    assert.is_true(st.cancelled > 0)
  end)

  it("a counter updated under a lock is exact (rlock, nested)", function()
    local st, done = lock_stress(12, corun.rlock, 300, 5)
    assert.is_true(done > 500, "done " .. done)
    assert.is_true(st.timeouts > 0)
    assert.is_true(st.cancelled > 0)
  end)
end)

--[[ semaphore / bounded_semaphore ]]

-- Workers hold k permits at most; some give theirs back from a callback
-- later. The holders never exceed k, value() is k again at the end, and a
-- bounded semaphore is never over-released.
local function sem_stress(seed, make, k, ntasks, rounds)
  local rnd = helper.lcg(seed)
  local s
  local holders, max_holders = 0, 0
  local st = { timeouts = 0, cancels = 0, cancelled = 0, entered = 0,
               callback_releases = 0 }
  local cb_errors = {}
  local function timeout()
    if rnd(3) == 1 then return (rnd(6) - 1) * 0.25 end
  end
  local function enter()
    holders = holders + 1
    if holders > max_holders then max_holders = holders end
    assert(holders <= k, "more holders than permits")
    st.entered = st.entered + 1
  end
  local function critical()
    enter()
    local _ <close> = helper.closer(function() holders = holders - 1 end)
    corun.sleep((rnd(4) - 1) * 0.125)
  end
  local function worker()
    for _ = 1, rounds do
      local m = rnd(4)
      if m == 1 then
        local ok, why = counted(st, "cancelled", s.acquire, s, timeout())
        if ok then
          local ok2, e = pcall(critical)
          s:release()
          if not ok2 then error(e, 0) end
        else
          assert(why == "timeout", tostring(why))
          st.timeouts = st.timeouts + 1
        end
      elseif m == 2 then
        local _ <close> = counted(st, "cancelled", s.hold, s)
        critical()
      elseif m == 3 then
        counted(st, "cancelled", s.with, s, critical)
      else      -- the permit is given back by a callback, later
        if counted(st, "cancelled", s.acquire, s, timeout()) then
          enter()
          corun.call_later((rnd(4) - 1) * 0.125, function()
            holders = holders - 1
            local ok, e = pcall(s.release, s)
            if not ok then cb_errors[#cb_errors + 1] = tostring(e) end
            st.callback_releases = st.callback_releases + 1
          end)
        else
          st.timeouts = st.timeouts + 1
        end
      end
      if rnd(3) == 1 then corun.sleep((rnd(4) - 1) * 0.125) end
    end
  end
  corun.run({ clock = "virtual" }, function()
    s = make(k)
    local all = {}
    for i = 1, ntasks do all[i] = corun.spawn(worker) end
    chaos(rnd, all, ntasks // 3, 0.25, st):join()
    join_all(all)
    corun.sleep(10)   -- the callbacks' releases
    assert(s:value() == k, ("value %d, expected %d"):format(s:value(), k))
  end)
  assert.same({}, cb_errors)
  assert.equal(0, holders)
  assert.equal(k, max_holders)
  return st
end

describe("semaphore stress", function()
  after_each(helper.check)

  it("never has more holders than permits (semaphore)", function()
    local st = sem_stress(21, corun.semaphore, 5, 300, 5)
    assert.is_true(st.entered > 500)
    assert.is_true(st.timeouts > 0)
    assert.is_true(st.cancelled > 0)
    assert.is_true(st.callback_releases > 0)
  end)

  it("never has more holders than permits (bounded_semaphore)", function()
    local st = sem_stress(22, corun.bounded_semaphore, 3, 300, 5)
    assert.is_true(st.entered > 500)
    assert.is_true(st.cancelled > 0)
  end)

  it("works as a plain lock (one permit)", function()
    local st = sem_stress(23, corun.bounded_semaphore, 1, 200, 4)
    assert.is_true(st.entered > 200)
  end)
end)

--[[ event ]]

-- Waiters wait with random timeouts while a setter sets and clears at
-- random; every wait ends with true (and a set happened, or the event was
-- set already), with a timeout after exactly its delay, or with Cancelled.
local function event_stress(seed, nwaiters, rounds)
  local rnd = helper.lcg(seed)
  local e
  local nsets = 0
  local st = { ["true"] = 0, timeout = 0, cancelled = 0, cancels = 0 }
  local function waiter()
    for _ = 1, rounds do
      local was, seq0, t0 = e:is_set(), nsets, corun.time()
      local T = rnd(3) > 1 and (rnd(8) - 1) * 0.25 or nil
      local ok, why = counted(st, "cancelled", e.wait, e, T)
      if ok == true then
        assert(why == nil)
        assert(was or nsets > seq0, "woken with true without a set")
        st["true"] = st["true"] + 1
      else
        assert(ok == nil and why == "timeout", tostring(why))
        assert(T and math.abs(corun.time() - t0 - T) < 1e-6,
               "timed out after " .. (corun.time() - t0))
        assert(not was)
        st.timeout = st.timeout + 1
      end
      if rnd(2) == 1 then corun.sleep((rnd(4) - 1) * 0.125) end
    end
  end
  corun.run({ clock = "virtual" }, function()
    e = corun.event()
    local all = {}
    for i = 1, nwaiters do all[i] = corun.spawn(waiter) end
    local stop = false
    local setter = corun.spawn(function()
      while not stop do
        corun.sleep(rnd(8) * 0.0625)
        if rnd(3) == 1 then
          nsets = nsets + 1
          e:set()
        else
          e:clear()
        end
      end
    end)
    chaos(rnd, all, nwaiters // 3, 0.03125, st):join()
    corun.sleep(5)
    stop = true
    setter:join()
    nsets = nsets + 1
    e:set()          -- whoever still waits gets true
    join_all(all)
  end)
  return st
end

describe("event stress", function()
  after_each(helper.check)

  it("every wait ends with true, a timeout or Cancelled", function()
    local st = event_stress(31, 300, 8)
    assert.is_true(st["true"] > 100)
    assert.is_true(st.timeout > 100)
    assert.is_true(st.cancelled > 10)
  end)

  it("every wait ends with true, a timeout or Cancelled (other seed)",
  function()
    local st = event_stress(32, 200, 12)
    assert.is_true(st["true"] > 100)
    assert.is_true(st.cancelled > 10)
  end)
end)

--[[ condition ]]

-- Consumers wait on a condition (wait or wait_for, hold or with, nested on
-- an rlock), take one item per wake, then stay away for REST seconds. Each
-- round starts quiet (every consumer inside wait); producer tasks append a
-- few unique items, each under the lock with notify(1), sometimes holding
-- the lock a while and sometimes cancelling the consumer most likely
-- notified (before it runs, or while it waits to get the lock back), while
-- random cancellations hit producers and consumers. Every item must then
-- be taken before any consumer comes back on its own: an item left in the
-- buffer means a notification was lost. In the end no item is lost or
-- taken twice.
local REST = 5
local function condition_stress(seed, make_lock, ncons, nrounds, timeouts)
  local rnd = helper.lcg(seed)
  local c
  local reentrant = make_lock == corun.rlock
  local buf, produced, recv = {}, {}, {}
  local closing = false
  local waitq = {}   -- consumers inside wait, oldest first (as notify sees)
  local st = { cancels = 0, cancelled = 0, timeouts = 0, got = 0,
               targeted = 0 }
  local function producer(first, n)
    for item = first, first + n - 1 do
      local function put()
        buf[#buf + 1] = item
        produced[item] = true
        c:notify(1)
        -- keep the lock a while: the notified consumer queues for it
        if rnd(2) == 1 then corun.sleep((rnd(3) - 1) * 0.03125) end
        if rnd(3) == 1 and waitq[1] then
          if rnd(2) == 1 then corun.sleep(0) end
          if waitq[1]:cancel("notified") then
            st.targeted = st.targeted + 1
          end
          if rnd(2) == 1 then corun.sleep(0.03125) end
        end
      end
      if rnd(2) == 1 then
        counted(st, "cancelled", c.with, c, put)
      else
        local _ <close> = counted(st, "cancelled", c.hold, c)
        put()
      end
    end
  end
  local function ready() return #buf > 0 or closing end
  local function consumer()
    while true do
      do
        local _ <close> = counted(st, "cancelled", c.hold, c)
        local nested = reentrant and rnd(2) == 1
        if nested then c:acquire() end
        local ok, e = pcall(function()
          while not ready() do
            local T = timeouts and rnd(3) == 1 and rnd(4) * 0.25 or nil
            local r, why, me = nil, nil, corun.current()
            waitq[#waitq + 1] = me
            local _ <close> = helper.closer(function()
              for i = 1, #waitq do
                if waitq[i] == me then table.remove(waitq, i) break end
              end
            end)
            if rnd(2) == 1 then r, why = c:wait(T)
            else r, why = c:wait_for(ready, T) end
            if r == nil then
              assert(why == "timeout", tostring(why))
              st.timeouts = st.timeouts + 1
            end
          end
        end)
        assert(c:locked())
        if nested then c:release() end
        if not ok then
          if corun.is_cancelled(e) then st.cancelled = st.cancelled + 1 end
          error(e, 0)
        end
        if #buf == 0 then return end
        local item = table.remove(buf, 1)
        recv[item] = (recv[item] or 0) + 1
        st.got = st.got + 1
      end
      corun.sleep(REST)
    end
  end
  corun.run({ clock = "virtual" }, function()
    c = corun.condition(make_lock())
    local consumers, all = {}, {}
    local next_item = 1
    for round = 1, nrounds do
      local live = 0       -- top the consumers up to ncons
      for _, t in ipairs(consumers) do
        if not t:done() then live = live + 1 end
      end
      for _ = live + 1, ncons do
        consumers[#consumers + 1] = corun.spawn(consumer)
      end
      corun.sleep(REST + 1)                 -- quiet: all inside wait
      local prods = {}
      for p = 1, rnd(3) do
        local n = rnd(4)
        prods[p] = corun.spawn(producer, next_item, n)
        next_item = next_item + n
        all[#all + 1] = prods[p]
      end
      local victims = { prods[rnd(#prods)] }
      for _ = 1, 2 do victims[#victims + 1] = consumers[rnd(#consumers)] end
      chaos(rnd, victims, #victims, 0.03125, st):join()
      join_all(prods)
      corun.sleep(REST / 2)       -- nobody is back from a rest yet
      if not timeouts then
        assert(#buf == 0, ("round %d: %d item(s) left in the buffer with "
                           .. "consumers waiting (a lost notification)")
                          :format(round, #buf))
      end
    end
    c:with(function()
      closing = true
      c:notify_all()
    end)
    join_all(consumers)
    assert(not c:locked())
  end)
  local n = 0
  for item in pairs(produced) do
    n = n + 1
    local r = recv[item] or 0
    local left = 0
    for _, v in ipairs(buf) do if v == item then left = left + 1 end end
    assert(r + left == 1, ("item %d received %d, left %d"):format(item, r,
           left))
  end
  for item in pairs(recv) do assert(produced[item], "phantom " .. item) end
  assert.equal(0, #buf)
  return st, n
end

describe("condition stress", function()
  after_each(helper.check)

  it("notify(1) producer/consumer loses no item nor wakeup (lock)",
  function()
    local st, n = condition_stress(41, corun.lock, 30, 60, false)
    assert.is_true(n > 150, "produced " .. n)
    assert.is_true(st.targeted > 20, "targeted " .. st.targeted)
    assert.is_true(st.cancelled > 40, "cancelled " .. st.cancelled)
  end)

  it("notify(1) producer/consumer loses no item nor wakeup (rlock)",
  function()
    local st, n = condition_stress(42, corun.rlock, 30, 60, false)
    assert.is_true(n > 150, "produced " .. n)
    assert.is_true(st.targeted > 20, "targeted " .. st.targeted)
  end)

  it("producer/consumer with timed waits loses no item", function()
    local st, n = condition_stress(43, corun.lock, 30, 60, true)
    assert.is_true(n > 150, "produced " .. n)
    assert.is_true(st.timeouts > 0)
    assert.is_true(st.cancelled > 40, "cancelled " .. st.cancelled)
  end)
end)

--[[ barrier ]]

-- Workers pass a barrier of n round after round with random timeouts and
-- cancellations; a monitor resets it whenever it is broken. The epoch
-- (bumped by the releaser and by each reset) tags every success: in each
-- epoch the indices returned are a permutation of 0..n-1, or there are none
-- (that round was broken). An arrival while the barrier drains joins a
-- later round, so a success is tagged when wait returns: the releaser goes
-- on at once and bumps the epoch, the tasks it released resume after it
-- (and no reset can come between: the barrier is not broken while it
-- drains).
local function barrier_stress(seed, n, ntasks, rounds)
  local rnd = helper.lcg(seed)
  local b
  local epoch = 0
  local gens = {}
  local st = { ok = 0, timeout = 0, broken = 0, cancelled = 0, cancels = 0,
               resets = 0 }
  local waiting = {}   -- tasks inside wait, for the chaos to pick from
  local function worker()
    local me = corun.current()
    for _ = 1, rounds do
      corun.sleep((rnd(8) - 1) * 0.125)
      local T = rnd(3) == 1 and rnd(4) * 0.125 or nil
      waiting[#waiting + 1] = me
      local k, why
      do
        local _ <close> = helper.closer(function()
          for i = 1, #waiting do
            if waiting[i] == me then table.remove(waiting, i) break end
          end
        end)
        k, why = counted(st, "cancelled", b.wait, b, T)
      end
      if k then
        assert(math.type(k) == "integer" and k >= 0 and k < n, tostring(k))
        local ep = k == n - 1 and epoch or epoch - 1
        gens[ep] = gens[ep] or {}
        gens[ep][#gens[ep] + 1] = k
        if k == n - 1 then epoch = epoch + 1 end
        st.ok = st.ok + 1
      else
        assert(why == "timeout" or why == "broken", tostring(why))
        st[why] = st[why] + 1
        corun.sleep(0.125)
      end
    end
  end
  corun.run({ clock = "virtual" }, function()
    b = corun.barrier(n)
    local all = {}
    for i = 1, ntasks do all[i] = corun.spawn(worker) end
    local stop = false
    local monitor = corun.spawn(function()
      while not stop do
        corun.sleep(0.0625)
        if b:broken() then
          b:reset()
          epoch = epoch + 1
          st.resets = st.resets + 1
        end
      end
    end)
    corun.sleep(0.0625)   -- off the workers' grid: not in a release turn
    for _ = 1, ntasks // 3 do    -- cancel tasks inside wait, mostly
      corun.sleep((rnd(6) - 1) * 0.125)
      local pool = rnd(4) > 1 and #waiting > 0 and waiting or all
      if pool[rnd(#pool)]:cancel("chaos") then st.cancels = st.cancels + 1 end
    end
    corun.sleep(20)
    stop = true
    monitor:join()
    b:abort()       -- stragglers that can never make up a round
    join_all(all)
  end)
  local complete = 0
  for ep, ks in pairs(gens) do
    table.sort(ks)
    local want = {}
    for i = 1, n do want[i] = i - 1 end
    assert(#ks == n, ("epoch %d: indices {%s} from %d of %d parties"):format(
           ep, table.concat(ks, ","), #ks, n))
    assert.same(want, ks)
    complete = complete + 1
  end
  return st, complete
end

describe("barrier stress", function()
  after_each(helper.check)

  it("each round's indices are a permutation of 0..n-1 (n = 5)", function()
    local st, complete = barrier_stress(51, 5, 60, 20)
    assert.is_true(complete > 50, "complete rounds " .. complete)
    assert.is_true(st.timeout > 0)
    assert.is_true(st.broken > 0)
    assert.is_true(st.cancelled > 0)
    assert.is_true(st.resets > 0)
  end)

  it("each round's indices are a permutation of 0..n-1 (n = 3)", function()
    local st, complete = barrier_stress(52, 3, 30, 30)
    assert.is_true(complete > 50, "complete rounds " .. complete)
    assert.is_true(st.cancelled > 0)
  end)
end)
