-- spec/asyncio_port_spec.lua: CPython's own tests of asyncio's queues and
-- synchronisation primitives (Lib/test/test_asyncio/test_queues.py and
-- test_locks.py), ported case by case to corun. Each `it` names the Python
-- class and case it ports. Mapping: asyncio.Queue -> corun.queue,
-- create_task -> corun.spawn, await t -> t:join(), asyncio.sleep(0) ->
-- corun.sleep(0), wait_for(x, t) -> the timeout argument, QueueEmpty /
-- QueueFull / BrokenBarrierError / QueueShutDown -> nil, "empty" / "full" /
-- "broken" / "closed", async with -> with/hold.
--
-- Cases whose name starts with "[corun differs]" meet one of corun's
-- documented deliberate choices (docs/asyncio.md): they assert corun's
-- behaviour, and the comment above each says what asyncio does instead.
-- Not ported: printed formats (repr; but the barrier's state names are
-- checked through tostring and bar:state()), TypeErrors of `await lock`,
-- loop arguments, generic aliases, private-attribute checks, immediate
-- shutdown.
--
-- 106 cases (the join and shutdown cases run for each of the three queue
-- kinds). On the code before issue 16: 92 passed, 14 failed: 8 barrier
-- cases (no draining/resetting states, a cancelled waiter broke the
-- barrier, no state in tostring), 5 for the missing semaphore:locked(),
-- and test_float_maxsize's message. After: 106 pass. The 7 "[corun
-- differs]" cases pass because they assert corun's documented behaviour;
-- as asyncio states them they fail, by design.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local async, async_virtual = cb.async, cb.async_virtual

