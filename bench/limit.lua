-- limit.lua: "the limit", a minimal hand-written round-robin scheduler over
-- plain Lua coroutines. It is the baseline corun's benchmarks must beat.
--
--   run(fn, ...)     run fn as the main task until it returns
--   spawn(fn, ...)   new task (a coroutine); first runs at the next turn
--   yield()          back of the ready queue (same as sleep(0))
--   sleep(sec)       park on a binary min-heap of deadlines
--   join(t)          first result of task t (join each task once);
--                    gather(list) joins each in turn
--   queue(maxsize)   FIFO ring with parked getters/putters/joiners
--   lock()           acquire/release; parked acquirers in a FIFO ring,
--                    release hands the lock to the oldest
--
-- Clock: plain Lua has no sub-second wall clock and no way to block, so the
-- clock is os.clock() (process CPU time) and an idle scheduler busy-waits on
-- it. For one busy single-threaded process CPU time tracks wall time, which
-- is all the timers workload needs (it measures memory per sleeping task and
-- lateness). Task errors propagate out of run() with the task's traceback.

local M = {}

local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local running, status = coroutine.running, coroutine.status
local clock = os.clock

-- Ready queue: parallel lists (coroutine, resume value), swapped each turn so
-- what becomes ready during a turn runs in the next one (FIFO).

local rco, rval, rn = {}, {}, 0
local spare_co, spare_val = {}, {}

local function ready(co, v)
  rn = rn + 1
  rco[rn] = co
  rval[rn] = v
end

-- Timers: binary min-heap in parallel arrays keyed by (deadline, seq).

local hk, hs, hv, hn, seq = {}, {}, {}, 0, 0

local function heap_push(when, co)
  seq = seq + 1
  hn = hn + 1
  local i = hn
  while i > 1 do
    local p = i // 2
    local pk = hk[p]
    if pk <= when then break end -- ties: the older entry (smaller seq) stays up
    hk[i], hs[i], hv[i] = pk, hs[p], hv[p]
    i = p
  end
  hk[i], hs[i], hv[i] = when, seq, co
end

local function heap_less(i, k, s)
  local ik = hk[i]
  return ik < k or (ik == k and hs[i] < s)
end

local function heap_pop()
  local top = hv[1]
  local k, s, v = hk[hn], hs[hn], hv[hn]
  hk[hn], hs[hn], hv[hn] = nil, nil, nil
  hn = hn - 1
  if hn == 0 then return top end
  local i = 1
  while true do
    local c = 2 * i
    if c > hn then break end
    if c < hn and heap_less(c + 1, hk[c], hs[c]) then c = c + 1 end
    if not heap_less(c, k, s) then break end
    hk[i], hs[i], hv[i] = hk[c], hs[c], hv[c]
    i = c
  end
  hk[i], hs[i], hv[i] = k, s, v
  return top
end

local function fire_timers()
  local now = clock()
  while hn > 0 and hk[1] <= now do ready(heap_pop()) end
end

-- Tasks: a task is its coroutine. joiners[co] lists coroutines parked in
-- join(co). A finished task nobody was waiting for keeps its first result in
-- results[co] (NONE stands for nil) until a join collects it: join each task
-- at most once. (A weak table would be tidier but makes Lua's GC rescan it
-- every cycle: quadratic with 200k tasks.)

local NONE = {}
local results = {}
local joiners = {}

local function finish(co, r)
  local js = joiners[co]
  if not js then
    results[co] = r == nil and NONE or r
    return
  end
  joiners[co] = nil
  for i = 1, #js do ready(js[i], r) end
end

local function step(co, v)
  local ok, r = resume(co, v)
  if not ok then error(debug.traceback(co, tostring(r)), 0) end
  if status(co) == "dead" then finish(co, r) end
end

local function turn()
  local cco, cval, n = rco, rval, rn
  rco, rval, rn = spare_co, spare_val, 0
  for i = 1, n do
    step(cco[i], cval[i])
    cco[i], cval[i] = nil, nil
  end
  spare_co, spare_val = cco, cval
end

function M.spawn(fn, ...)
  if select("#", ...) <= 1 then
    local co = create(fn)
    ready(co, (...))
    return co
  end
  local args = table.pack(...)
  local co = create(function() return fn(table.unpack(args, 1, args.n)) end)
  ready(co)
  return co
end

function M.yield()
  ready((running()))
  return yield()
end

function M.sleep(sec)
  if sec <= 0 then return M.yield() end
  heap_push(clock() + sec, (running()))
  return yield()
end

