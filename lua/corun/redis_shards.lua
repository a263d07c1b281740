--[[
** corun.redis_shards: corun.redis.queue(url, name, {shards = K}), a queue
** spread over K single-stream queues (lua/corun/redis.lua's), one per
** shard, whose names carry hash tags chosen so that on a Redis Cluster with
** its slots split evenly in order (as redis-cli --cluster create does)
** they land on different masters: shard i's tag is the first of
** "name:i", "name:i.1", "name:i.2", ... whose slot is in the i-th K-th of
** 0..16383, so every process finds the same names.
**
** put goes round-robin over the shards; get polls the shards in turn,
** from the one after the shard of its last item: a first round that
** hardly blocks (1 ms each), then blocking reads of 50 ms each, so an item
** waits at most about (K-1) * 50 ms for an idle consumer. Held items are the shards' own (per task); this object only
** remembers which shard each of a task's items came from, so that
** task_done / task_failed go to the right one. A get that finds no shard
** reachable for 'reconnect' seconds raises, as one queue's get does. join, close, reopen, stats,
** dead, requeue_dead and disconnect act on every shard.
--]]

local core = require "corun.core"
local keyslot = require("corun.redis_cluster").keyslot
local shift_held = require("corun.redis")._shift_held  -- loads no shards

local M = {}

local Sharded = {}
Sharded.__index = Sharded

-- The stream name of shard i (1-based) of k.
local function shard_name(name, i, k)
  local lo, hi = (i - 1) * 16384 // k, i * 16384 // k
  local tag = ("%s:%d"):format(name, i - 1)
  for j = 1, 100000 do
    local s = keyslot(tag)
    if s >= lo and s < hi then break end
    tag = ("%s:%d.%d"):format(name, i - 1, j)
  end
  return "{" .. tag .. "}"
end
M.shard_name = shard_name

-- queue(url, name, opts) with opts.shards: 'single' makes one shard's
-- queue (redis.lua's queue without shards).
function M.queue(single, url, name, opts)
  local k = opts.shards
  if math.type(k) ~= "integer" or k < 1 or k > 1024 then
    error("bad argument #3 to 'queue' (shards must be an integer 1..1024)", 2)
  end
  if name:find("[{}]") then
    error("bad argument #2 to 'queue' (the name of a sharded queue takes no "
          .. "hash tag: its shards get their own)", 2)
  end
  local sub = {}
  for key, v in pairs(opts) do sub[key] = v end
  sub.shards = nil
  local self = setmetatable({ name = name, shards = {}, next = 1, rr = 1,
    held = setmetatable({}, { __mode = "k" }) }, Sharded)
  for i = 1, k do
    local q = single(url, shard_name(name, i, k), sub)
    sub.consumer = q.consumer  -- one consumer name on every shard
    self.shards[i] = q
  end
  self.consumer = sub.consumer
  self.next = math.random(k)
  return self
end

-- q:put(item, [opts]): on the next shard, round-robin.
function Sharded:put(item, opts)
  local i = self.next
  self.next = i % #self.shards + 1
  return self.shards[i]:put(item, opts)
end

-- q:get([timeout]) -> item | nil, "closed" | nil, "timeout" | nil, err
function Sharded:get(timeout)
  local me = core.current()
  if me == nil then error("get: must be called inside a task", 2) end
  local deadline = timeout and core.time() + timeout
  local k = #self.shards
  local slice = 0.001  -- a first round that hardly blocks, then 50 ms each
  while true do
    local closed = 0
    for t = 0, k - 1 do
      local i = (self.rr + t - 1) % k + 1
      local wait = k == 1 and 0.2 or slice
      if deadline then wait = math.max(math.min(wait, deadline - core.time()), 0.001) end
      local item, why = self.shards[i]:get(wait)
      if item ~= nil then
        self.rr = i % k + 1
        local list = self.held[me]
        if list == nil then list = {}; self.held[me] = list end
        list[#list + 1] = i
        return item
      end
      if why == "closed" then closed = closed + 1
      elseif why ~= "timeout" then return nil, why end
      if deadline and core.time() >= deadline then return nil, "timeout" end
    end
    if closed == k then return nil, "closed" end
    self:_reachable()
    slice = 0.05
  end
end

local function unreachable(err)
  return err:find("^connection lost") or err:find("^cannot connect")
         or err:find("^LOADING") or err:find("^CLUSTERDOWN")
end

-- After a round of get in which no shard gave an item (a shard's get
-- times out quickly, also while its server is down): raise, as the get of
-- one queue does, once no shard has been reachable for 'reconnect' s.
function Sharded:_reachable()
  local why
  for _, q in ipairs(self.shards) do
    local _, err = q.r:call("EXISTS", q.name)
    if err == nil or not unreachable(err) then
      self.down_since = nil
      return
    end
    why = err
  end
  local now = core.time()
  self.down_since = self.down_since or now
  local limit = self.shards[1].reconnect
  if now - self.down_since >= limit then
    self.down_since = nil
    error(("redis queue: get: %s (gave up reconnecting after %g s)")
          :format(why, limit), 0)
  end
end

-- The shard of the calling task's oldest item, removed from its list.
function Sharded:_take(what)
  local i, list = shift_held(self.held, what)  -- no tail call: error level
  return i, list
end

function Sharded:task_done()
  local i, list = self:_take("task_done")
  local ok, err = pcall(self.shards[i].task_done, self.shards[i])
  if not ok then table.insert(list, 1, i); error(err, 0) end
end

function Sharded:task_failed(why)
  local i, list = self:_take("task_failed")
  local ok, err = pcall(self.shards[i].task_failed, self.shards[i], why)
  if not ok then table.insert(list, 1, i); error(err, 0) end
end

-- q:join([timeout]): every shard joined.
function Sharded:join(timeout)
  local deadline = timeout and core.time() + timeout
  for _, q in ipairs(self.shards) do
    local ok, why = q:join(deadline and math.max(deadline - core.time(), 0))
    if not ok then return nil, why end
  end
  return true
end

function Sharded:close() for _, q in ipairs(self.shards) do q:close() end end
function Sharded:reopen() for _, q in ipairs(self.shards) do q:reopen() end end
function Sharded:disconnect() for _, q in ipairs(self.shards) do q:disconnect() end end
Sharded.iter = function(self)
  return function()
    while true do
      local item, why = self:get()
      if item ~= nil then return item end
      if why == "closed" then return nil end
    end
  end
end

-- q:stats(): the totals of the shards' stats, and shards = their list.
function Sharded:stats()
  local st = { ready = 0, delayed = 0, in_flight = 0, dead = 0, puts = 0,
               done = 0, consumers = {}, shards = {} }
  for i, q in ipairs(self.shards) do
    local s = q:stats()
    s.name = q.name
    st.shards[i] = s
    for _, f in ipairs { "ready", "delayed", "in_flight", "dead", "puts", "done" } do
      st[f] = st[f] + (s[f] or 0)
    end
    for name, c in pairs(s.consumers) do
      local t = st.consumers[name]
      if t == nil then st.consumers[name] = { pending = c.pending, idle = c.idle }
      else t.pending, t.idle = t.pending + c.pending, math.min(t.idle, c.idle) end
    end
  end
  return st
end

-- q:dead([n]): the shards' dead letters (shard 1's first), each with
-- shard = its index.
function Sharded:dead(n)
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then
    error("bad argument #1 to 'dead' (a count >= 1 expected)", 2)
  end
  local list = {}
  for i, q in ipairs(self.shards) do
    if n and #list >= n then break end
    for _, d in ipairs(q:dead(n and n - #list or nil)) do
      d.shard = i
      list[#list + 1] = d
    end
  end
  return list
end

-- q:requeue_dead(id | "all") -> how many were put back (on their shard)
function Sharded:requeue_dead(which)
  if type(which) ~= "string" then
    error("bad argument #1 to 'requeue_dead' (a dead letter id or \"all\" expected)", 2)
  end
  local n = 0
  for _, q in ipairs(self.shards) do n = n + q:requeue_dead(which) end
  return n
end

return M