local function add(list, v) list[#list + 1] = v end

local function spawn_n(n, fn)
  local ts = {}
  for i = 1, n do ts[i] = corun.spawn(fn) end
  return ts
end

-- gather_tasks of BarrierTests: spawn n tasks running fn, join them all;
-- returns the list of their first results and the tasks.
local function gather_n(n, fn)
  local ts = spawn_n(n, fn)
  local res = {}
  for i = 1, n do res[i] = ts[i]:join() end
  return res, ts
end

local function join_cancelled(t)
  local e = catch(t.join, t)
  assert(corun.is_cancelled(e), "expected Cancelled, got " .. tostring(e))
  assert.equal("cancelled", t:status())
end

local function range0(n)
  local r = {}
  for i = 1, n do r[i] = i - 1 end
  return r
end

local function sorted(t)
  local c = { table.unpack(t) }
  table.sort(c)
  return c
end

local function state(b)
  return tostring(b):match("^corun%.barrier %((%a+)")
end

local function all_true(t, n)
  assert.equal(n, #t)
  for i = 1, n do assert.is_true(t[i]) end
end

--[[ test_locks.py: LockTests ]]

describe("asyncio LockTests", function()
  after_each(helper.check)

  it("test_lock", async(function()
    assert.is_false(corun.lock():locked())
  end))

  -- asyncio: the main task releases the lock c1 and then c2 acquired (an
  -- asyncio lock has no owner). corun: only the owner may release.
  it("[corun differs] test_acquire", async(function()
    local lock = corun.lock()
    local result = {}
    assert.is_true(lock:acquire())
    local function c(n)
      return function()
        if lock:acquire() then add(result, n) end
        lock:release()
        return true
      end
    end
    local t1, t2 = corun.spawn(c(1)), corun.spawn(c(2))
    corun.sleep(0)
    assert.same({}, result)
    lock:release()
    corun.sleep(0)
    assert.same({ 1 }, result)
    local t3 = corun.spawn(c(3))
    corun.sleep(0)
    assert.same({ 1, 2, 3 }, result)
    assert.is_true(t1:join() and t2:join() and t3:join())
    -- the asyncio case's release from the main task of c1's lock:
    lock:acquire()
    local t4 = corun.spawn(function() return lock:release() end)
    assert.truthy(tostring(catch(t4.join, t4)):find("held by another task"))
    lock:release()
  end))

  it("test_acquire_cancel", async(function()
    local lock = corun.lock()
    assert.is_true(lock:acquire())
    local task = corun.spawn(function() return lock:acquire() end)
    corun.call_soon(function() task:cancel() end)
    join_cancelled(task)
    lock:release()
    assert.is_false(lock:locked())
  end))

  -- asyncio: after B is cancelled and A releases, locked() is false until C
  -- runs. corun hands the lock to C on release: locked() is already true.
  it("[corun differs] test_cancel_race", async(function()
    local lock = corun.lock()
    local function lockit(blocker)
      lock:acquire()
      if blocker then blocker:wait() end
      lock:release()
    end
    local fa = corun.event()
    local ta = corun.spawn(lockit, fa)
    corun.sleep(0)
    assert.is_true(lock:locked())
    local tb = corun.spawn(lockit)
    corun.sleep(0)
    local tc = corun.spawn(lockit)
    corun.sleep(0)
    fa:set()
    tb:cancel()
    corun.sleep(0)
    assert.is_true(lock:locked())          -- asyncio: false
    assert.is_true(ta:done())
    join_cancelled(tb)
    tc:join()
    assert.is_false(lock:locked())
  end))

  -- asyncio runs trigger() (cancel t1, release) as a callback; corun locks
  -- belong to a task, so the main task does it.
  it("test_cancel_release_race", async(function()
    local lock = corun.lock()
    local lock_count, call_count = 0, 0
    local function lockit()
      call_count = call_count + 1
      lock:acquire()
      lock_count = lock_count + 1
    end
    lock:acquire()
    local t1, t2, t3 = corun.spawn(lockit), corun.spawn(lockit),
                       corun.spawn(lockit)
    corun.sleep(0)
    t1:cancel()
    lock:release()
    join_cancelled(t1)
    corun.sleep(0)
    assert.equal(1, lock_count)
    assert.equal(3, call_count)
    assert.is_true(t2:done())
    t3:cancel()
    corun.sleep(0)
    assert.equal("cancelled", t3:status())
  end))

  it("test_finished_waiter_cancelled", async(function()
    local lock = corun.lock()
    lock:acquire()
    local tb = corun.spawn(function() return lock:acquire() end)
    corun.sleep(0)
    local tc = corun.spawn(function() return lock:acquire() end)
    tb:cancel()
    lock:release()
    corun.sleep(0)
    assert.is_true(lock:locked())
    assert.equal("cancelled", tb:status())
    tc:join()
  end))

  it("test_release_not_acquired", async(function()
    local lock = corun.lock()
    assert.truthy(tostring(catch(lock.release, lock)):find("not held"))
  end))

  it("test_release_no_waiters", async(function()
    local lock = corun.lock()
    lock:acquire()
    assert.is_true(lock:locked())
    lock:release()
    assert.is_false(lock:locked())
  end))

  it("test_context_manager", async(function()
    local lock = corun.lock()
    assert.is_false(lock:locked())
    lock:with(function() assert.is_true(lock:locked()) end)
    assert.is_false(lock:locked())
  end))
end)

--[[ test_locks.py: EventTests ]]

describe("asyncio EventTests", function()
  after_each(helper.check)

  it("test_wait", async(function()
    local ev = corun.event()
    assert.is_false(ev:is_set())
    local result = {}
    local function c(n)
      return function() if ev:wait() then add(result, n) end end
    end
    local t1, t2 = corun.spawn(c(1)), corun.spawn(c(2))
    corun.sleep(0)
    assert.same({}, result)
    local t3 = corun.spawn(c(3))
    ev:set()
    corun.sleep(0)
    assert.same({ 3, 1, 2 }, result)
    for _, t in ipairs { t1, t2, t3 } do
      assert.is_true(t:done())
      assert.is_nil(t:result())
    end
  end))

  it("test_wait_on_set", async(function()
    local ev = corun.event()
    ev:set()
    assert.is_true(ev:wait())
  end))

  it("test_wait_cancel", async(function()
    local ev = corun.event()
    local w = corun.spawn(function() return ev:wait() end)
    corun.call_soon(function() w:cancel() end)
    join_cancelled(w)
  end))

  it("test_clear", async(function()
    local ev = corun.event()
    assert.is_false(ev:is_set())
    ev:set()
    assert.is_true(ev:is_set())
    ev:clear()
    assert.is_false(ev:is_set())
  end))

  it("test_clear_with_waiters", async(function()
    local ev = corun.event()
    local result = {}
    local t = corun.spawn(function()
      if ev:wait() then add(result, 1) end
      return true
    end)
    corun.sleep(0)
    assert.same({}, result)
    ev:set()
    ev:clear()
    assert.is_false(ev:is_set())
    ev:set()
    ev:set()
    corun.sleep(0)
    assert.same({ 1 }, result)
    assert.is_true(t:done())
    assert.is_true(t:result())
  end))
end)

--[[ test_locks.py: ConditionTests ]]

describe("asyncio ConditionTests", function()
  after_each(helper.check)

  -- asyncio: the main task notifies and releases while c1 (which returned
  -- from wait holding the lock) owns it. corun: notify and release need
  -- the lock held by the calling task; here each waiter releases it.
  it("[corun differs] test_wait", async(function()
    local cond = corun.condition()
    local result = {}
    local function c(n)
      return function()
        cond:acquire()
        if cond:wait() then add(result, n) end
        cond:release()
        return true
      end
    end
    local ts = { corun.spawn(c(1)), corun.spawn(c(2)), corun.spawn(c(3)) }
    corun.sleep(0)
    assert.same({}, result)
    assert.is_false(cond:locked())
    assert.is_true(cond:acquire())
    cond:notify()
    corun.sleep(0)
    assert.same({}, result)
    assert.is_true(cond:locked())
    cond:release()
    corun.sleep(0)
    assert.same({ 1 }, result)
    cond:acquire()
    cond:notify(2)
    cond:release()
    corun.sleep(0)
    assert.same({ 1, 2, 3 }, result)
    for _, t in ipairs(ts) do assert.is_true(t:join()) end
    -- what the asyncio case does next: notify while another task holds it
    local holder = corun.spawn(function() cond:acquire() corun.sleep(1) end)
    corun.sleep(0)
    assert.truthy(tostring(catch(cond.notify, cond)):find("not held"))
    holder:cancel()
    join_cancelled(holder)
  end))

  it("test_wait_cancel", async(function()
    local cond = corun.condition()
    cond:acquire()
    local w = corun.spawn(function()
      cond:acquire()
      local _ <close> = helper.closer(function() cond:release() end)
      return cond:wait()
    end)
    cond:release()
    corun.call_soon(function() w:cancel() end)
    join_cancelled(w)
    assert.is_false(cond:locked())
  end))

  -- asyncio cancels and releases from callbacks (call_soon); corun's lock
  -- belongs to the main task, so the main task does both.
  it("test_wait_cancel_contested", async(function()
    local cond = corun.condition()
    local wait_task = corun.spawn(function()
      cond:acquire()
      return cond:wait()
    end)
    corun.sleep(0)
    assert.is_false(cond:locked())
    cond:acquire()
    assert.is_true(cond:locked())
    cond:notify()
    wait_task:cancel()
    cond:release()
    catch(wait_task.join, wait_task)
    assert.is_true(cond:locked())  -- wait_task holds it again, finished
  end))

  it("test_wait_cancel_after_notify", async(function()
    local waited = false
    local cond = corun.condition()
    local waiter = corun.spawn(function()
      cond:with(function()
        waited = true
        cond:wait()
      end)
    end)
    corun.sleep(0)
    cond:acquire()
    cond:notify()
    corun.sleep(0)
    waiter:cancel()
    corun.sleep(0)
    cond:release()
    corun.sleep(0)
    assert.equal("cancelled", waiter:status())
    assert.is_true(waited)
  end))

  it("test_wait_unacquired", async(function()
    local cond = corun.condition()
    assert.truthy(tostring(catch(cond.wait, cond)):find("not held"))
  end))

  it("test_wait_for", async(function()
    local cond = corun.condition()
    local presult = false
    local result = {}
    local t = corun.spawn(function()
      cond:acquire()
      if cond:wait_for(function() return presult end) then
        add(result, 1)
        cond:release()
      end
      return true
    end)
    corun.sleep(0)
    assert.same({}, result)
    cond:acquire() cond:notify() cond:release()
    corun.sleep(0)
    assert.same({}, result)
    presult = true
    cond:acquire() cond:notify() cond:release()
    corun.sleep(0)
    assert.same({ 1 }, result)
    assert.is_true(t:done())
    assert.is_true(t:result())
  end))

  it("test_wait_for_unacquired", async(function()
    local cond = corun.condition()
    assert.same({ 1, 2, 3 }, cond:wait_for(function() return { 1, 2, 3 } end))
    assert.truthy(tostring(catch(cond.wait_for, cond,
                                 function() return false end)):find("not held"))
  end))

  it("test_notify", async(function()
    local cond = corun.condition()
    local result = {}
    local function c(n)
      return function()
        cond:acquire()
        if cond:wait() then add(result, n) cond:release() end
        return true
      end
    end
    local ts = { corun.spawn(c(1)), corun.spawn(c(2)), corun.spawn(c(3)) }
    corun.sleep(0)
    assert.same({}, result)
    cond:acquire() cond:notify(1) cond:release()
    corun.sleep(0)
    assert.same({ 1 }, result)
    cond:acquire() cond:notify(1) cond:notify(2048) cond:release()
    corun.sleep(0)
    assert.same({ 1, 2, 3 }, result)
    for _, t in ipairs(ts) do assert.is_true(t:join()) end
  end))

  it("test_notify_all", async(function()
    local cond = corun.condition()
    local result = {}
    local function c(n)
      return function()
        cond:acquire()
        if cond:wait() then add(result, n) cond:release() end
        return true
      end
    end
    local ts = { corun.spawn(c(1)), corun.spawn(c(2)) }
    corun.sleep(0)
    assert.same({}, result)
    cond:acquire() cond:notify_all() cond:release()
    corun.sleep(0)
    assert.same({ 1, 2 }, result)
    for _, t in ipairs(ts) do assert.is_true(t:join()) end
  end))

  it("test_notify_unacquired", function()
    local cond = corun.condition()
    assert.truthy(tostring(catch(cond.notify, cond)):find("not held"))
  end)

  it("test_notify_all_unacquired", function()
    local cond = corun.condition()
    assert.truthy(tostring(catch(cond.notify_all, cond)):find("not held"))
  end)

  it("test_context_manager", async(function()
    local cond = corun.condition()
    assert.is_false(cond:locked())
    do
      local _ <close> = cond:hold()
      assert.is_true(cond:locked())
    end
    assert.is_false(cond:locked())
  end))

  it("test_explicit_lock", async(function()
    local function f(lock, cond)
      lock = lock or corun.lock()
      cond = cond or corun.condition(lock)
      assert.is_false(lock:locked())
      assert.is_false(cond:locked())
      cond:with(function()
        assert.is_true(lock:locked())
        assert.is_true(cond:locked())
      end)
      assert.is_false(lock:locked())
      assert.is_false(cond:locked())
      lock:with(function()
        assert.is_true(lock:locked())
        assert.is_true(cond:locked())
      end)
      assert.is_false(lock:locked())
      assert.is_false(cond:locked())
    end
    f()
    f(corun.lock())
    local lock = corun.lock()
    f(lock, corun.condition(lock))
  end))

  it("test_timeout_in_block", async_virtual(function()
    local cond = corun.condition()
    cond:with(function()
      assert.same({ nil, "timeout" }, { cond:wait(0.5) })
    end)
  end))
end)

--[[ test_locks.py: SemaphoreTests ]]

describe("asyncio SemaphoreTests", function()
  after_each(helper.check)

  it("test_initial_value_zero", function()
    assert.is_true(corun.semaphore(0):locked())
  end)

  it("test_semaphore", async(function()
    local sem = corun.semaphore()
    assert.equal(1, sem:value())
    assert.is_false(sem:locked())
  end))

  it("test_semaphore_value", function()
    assert.truthy(tostring(catch(corun.semaphore, -1)):find("semaphore"))
  end)

  it("test_acquire", async(function()
    local sem = corun.semaphore(3)
    local result = {}
    assert.is_true(sem:acquire())
    assert.is_true(sem:acquire())
    assert.is_false(sem:locked())
    local function c(n)
      return function() sem:acquire() add(result, n) return true end
    end
    local t1, t2, t3 = corun.spawn(c(1)), corun.spawn(c(2)), corun.spawn(c(3))
    corun.sleep(0)
    assert.same({ 1 }, result)
    assert.is_true(sem:locked())
    assert.equal(0, sem:value())
    local t4 = corun.spawn(c(4))
    sem:release()
    sem:release()
    assert.equal(0, sem:value())
    corun.sleep(0)
    assert.equal(0, sem:value())
    assert.equal(3, #result)
    assert.is_true(sem:locked())
    assert.is_true(t1:done() and t1:result())
    local n = 0
    for _, t in ipairs { t2, t3, t4 } do
      if t:done() and t:result() then n = n + 1 end
    end
    assert.equal(2, n)
    sem:release()
    for _, t in ipairs { t2, t3, t4 } do t:join() end
  end))

  it("test_acquire_cancel", async(function()
    local sem = corun.semaphore()
    sem:acquire()
    local a = corun.spawn(function() return sem:acquire() end)
    corun.call_soon(function() a:cancel() end)
    join_cancelled(a)
    sem:release()
    assert.equal(1, sem:value())
  end))

  it("test_acquire_cancel_before_awoken", async(function()
    local sem = corun.semaphore(0)
    local ts = spawn_n(4, function() return sem:acquire() end)
    corun.sleep(0)
    ts[1]:cancel()
    ts[2]:cancel()
    sem:release()
    corun.sleep(0)
    corun.sleep(0)
    assert.is_true(ts[3]:done())
    assert.is_false(ts[4]:done())
    ts[3]:cancel()
    ts[4]:cancel()
    corun.sleep(0)
  end))

  it("test_acquire_hang", async(function()
    local sem = corun.semaphore(0)
    local t1 = corun.spawn(function() return sem:acquire() end)
    local t2 = corun.spawn(function() return sem:acquire() end)
    corun.sleep(0)
    t1:cancel()
    sem:release()
    corun.sleep(0)
    corun.sleep(0)
    assert.is_true(sem:locked())
    assert.is_true(t2:done())
  end))

  -- asyncio: t2, woken with the permit c1 released, is cancelled before it
  -- runs: it gives the permit back and never enters its block. corun: a
  -- task handed a permit keeps it; its block runs and Cancelled comes at
  -- its next suspension (as in Trio).
  it("[corun differs] test_acquire_no_hang", async(function()
    local sem = corun.semaphore(1)
    local entered = false
    local t2
    local t1 = corun.spawn(function()
      sem:with(function() corun.sleep(0) end)
      t2:cancel()
    end)
    t2 = corun.spawn(function()
      sem:with(function() entered = true end)
      corun.sleep(0)
    end)
    t1:join()
    join_cancelled(t2)
    assert.is_true(entered)                -- asyncio: never entered
    assert.is_true(sem:acquire(1.0))
  end))

  it("test_release_not_acquired", function()
    local sem = corun.bounded_semaphore()
    assert.truthy(tostring(catch(sem.release, sem)):find("too many"))
  end)

  it("test_release_no_waiters", async(function()
    local sem = corun.semaphore()
    sem:acquire()
    assert.is_true(sem:locked())
    sem:release()
    assert.is_false(sem:locked())
  end))

  it("test_acquire_fifo_order", async_virtual(function()
    local sem = corun.semaphore(1)
    local result = {}
    local function coro(tag)
      sem:acquire()
      add(result, tag .. "_1")
      corun.sleep(0.01)
      sem:release()
      sem:acquire()
      add(result, tag .. "_2")
      corun.sleep(0.01)
      sem:release()
    end
    corun.group(function(g)
      g:spawn(coro, "c1") g:spawn(coro, "c2") g:spawn(coro, "c3")
    end)
    assert.same({ "c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2" }, result)
  end))

  -- asyncio: [1, 2, 3, 4]: c2's re-acquire waits behind c3, whose permit is
  -- set but not yet taken. corun hands c3 its permit on release, so the
  -- permit c2 gives back is free and c2 takes it at once: [1, 2, 4, 3].
  it("[corun differs] test_acquire_fifo_order_2", async(function()
    local sem = corun.semaphore(1)
    local result = {}
    local t1 = corun.spawn(function() sem:acquire() add(result, 1) end)
    local t2 = corun.spawn(function()
      sem:acquire() add(result, 2)
      sem:release()
      sem:acquire() add(result, 4)
    end)
    local t3 = corun.spawn(function() sem:acquire() add(result, 3) end)
    corun.sleep(0)
    sem:release()
    sem:release()
    t1:join() t2:join() t3:join()
    assert.same({ 1, 2, 4, 3 }, result)
  end))

  it("test_acquire_fifo_order_3", async(function()
    local sem = corun.semaphore(0)
    local result = {}
    local function c(n)
      return function() sem:acquire() add(result, n) return true end
    end
    local t1, t2, t3 = corun.spawn(c(1)), corun.spawn(c(2)), corun.spawn(c(3))
    corun.sleep(0)
    t1:cancel()
    corun.sleep(0)
    sem:release()
    sem:release()
    join_cancelled(t1)
    t2:join() t3:join()
    assert.same({ 2, 3 }, result)
  end))
end)

--[[ test_locks.py: BarrierTests (N = 5 unless the case sets it) ]]

describe("asyncio BarrierTests", function()
  after_each(helper.check)
  local N = 5

  it("test_barrier (state filling)", function()
    assert.equal("filling", state(corun.barrier(N)))
  end)

  it("test_repr (states)", async(function()
    local barrier = corun.barrier(N)
    assert.equal("filling", state(barrier))
    local waiters = {}
    local function w() return barrier:wait() end
    for _ = 1, 2 do add(waiters, corun.spawn(w)) end
    corun.sleep(0)
    assert.truthy(tostring(barrier):find("2/" .. N, 1, true))
    assert.equal("filling", state(barrier))
    for _ = 1, barrier:parties() - barrier:n_waiting() do
      add(waiters, corun.spawn(w))
    end
    corun.sleep(0)
    assert.equal("draining", state(barrier))
    for _ = 1, 2 do add(waiters, corun.spawn(w)) end
    corun.sleep(0)
    barrier:reset()
    assert.equal("resetting", state(barrier))
    for _ = 1, 2 do add(waiters, corun.spawn(w)) end
    corun.sleep(0)
    barrier:abort()
    assert.equal("broken", state(barrier))
    assert.is_true(barrier:broken())
    for _, t in ipairs(waiters) do t:join() end
  end))

  it("test_barrier_parties", function()
    assert.is_not_nil(catch(corun.barrier, 0))
    assert.is_not_nil(catch(corun.barrier, -4))
    assert.equal(N, corun.barrier(N):parties())
  end)

  it("test_context_manager", async(function()
    local barrier = corun.barrier(3)
    local results = {}
    gather_n(3, function() add(results, barrier:wait()) end)
    assert.same(range0(3), sorted(results))
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_filling_one_task", async(function()
    local barrier = corun.barrier(1)
    assert.equal(0, barrier:wait())
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_filling_one_task_twice", async(function()
    local barrier = corun.barrier(1)
    local t1 = corun.spawn(function() return barrier:wait() end)
    corun.sleep(0)
    assert.equal(0, barrier:n_waiting())
    local t2 = corun.spawn(function() return barrier:wait() end)
    corun.sleep(0)
    assert.equal(t1:result(), t2:result())
    assert.equal(t1:done(), t2:done())
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_filling_task_by_task", async(function()
    local barrier = corun.barrier(3)
    local function w() return barrier:wait() end
    local t1 = corun.spawn(w)
    corun.sleep(0)
    assert.equal(1, barrier:n_waiting())
    local t2 = corun.spawn(w)
    corun.sleep(0)
    assert.equal(2, barrier:n_waiting())
    local t3 = corun.spawn(w)
    corun.sleep(0)
    corun.wait { t1, t2, t3 }
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_filling_tasks_wait_twice", async(function()
    local barrier = corun.barrier(N)
    local results = {}
    gather_n(N, function()
      barrier:wait()
      add(results, true)
      barrier:wait()
      add(results, false)
    end)
    local nt, nf = 0, 0
    for _, v in ipairs(results) do
      if v then nt = nt + 1 else nf = nf + 1 end
    end
    assert.equal(N, nt)
    assert.equal(N, nf)
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_filling_tasks_check_return_value", async(function()
    local barrier = corun.barrier(N)
    local results1, results2 = {}, {}
    local res = gather_n(N, function()
      barrier:wait()
      add(results1, true)
      local i = barrier:wait()
      add(results2, true)
      return i
    end)
    all_true(results1, N)
    all_true(results2, N)
    assert.same(range0(N), sorted(res))
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_draining_state", async(function()
    local barrier = corun.barrier(N)
    local results = {}
    gather_n(N, function()
      barrier:wait()
      add(results, state(barrier) == "draining")
    end)
    assert.equal(N, #results)
    assert.is_false(results[N])
    for i = 1, N - 1 do assert.is_true(results[i]) end
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_blocking_tasks_while_draining", async(function()
    local rewait = 2
    local barrier = corun.barrier(N)
    local barrier_nowaiting = corun.barrier(N - rewait)
    local rewait_n = rewait
    local res = gather_n(N, function()
      assert(barrier:wait())
      if rewait_n > 0 then
        rewait_n = rewait_n - 1
        return (assert(barrier:wait()))
      end
      assert(barrier_nowaiting:wait())
      return (assert(barrier:wait()))
    end)
    assert.same(range0(N), sorted(res))
  end))

  it("test_filling_tasks_cancel_one", async(function()
    local barrier = corun.barrier(3)
    local results = {}
    local function coro()
      assert(barrier:wait())
      add(results, true)
    end
    local t1 = corun.spawn(coro)
    corun.sleep(0)
    assert.equal(1, barrier:n_waiting())
    local t2 = corun.spawn(coro)
    corun.sleep(0)
    assert.equal(2, barrier:n_waiting())
    t1:cancel()
    corun.sleep(0)
    assert.equal(1, barrier:n_waiting())
    join_cancelled(t1)
    local t3 = corun.spawn(coro)
    corun.sleep(0)
    assert.equal(2, barrier:n_waiting())
    local t4 = corun.spawn(coro)
    t2:join() t3:join() t4:join()
    all_true(results, 3)
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_reset_barrier", async(function()
    local barrier = corun.barrier(1)
    corun.spawn(function() barrier:reset() end)
    corun.sleep(0)
    assert.equal(0, barrier:n_waiting())
    assert.is_false(barrier:broken())
  end))

  it("test_reset_barrier_while_tasks_waiting", async(function()
    local barrier = corun.barrier(N)
    local results = {}
    local tasks = spawn_n(N - 1, function()
      local ok, why = barrier:wait()
      if not ok and why == "broken" then add(results, true) end
    end)
    corun.sleep(0)
    corun.spawn(function() barrier:reset() end)
    for _, t in ipairs(tasks) do t:join() end
    all_true(results, N - 1)
    assert.equal(0, barrier:n_waiting())
    assert.not_equal("resetting", state(barrier))
    assert.is_false(barrier:broken())
  end))

  it("test_reset_barrier_when_tasks_half_draining", async(function()
    local barrier = corun.barrier(N)
    local results1 = {}
    local rest_of_tasks = N // 2
    local passed = 0
    gather_n(N, function()
      local i, why = barrier:wait()
      if not i then
        assert.equal("broken", why)
        add(results1, true)            -- the tasks still inside
      else
        passed = passed + 1
        -- asyncio tests barrier._count == rest_of_tasks: that many tasks
        -- are still inside the barrier, i.e. N - rest_of_tasks have left
        if passed == N - rest_of_tasks then barrier:reset() end
      end
    end)
    all_true(results1, rest_of_tasks)
    assert.equal(0, barrier:n_waiting())
    assert.not_equal("resetting", state(barrier))
    assert.is_false(barrier:broken())
  end))

  it("test_reset_barrier_when_tasks_half_draining_half_blocking",
  async(function()
    local barrier = corun.barrier(N)
    local results1, results2 = {}, {}
    local blocking_tasks = N // 2
    local count = 0
    gather_n(N, function()
      local i = barrier:wait()
      if not i then
        add(results1, true)
        assert(barrier:wait())
      else
        count = count + 1
        if count > blocking_tasks then
          barrier:reset()
          assert(barrier:wait())
        else
          local ok, why = barrier:wait()
          if not ok and why == "broken" then add(results2, true) end
        end
      end
    end)
    all_true(results1, blocking_tasks)
    assert.same({}, results2)
    assert.equal(0, barrier:n_waiting())
    assert.not_equal("resetting", state(barrier))
    assert.is_false(barrier:broken())
  end))

  it("test_reset_barrier_while_tasks_waiting_and_waiting_again",
  async(function()
    local barrier = corun.barrier(N)
    local results1, results2 = {}, {}
    local tasks = spawn_n(N - 1, function()
      local ok, why = barrier:wait()
      if not ok and why == "broken" then add(results1, true) end
      assert(barrier:wait())
      add(results2, true)
    end)
    corun.spawn(function() barrier:reset() end)
    corun.sleep(0)
    corun.spawn(function()
      assert(barrier:wait())
      add(results2, true)
    end)
    for _, t in ipairs(tasks) do t:join() end
    assert.is_false(barrier:broken())
    all_true(results1, N - 1)
    all_true(results2, N)
    assert.equal(0, barrier:n_waiting())
  end))

  it("test_reset_barrier_while_tasks_draining", async(function()
    local barrier = corun.barrier(N)
    local results1, results2, results3 = {}, {}, {}
    local count = 0
    gather_n(N, function()
      assert(barrier:wait())
      count = count + 1
      if count == N then
        barrier:reset()                -- the last task has left
        assert(barrier:wait())
      else
        if barrier:wait() then add(results1, true)
        else add(results2, true) end
      end
      assert(barrier:wait())
      add(results3, true)
    end)
    assert.is_false(barrier:broken())
    all_true(results1, N - 1)
    assert.equal(0, #results2)
    all_true(results3, N)
    assert.equal(0, barrier:n_waiting())
  end))

  it("test_abort_barrier", async(function()
    local barrier = corun.barrier(1)
    corun.spawn(function() barrier:abort() end)
    corun.sleep(0)
    assert.equal(0, barrier:n_waiting())
    assert.is_true(barrier:broken())
  end))

  it("test_abort_barrier_when_tasks_half_draining_half_blocking",
  async(function()
    local barrier = corun.barrier(N)
    local results1, results2 = {}, {}
    local blocking_tasks = N // 2
    local count = 0
    gather_n(N, function()
      local i = barrier:wait()
      if not i then
        add(results1, true)            -- tasks waiting to drain
      else
        count = count + 1
        if count > blocking_tasks then
          barrier:abort()
        else
          local ok, why = barrier:wait()
          if not ok and why == "broken" then add(results2, true) end
        end
      end
    end)
    assert.is_true(barrier:broken())
    all_true(results1, blocking_tasks)
    all_true(results2, N - blocking_tasks - 1)
    assert.equal(0, barrier:n_waiting())
    assert.not_equal("resetting", state(barrier))
  end))

  it("test_abort_barrier_when_exception", async(function()
    local barrier = corun.barrier(N)
    local results1, results2 = {}, {}
    gather_n(N, function()
      local i, why = barrier:wait()
      if i == N // 2 then barrier:abort() return end   -- the RuntimeError
      if not i then
        assert.equal("broken", why)
        add(results2, true)
        return
      end
      if barrier:wait() then add(results1, true)
      else add(results2, true) end
    end)
    assert.is_true(barrier:broken())
    assert.equal(0, #results1)
    all_true(results2, N - 1)
    assert.equal(0, barrier:n_waiting())
  end))

  it("test_abort_barrier_when_exception_then_resetting", async(function()
    local barrier1, barrier2 = corun.barrier(N), corun.barrier(N)
    local results1, results2, results3 = {}, {}, {}
    gather_n(N, function()
      local i = barrier1:wait()
      if i == N // 2 then
        barrier1:abort()
      elseif not i then
        add(results2, true)
      elseif barrier1:wait() then
        add(results1, true)
      else
        add(results2, true)
      end
      i = assert(barrier2:wait())
      if i == N // 2 then barrier1:reset() end
      assert(barrier2:wait())
      assert(barrier1:wait())
      add(results3, true)
    end)
    assert.is_false(barrier1:broken())
    assert.equal(0, #results1)
    all_true(results2, N - 1)
    all_true(results3, N)
    assert.equal(0, barrier1:n_waiting())
  end))
end)

--[[ test_queues.py ]]

describe("asyncio QueueBasicTests", function()
  after_each(helper.check)

  it("test_empty", async(function()
    local q = corun.queue()
    assert.is_true(q:empty())
    q:put(1)
    assert.is_false(q:empty())
    assert.equal(1, q:get())
    assert.is_true(q:empty())
  end))

  it("test_full", async(function()
    assert.is_false(corun.queue():full())
    local q = corun.queue(1)
    q:put(1)
    assert.is_true(q:full())
  end))

  it("test_order", async(function()
    local q = corun.queue()
    for _, i in ipairs { 1, 3, 2 } do q:put(i) end
    assert.same({ 1, 3, 2 }, { q:get(), q:get(), q:get() })
  end))

  it("test_maxsize", async(function()
    local q = corun.queue(2)
    assert.equal(2, q:maxsize())
    local have_been_put = {}
    local t = corun.spawn(function()
      for i = 0, 2 do
        q:put(i)
        add(have_been_put, i)
      end
      return true
    end)
    corun.sleep(0)
    corun.sleep(0)
    assert.same({ 0, 1 }, have_been_put)
    assert.equal(0, q:get())
    corun.sleep(0)
    assert.same({ 0, 1, 2 }, have_been_put)
    assert.equal(1, q:get())
    assert.equal(2, q:get())
    assert.is_true(t:done())
    assert.is_true(t:result())
  end))
end)

describe("asyncio QueueGetTests", function()
  after_each(helper.check)

  it("test_blocking_get", async(function()
    local q = corun.queue()
    q:put_nowait(1)
    assert.equal(1, q:get())
  end))

  it("test_blocking_get_wait", async(function()
    local q = corun.queue()
    local started, finished = corun.event(), false
    local t = corun.spawn(function()
      started:set()
      local res = q:get()
      finished = true
      return res
    end)
    started:wait()
    assert.is_false(finished)
    corun.call_later(0.01, function() q:put_nowait(1) end)
    assert.equal(1, t:join())
    assert.is_true(finished)
  end))

  it("test_nonblocking_get", function()
    local q = corun.queue()
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
  end)

  it("test_nonblocking_get_exception", function()
    assert.same({ nil, "empty" }, { corun.queue():get_nowait() })
  end)

  it("test_get_cancelled_race", async(function()
    local q = corun.queue()
    local t1 = corun.spawn(function() return q:get() end)
    local t2 = corun.spawn(function() return q:get() end)
    corun.sleep(0)
    t1:cancel()
    corun.sleep(0)
    assert.is_true(t1:done())
    q:put("a")
    corun.sleep(0)
    assert.equal("a", t2:join())
  end))

  it("test_get_with_waiting_putters", async(function()
    local q = corun.queue(1)
    corun.spawn(function() q:put("a") end)
    corun.spawn(function() q:put("b") end)
    assert.equal("a", q:get())
    assert.equal("b", q:get())
  end))

  it("test_why_are_getters_waiting", async(function()
    local q = corun.queue(1)
    corun.group(function(g)
      g:spawn(function() for i = 0, 4 do q:put(i) end end)
      g:spawn(function() for _ = 1, 5 do q:get() end end)
    end)
    assert.is_true(q:empty())
  end))

  it("test_cancelled_getters_not_being_held_in_self_getters",
  async_virtual(function()
    local q = corun.queue(5)
    assert.same({ nil, "timeout" }, { q:get(0.1) })
    q:put_nowait(1)                    -- no stale getter takes it
    assert.equal(1, q:size())
  end))
end)

describe("asyncio QueuePutTests", function()
  after_each(helper.check)

  it("test_blocking_put", async(function()
    local q = corun.queue()
    q:put(1)
    assert.equal(1, q:get())
  end))

  it("test_blocking_put_wait", async(function()
    local q = corun.queue(1)
    local started, finished = corun.event(), false
    corun.call_later(0.01, function() q:get_nowait() end)
    local t = corun.spawn(function()
      started:set()
      q:put(1)
      q:put(2)
      finished = true
    end)
    started:wait()
    assert.is_false(finished)
    t:join()
    assert.is_true(finished)
  end))

  it("test_nonblocking_put", function()
    local q = corun.queue()
    q:put_nowait(1)
    assert.equal(1, q:get_nowait())
  end)

  it("test_get_cancel_drop_one_pending_reader", async(function()
    local q = corun.queue()
    local reader = corun.spawn(function() return q:get() end)
    corun.sleep(0)
    q:put_nowait(1)
    q:put_nowait(2)
    reader:cancel()
    local e, result = catch(reader.join, reader)
    if e then
      assert(corun.is_cancelled(e))
      reader = corun.spawn(function() return q:get() end)
      result = reader:join()
    end
    assert.equal(1, result)            -- 2 would mean 1 was dropped
  end))

  -- asyncio: reader1 is cancelled and its item goes to reader3, so readers
  -- 2 and 3 get {1, 2}. corun: reader1 was handed 1 by put_nowait and keeps
  -- it (its get returns 1, Cancelled would come at its next suspension);
  -- reader3 still waits.
  it("[corun differs] test_get_cancel_drop_many_pending_readers",
  async(function()
    local q = corun.queue()
    local function r() return q:get() end
    local reader1, reader2, reader3 = corun.spawn(r), corun.spawn(r),
                                      corun.spawn(r)
    corun.sleep(0)
    q:put_nowait(1)
    q:put_nowait(2)
    reader1:cancel()
    assert.equal(1, reader1:join())     -- asyncio: CancelledError
    assert.equal(2, reader2:join())
    corun.sleep(0)
    assert.is_false(reader3:done())     -- asyncio: got 1 or 2
    q:put_nowait(3)
    assert.equal(3, reader3:join())
  end))

  it("test_put_cancel_drop", async(function()
    local q = corun.queue(1)
    q:put_nowait(1)
    local writer = corun.spawn(function() return q:put(2) end)
    corun.sleep(0)
    assert.equal(1, q:get_nowait())
    writer:cancel()
    local e = catch(writer.join, writer)
    if e then
      assert(corun.is_cancelled(e))
      writer = corun.spawn(function() return q:put(2) end)
      writer:join()
    end
    assert.equal(2, q:get_nowait())
    assert.equal(0, q:size())
  end))

  it("test_nonblocking_put_exception", function()
    local q = corun.queue(1)
    q:put_nowait(1)
    assert.same({ nil, "full" }, { q:put_nowait(2) })
  end)

  -- asyncio accepts a float maxsize (1.3 behaves as 2: full once size >=
  -- 1.3). corun keeps maxsize an integer and says so.
  it("[corun differs] test_float_maxsize", function()
    local e = catch(corun.queue, 1.3)
    assert.equal("bad argument #1 to 'queue' (maxsize must be an integer)",
                 tostring(e):gsub("^[^:]*:%d+: ", ""))
    assert.equal(2, corun.queue(2.0):maxsize())
  end)

  it("test_put_cancelled", async(function()
    local q = corun.queue()
    local t = corun.spawn(function() q:put(1) return true end)
    assert.equal(1, q:get())
    assert.is_true(t:done())
    assert.is_true(t:result())
  end))

  it("test_put_cancelled_race", async(function()
    local q = corun.queue(1)
    local put_a = corun.spawn(function() return q:put("a") end)
    local put_b = corun.spawn(function() return q:put("b") end)
    local put_c = corun.spawn(function() return q:put("X") end)
    corun.sleep(0)
    assert.is_true(put_a:done())
    assert.is_false(put_b:done())
    put_c:cancel()
    corun.sleep(0)
    assert.is_true(put_c:done())
    assert.equal("a", q:get_nowait())
    corun.sleep(0)
    assert.equal("b", q:get_nowait())
    put_b:join()
  end))

  it("test_put_with_waiting_getters", async(function()
    local q = corun.queue()
    local t = corun.spawn(function() return q:get() end)
    corun.sleep(0)
    q:put("a")
    assert.equal("a", t:join())
  end))

  it("test_why_are_putters_waiting", async(function()
    local q = corun.queue(2)
    corun.group(function(g)
      g:spawn(function()
        corun.sleep(0)
        for _ = 1, q:size() do q:get_nowait() end
      end)
      for i = 0, 3 do g:spawn(function() q:put(i) end) end
    end)
    assert.equal(2, q:size())
  end))

  it("test_cancelled_puts_not_being_held_in_self_putters", async(function()
    local q = corun.queue(1)
    q:put_nowait(1)
    local put_task = corun.spawn(function() return q:put(1) end)
    corun.sleep(0)
    put_task:cancel()
    join_cancelled(put_task)
    assert.equal(1, q:get_nowait())
    assert.equal(0, q:size())          -- the cancelled putter is gone
  end))

  it("test_cancelled_put_silence_value_error_exception", async(function()
    local q = corun.queue(1)
    q:put_nowait(1)
    local put_task = corun.spawn(function()
      q:put(1)
      corun.sleep(0)
    end)
    corun.sleep(0)
    q:get_nowait()
    put_task:cancel()
    join_cancelled(put_task)
  end))
end)

describe("asyncio LifoQueueTests, PriorityQueueTests", function()
  it("LifoQueueTests.test_order", async(function()
    local q = corun.lifo_queue()
    for _, i in ipairs { 1, 3, 2 } do q:put(i) end
    assert.same({ 2, 3, 1 }, { q:get(), q:get(), q:get() })
  end))

  it("PriorityQueueTests.test_order", async(function()
    local q = corun.priority_queue()
    for _, i in ipairs { 1, 3, 2 } do q:put(i) end
    assert.same({ 1, 2, 3 }, { q:get(), q:get(), q:get() })
  end))
end)

for _, kind in ipairs { "queue", "lifo_queue", "priority_queue" } do
  describe("asyncio " .. kind .. " JoinTests", function()
    after_each(helper.check)

    it("test_task_done_underflow", function()
      local q = corun[kind]()
      assert.truthy(tostring(catch(q.task_done, q)):find("task_done"))
    end)

    it("test_task_done", async(function()
      local q = corun[kind]()
      for i = 0, 99 do q:put_nowait(i) end
      local accumulator, running = 0, true
      local function worker()
        while running do
          accumulator = accumulator + q:get()
          q:task_done()
        end
      end
      local ts = { corun.spawn(worker), corun.spawn(worker) }
      q:join()
      assert.equal(99 * 100 // 2, accumulator)
      running = false
      for _ = 1, #ts do q:put_nowait(0) end
      for _, t in ipairs(ts) do t:join() end
    end))

    it("test_join_empty_queue", async(function()
      local q = corun[kind]()
      assert.is_true(q:join())
      assert.is_true(q:join())
    end))
  end)

  describe("asyncio " .. kind .. " ShutdownTests (close)", function()
    after_each(helper.check)

    it("test_shutdown_empty", async(function()
      local q = corun[kind]()
      local get_task = corun.spawn(function() return q:get() end)
      corun.sleep(0)
      q:close()
      assert.equal(0, q:size())
      assert.is_true(q:join())
      corun.sleep(0)
      assert.is_true(get_task:done())
      assert.same({ nil, "closed" }, { get_task:join() })
      assert.same({ nil, "closed" }, { q:put("data") })
      assert.same({ nil, "closed" }, { q:put_nowait("data") })
      assert.same({ nil, "closed" }, { q:get() })
      assert.same({ nil, "closed" }, { q:get_nowait() })
    end))

    it("test_shutdown_nonempty", async(function()
      local q = corun[kind](1)
      q:put_nowait("data")
      local join_task = corun.spawn(function() return q:join() end)
      local put_task = corun.spawn(function() return q:put("data2") end)
      corun.sleep(0)
      assert.is_false(put_task:done())
      q:close()
      assert.equal(1, q:size())
      corun.sleep(0)
      assert.is_true(put_task:done())
      assert.same({ nil, "closed" }, { put_task:join() })
      assert.equal("data", q:get())
      corun.sleep(0)
      assert.is_false(join_task:done())
      assert.same({ nil, "closed" }, { q:put("data") })
      assert.same({ nil, "closed" }, { q:put_nowait("data") })
      assert.same({ nil, "closed" }, { q:get() })
      assert.same({ nil, "closed" }, { q:get_nowait() })
      q:task_done()
      corun.sleep(0)
      assert.is_true(join_task:done())
      assert.is_true(join_task:join())
      assert.truthy(tostring(catch(q.task_done, q)):find("task_done"))
    end))
  end)
end