function M.join(t)
  local r = results[t]
  if r == nil then
    local js = joiners[t]
    if not js then js = {}; joiners[t] = js end
    js[#js + 1] = running()
    return yield()
  end
  results[t] = nil
  if r == NONE then return nil end
  return r
end

function M.gather(list)
  local out = {}
  for i = 1, #list do out[i] = M.join(list[i]) end
  return out
end

function M.run(fn, ...)
  local main = M.spawn(fn, ...)
  while status(main) ~= "dead" do
    if hn > 0 then fire_timers() end
    if rn > 0 then
      turn()
    elseif hn > 0 then
      local t = hk[1]
      while clock() < t do end -- busy-wait: see the header
    else
      error("limit: deadlock (main task can never be woken)", 0)
    end
  end
  return M.join(main)
end

-- Rings: FIFO of (a, b) pairs in two tables, capacity doubles when full.

local function ring(cap)
  return { head = 1, n = 0, cap = cap, a = {}, b = {} }
end

local function ring_grow(r)
  local a, b, na, nb = r.a, r.b, {}, {}
  local h, cap = r.head, r.cap
  for i = 1, r.n do
    local j = (h + i - 2) % cap + 1
    na[i], nb[i] = a[j], b[j]
  end
  r.a, r.b, r.head, r.cap = na, nb, 1, cap * 2
end

local function ring_push(r, x, y)
  if r.n == r.cap then ring_grow(r) end
  local n = r.n + 1
  r.n = n
  local j = (r.head + n - 2) % r.cap + 1
  r.a[j], r.b[j] = x, y
end

local function ring_shift(r)
  local h, a, b = r.head, r.a, r.b
  local x, y = a[h], b[h]
  a[h], b[h] = nil, nil
  r.head = h % r.cap + 1
  r.n = r.n - 1
  return x, y
end

-- Queue: items ring; a full put parks with its item, and the get that makes
-- room moves that item in (handoff). An empty get parks; the next put hands
-- its item straight to the oldest getter. Closed: parked calls and gets on
-- an empty queue return nil.

local Queue = {}
Queue.__index = Queue

function M.queue(maxsize)
  maxsize = maxsize or 0
  return setmetatable({
    items = ring(maxsize > 0 and maxsize or 16), maxsize = maxsize,
    getters = ring(4), putters = ring(4), joiners = ring(4),
    unfinished = 0, closed = false,
  }, Queue)
end

function Queue:put(item)
  assert(item ~= nil, "bad argument #1 to 'put' (nil is not a valid item)")
  if self.closed then return nil, "closed" end
  local items = self.items
  if self.maxsize > 0 and items.n >= self.maxsize then
    ring_push(self.putters, running(), item)
    return yield()
  end
  self.unfinished = self.unfinished + 1
  if self.getters.n > 0 then
    ready(ring_shift(self.getters), item)
  else
    ring_push(items, item)
  end
  return true
end

function Queue:get()
  local items = self.items
  if items.n == 0 then
    if self.closed then return nil, "closed" end
    ring_push(self.getters, (running()))
    return yield()
  end
  local item = ring_shift(items)
  if self.putters.n > 0 then
    local co, x = ring_shift(self.putters)
    ring_push(items, x)
    self.unfinished = self.unfinished + 1
    ready(co, true)
  end
  return item
end

function Queue:task_done()
  assert(self.unfinished > 0, "task_done() called too many times")
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then
    local js = self.joiners
    while js.n > 0 do ready(ring_shift(js), true) end
  end
end

function Queue:join()
  if self.unfinished == 0 then return true end
  ring_push(self.joiners, (running()))
  return yield()
end

function Queue:close()
  self.closed = true
  while self.getters.n > 0 do ready(ring_shift(self.getters)) end
  while self.putters.n > 0 do ready((ring_shift(self.putters))) end
end

function Queue:size()
  return self.items.n
end

-- Lock: a flag and a FIFO ring of parked acquirers. release with waiters
-- hands the lock straight to the oldest (it stays locked), so a task that
-- releases and re-acquires at once queues behind them. No owner check.

local Lock = {}
Lock.__index = Lock

function M.lock()
  return setmetatable({ locked = false, waiters = ring(4) }, Lock)
end

function Lock:acquire()
  if not self.locked then
    self.locked = true
    return true
  end
  ring_push(self.waiters, (running()))
  return yield()
end

function Lock:release()
  assert(self.locked, "release: the lock is not held")
  local w = self.waiters
  if w.n > 0 then
    ready(ring_shift(w), true)
  else
    self.locked = false
  end
end

return M
