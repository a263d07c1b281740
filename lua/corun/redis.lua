--[[
** corun.redis: an asynchronous Redis client (the C core on hiredis) and a
** distributed queue on Redis streams and consumer groups.
**
**   local r = corun.redis.connect("redis://:secret@127.0.0.1:6379/0")
**   r:call("SET", "k", "v"); print(r:call("GET", "k"))
**   local q = corun.redis.queue(url, "jobs", {group = "workers"})
**   q:put({n = 1}); local item = q:get(); ...; q:task_done()
**
** The queue: put is XADD (a plain string stays readable in the field "s";
** other values are encoded by the data-only codec in the field "c"); get
** is XREADGROUP (blocking in short slices so that close is noticed), and
** first claims (a script: XPENDING IDLE + XCLAIM) an entry some consumer
** has held for longer than 'visibility' seconds: at-least-once delivery,
** nothing lost when a worker dies. Items are held per task: task_done
** acknowledges the calling task's oldest (XACK); a task that ends holding
** items gives them back (XCLAIM ... TIME 1: idle at once). Redis's
** delivery counter (plus the field "a" of a retried entry) counts the
** deliveries; past max_deliveries an item goes to <name>:dead.
** task_failed acknowledges the entry and parks a copy in the sorted set
** <name>:retry until its backoff is over (the claim script moves it back).
** Entries that cannot be decoded (they come from other machines: only data
** is decoded, never code) are acknowledged, copied to the stream
** <name>:dead, and make that get return nil, err.
** Keys: <name> (the stream), <name>:puts and <name>:done (counters for
** join), <name>:closed, <name>:dead, <name>:retry, <name>:errors (the
** last error of an item, by entry id).
--]]

local core = require "corun.core"
if not core.redis_client then
  error("corun was built without Redis (hiredis not found at build time, "
        .. "or -DCORUN_REDIS=OFF): corun.redis is not available", 2)
end

local M = {}

--[[ the client ]]

local Client = core.methods("corun.redis")

-- The database index of a URL (digits or ""), checked: 0..2^31-1.
local function dbindex(digits)
  local db = digits and tonumber(digits)
  if db == nil then return 0 end
  if #digits > 10 or db > 0x7fffffff then
    error("bad argument #1 to 'connect' (database index out of range: "
          .. "must be 0..2147483647)", 4)
  end
  return db
end

local function parse(url)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (URL string expected)", 3)
  end
  local path = url:match("^unix://(/[^?]*)") or url:match("^redis%+unix://(/[^?]*)")
  if path then
    local db = dbindex(url:match("[?&]db=(%d+)"))
    local password = url:match("[?&]password=([^&]*)")
    return nil, nil, path, password, db
  end
  local rest = url:match("^rediss?://(.*)$")
  if not rest then
    error("bad argument #1 to 'connect' (redis://[:password@]host:port/db or unix:///path)", 3)
  end
  local auth, hostpart = rest:match("^(.*)@(.*)$")
  hostpart = hostpart or rest
  local password = auth and (auth:match("^[^:]*:(.*)$") or auth) or nil
  if password == "" then password = nil end
  local host, port, db
  if hostpart:sub(1, 1) == "[" then  -- [::1]:6379/0
    host, port, db = hostpart:match("^%[([^%]]+)%]:?(%d*)/?(%d*)$")
  else
    host, port, db = hostpart:match("^([^:/]*):?(%d*)/?(%d*)$")
  end
  if not host then error("bad argument #1 to 'connect' (malformed URL)", 3) end
  port, db = tonumber(port), dbindex(db)
  if port and port > 65535 then
    error("bad argument #1 to 'connect' (port out of range: must be 0..65535)", 3)
  end
  return host ~= "" and host or "127.0.0.1", port or 6379, nil, password, db
end

-- redis.connect(url, [opts]) -> client (it connects on its first call);
-- a Redis Cluster (?cluster=1 or opts.cluster): lua/corun/redis_cluster.lua
local cluster = require "corun.redis_cluster"
M.keyslot = cluster.keyslot
function M.connect(url, opts)
  if cluster.wanted(url, opts) then return cluster.connect(url, opts) end
  return core.redis_client(parse(url))
end

-- client:pipeline(function(p) p:call(...) ... end) -> list of replies (an
-- error reply is a table {err = message}) | nil, "connection lost"
function Client:pipeline(fn)
  local cmds = {}
  local recorder = {
    call = function(_, ...) cmds[#cmds + 1] = table.pack(...) end,
  }
  fn(recorder)
  return self:_pipeline(cmds)
end

--[[ the queue ]]

local Queue = {}
Queue.__index = Queue

-- Errors that reach the user carry no library file:line (level 0).
local function fail(what, err)
  error(("redis queue: %s: %s"):format(what, err), 0)
end

-- A failure worth retrying: the server went away or is loading its data
-- (or a Redis Cluster is failing over).
local function transient(err)
  return err:find("^connection lost") or err:find("^cannot connect")
         or err:find("^LOADING") or err:find("^CLUSTERDOWN")
         or err:find("^TRYAGAIN")
end

local function encode(item)
  if item == nil then
    error("bad argument #1 to 'put' (nil is not a valid item)", 3)
  end
  if type(item) == "string" then return "s", item end
  local ok, msg = pcall(core.codec_encode, item)
  if not ok then
    msg = msg:gsub("^cannot send args%[1%]", "cannot put item")
    error(msg, 3)
  end
  return "c", msg
end

-- The fields of stream entry {id, {field, value, ...}} as a table.
local function fieldmap(entry)
  local fields, m = entry[2], {}
  if type(fields) ~= "table" then return nil end
  for i = 1, #fields - 1, 2 do
    if m[fields[i]] == nil then m[fields[i]] = fields[i + 1] end
  end
  return m
end

-- The item of stream entry {id, {field, value, ...}}, or nil, why; and
-- its kind and data.
local function decode(entry)
  local fields = entry[2]
  if type(fields) ~= "table" then return nil, "no fields" end
  local kind, value = fields[1], fields[2]
  if kind == "s" and type(value) == "string" then return value, nil, kind, value end
  if kind == "c" and type(value) == "string" then
    local ok, item = pcall(core.codec_decode, value)
    if ok and item ~= nil then return item, nil, kind, value end
    return nil, ok and "empty" or item
  end
  return nil, "unknown encoding"
end

local function firstline(path)
  local f = io.open(path)
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return line
end

-- host-pid-random: unique per queue object across machines.
local function default_consumer()
  local host = firstline("/proc/sys/kernel/hostname") or "host"
  local pid = (firstline("/proc/self/stat") or "0"):match("^(%d+)")
  return ("%s-%s-%d"):format(host, pid, math.random(1, 1 << 30))
end

local function option(opts, key, default, min)
  local v = opts[key]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min then
    error(("bad argument #3 to 'queue' (%s must be a number >= %s)")
          :format(key, min), 3)
  end
  return v
end

-- redis.queue(url, name, {group=, consumer=, visibility=, max_deliveries=,
-- backoff_base=, backoff_factor=, backoff_cap=, reconnect=}) -> queue
function M.queue(url, name, opts)
  if type(name) ~= "string" or name == "" then
    error("bad argument #2 to 'queue' (a stream name expected)", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #3 to 'queue' (table of options expected)", 2)
  end
  if opts.shards ~= nil then  -- K queues: lua/corun/redis_shards.lua
    return require("corun.redis_shards").queue(M.queue, url, name, opts)
  end
  if cluster.wanted(url) and not name:match("^[^{]*{[^}]") then
    error("bad argument #2 to 'queue' (on a Redis Cluster the name needs a "
          .. "hash tag, e.g. '{jobs}', so that the queue's keys share a slot)", 2)
  end
  local self = setmetatable({
    name = name,
    group = opts.group or "corun",
    consumer = opts.consumer or default_consumer(),
    visibility = option(opts, "visibility", 30, 0),
    max_deliveries = math.floor(option(opts, "max_deliveries", 10, 1)),
    backoff_base = option(opts, "backoff_base", 1, 0),
    backoff_factor = option(opts, "backoff_factor", 3, 1),
    backoff_cap = option(opts, "backoff_cap", 3600, 0),
    reconnect = option(opts, "reconnect", 60, 0),
    r = M.connect(url),      -- commands
    blocking = M.connect(url), -- XREADGROUP BLOCK
    held = {},               -- task -> list of items got, not acknowledged
  }, Queue)
  return self
end

-- Call cmd on connection 'conn' (self.r or self.blocking); a transient
-- failure is retried with backoff for up to 'reconnect' seconds (and not
-- past 'deadline': then nil, "timeout"). A NOGROUP error (the server lost
-- the stream, e.g. restarted without persistence) recreates the group and
-- retries. Other errors: nil, err.
function Queue:_call(what, deadline, conn, ...)
  local delay, giveup = 0.05, nil
  while true do
    local res, err = conn:call(...)
    if err == nil then return res end
    if err:find("NOGROUP", 1, true) then
      self.ready = false
      if self:_setup(deadline) then return nil, "timeout" end
    elseif transient(err) then
      local now = core.time()
      giveup = giveup or now + self.reconnect
      if now >= giveup then
        fail(what, ("%s (gave up reconnecting after %g s)")
             :format(err, self.reconnect))
      end
      if deadline and now >= deadline then return nil, "timeout" end
      local pause = math.min(delay, giveup - now)
      if deadline then pause = math.min(pause, deadline - now) end
      core.sleep(math.max(pause, 0))
      delay = math.min(delay * 2, 1)
    else
      return nil, err
    end
  end
end

function Queue:_setup(deadline)
  if self.ready then return end
  local ok, err = self:_call("creating the consumer group", deadline, self.r,
    "XGROUP", "CREATE", self.name, self.group, "0", "MKSTREAM")
  if err == "timeout" then return err end
  if not ok and err and not err:match("BUSYGROUP") then
    fail("creating the consumer group", err)
  end
  self.ready = true
end

-- XADD unless the queue is closed; count the put.
local PUT = [[
if redis.call('EXISTS', KEYS[3]) == 1 then return false end
local id = redis.call('XADD', KEYS[1], '*', ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return id]]

-- A delayed put: into the retry set at server time ARGV[2] + ARGV[3] ms
-- (ARGV[2] "now") or at ARGV[3] ms since the epoch (ARGV[2] "at"); it
-- counts as put (join waits for it). KEYS: closed, puts, retry set.
local PUT_LATER = [[
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local due = tonumber(ARGV[3])
if ARGV[2] == 'now' then
  local t = redis.call('TIME')
  due = due + t[1] * 1000 + math.floor(t[2] / 1000)
end
redis.call('ZADD', KEYS[3], due, ARGV[1])
redis.call('INCR', KEYS[2])
return 1]]

local pack  -- below

local function check_put_opts(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'put' (options table expected, got "
          .. type(opts) .. ")", 3)
  end
  local d, at = opts.delay, opts.at
  if d ~= nil and (type(d) ~= "number" or d ~= d or d < 0 or d == math.huge) then
    error("bad argument #2 to 'put' (delay must be a number of seconds >= 0)", 3)
  end
  if at ~= nil and (type(at) ~= "number" or at ~= at or at == math.huge) then
    error("bad argument #2 to 'put' (at must be a Unix time in seconds)", 3)
  end
  if d ~= nil and at ~= nil then
    error("bad argument #2 to 'put' (give delay or at, not both)", 3)
  end
  return d, at
end

local delayed_seq = 0

-- q:put(item, [{delay = s} | {at = unix_time}]) -> true | nil, "closed"
function Queue:put(item, opts)
  local delay, at = check_put_opts(opts)
  local kind, data = encode(item)
  self:_setup()
  if delay ~= nil or at ~= nil then
    delayed_seq = delayed_seq + 1
    local member = pack(("%s:%d:%d"):format(self.consumer, delayed_seq,
                        math.random(1 << 30)), kind, data, 0, "")
    local mode, when = "now", math.floor((delay or 0) * 1000)
    if at ~= nil then mode, when = "at", math.floor(at * 1000) end
    local r, err = self:_call("put", nil, self.r, "EVAL", PUT_LATER, 3,
      self.name .. ":closed", self.name .. ":puts", self.name .. ":retry",
      member, mode, when)
    if err then fail("put", err) end
    if r == nil then return nil, "closed" end
    return true
  end
  local id, err = self:_call("put", nil, self.r, "EVAL", PUT, 3, self.name,
    self.name .. ":puts", self.name .. ":closed", kind, data)
  if err then fail("put", err) end
  if id == nil then return nil, "closed" end
  return true
end

-- Move due retries and delayed items into the stream (due times are the
-- Redis server's clock, so every machine agrees), then claim the oldest
-- entry held longer than ARGV[3] ms: {entry, deliveries, previous
-- consumer}, or {0, ms until the next due item (-1: none)}.
-- KEYS: stream, retry set; ARGV: group, consumer, min idle ms.
local CLAIM = [[
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  local f = cmsgpack.unpack(m)
  if f[5] ~= '' then
    redis.call('XADD', KEYS[1], '*', f[2], f[3], 'a', f[4], 'e', f[5])
  else
    redis.call('XADD', KEYS[1], '*', f[2], f[3], 'a', f[4])
  end
  redis.call('ZREM', KEYS[2], m)
end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', 1)
local e = p[1] and redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], p[1][1])
if e and e[1] then return {e[1], p[1][4] + 1, p[1][2]} end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if nxt[2] then return {0, tonumber(nxt[2]) - now} end
return {0, -1}]]

-- The entry to deliver (claimed from a consumer that held it too long,
-- or read from the group), its delivery count and previous consumer;
-- nil when none came within 'block' ms; nil, "timeout" past deadline.
function Queue:_next(block, deadline)
  local claimed, err = self:_call("get", deadline, self.r, "EVAL", CLAIM, 2,
    self.name, self.name .. ":retry", self.group, self.consumer,
    math.floor(self.visibility * 1000))
  if err == "timeout" then return nil, err end
  if err then fail("get", err) end
  if claimed[1] ~= 0 then return claimed[1], claimed[2], claimed[3] end
  if claimed[2] >= 0 then  -- wake for the next due item (within ~10 ms)
    block = math.max(1, math.min(block, claimed[2] + 5))
  end
  local res
  res, err = self:_call("get", deadline, self.blocking, "XREADGROUP", "GROUP",
    self.group, self.consumer, "COUNT", 1, "BLOCK", block, "STREAMS",
    self.name, ">")
  if err == "timeout" then return nil, err end
  if err then fail("get", err) end
  if res == nil then return nil end
  return res[1][2][1], 1, nil
end

-- Move entry 'id' to <name>:dead (with the item, why, attempts, last
-- error and consumer), acknowledge it and count it done.
-- KEYS: stream, dead, done, errors; ARGV: group, id, why, attempts,
-- consumer, kind, data, error.
local DEAD = [[
local err = redis.call('HGET', KEYS[4], ARGV[2]) or ARGV[8]
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'why', ARGV[3],
             'attempts', ARGV[4], 'error', err, 'consumer', ARGV[5],
             ARGV[6], ARGV[7])
  redis.call('INCR', KEYS[3])
end
redis.call('HDEL', KEYS[4], ARGV[2])
return 1]]

function Queue:_dead(h, why)
  local _, err = self:_call("dead letter", nil, self.r, "EVAL", DEAD, 4,
    self.name, self.name .. ":dead", self.name .. ":done",
    self.name .. ":errors", self.group, h.id, why, h.attempts,
    h.consumer or self.consumer, h.kind, h.data, h.error or "")
  if err then fail("dead letter", err) end
end

-- Give entries back for re-delivery at once: idle since 1970, the
-- delivery counter untouched (JUSTID); record why.
function Queue:_giveback(list, why)
  local ids = {}
  for i, h in ipairs(list) do ids[i] = h.id end
  pcall(function()
    self.r:pipeline(function(p)
      for _, id in ipairs(ids) do p:call("HSET", self.name .. ":errors", id, why) end
      p:call("XCLAIM", self.name, self.group, self.consumer, 0,
             table.unpack(ids, 1, #ids), "TIME", 1, "JUSTID")
    end)
  end)
end

-- Renew the claims on the items of this object whose XPENDING owner is
-- still this consumer (idle time back to 0; the counter untouched).
-- KEYS: stream; ARGV: group, consumer, ids...
local RENEW = [[
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n]]

-- Count items held by this object's tasks; while there are any, a task
-- renews their claims every visibility / 3 seconds, so that a long job is
-- not taken over while its task is alive. It ends when none is held.
function Queue:_count(delta)
  self.nheld = (self.nheld or 0) + delta
  if self.nheld > 0 and not self.renewing then
    self.renewing = true
    self.wake = self.wake or core.event()
    self.wake:clear()
    local t = core.spawn(function()
      local interval = math.max(self.visibility / 3, 0.05)
      while self.nheld > 0 do
        self.wake:wait(interval)
        self.wake:clear()
        if self.nheld <= 0 then break end
        local ids = {}
        for _, list in pairs(self.held) do
          for _, h in ipairs(list) do ids[#ids + 1] = h.id end
        end
        if #ids > 0 then
          pcall(self.r.call, self.r, "EVAL", RENEW, 1, self.name, self.group,
                self.consumer, table.unpack(ids))
        end
      end
      self.renewing = false
    end)
    t.name = "redis queue " .. self.name .. ": renewing claims"
  elseif self.nheld <= 0 and self.wake then
    self.wake:set()
  end
end

-- Watch task t: when it ends holding items of this queue, give them back.
function Queue:_watch(t)
  if self.held[t] then return self.held[t] end
  local list = {}
  self.held[t] = list
  t:on_done(function(task)
    self.held[task] = nil
    if #list > 0 then
      self:_count(-#list)
      local status = task:status()
      local why = ("the task holding it %s without task_done"):format(
        ({ failed = "failed", cancelled = "was cancelled" })[status]
        or "ended")
      if status == "failed" then
        -- the error, read without retrieving it (it is still reported if
        -- nobody joins the task): a failed task keeps it in uservalue 2
        local ok, e = pcall(debug.getuservalue, task, 2)
        if ok and type(e) == "string" then why = why .. ": " .. e end
      end
      core.spawn(Queue._giveback, self, list, why)
    end
  end)
  return list
end

-- q:get([timeout]) -> item | nil, "closed" | nil, "timeout" | nil, err
function Queue:get(timeout)
  local me = core.current()
  if me == nil then error("get: must be called inside a task", 2) end
  local deadline = timeout and core.time() + timeout
  if self:_setup(deadline) then return nil, "timeout" end
  while true do
    local block = 200
    if deadline then
      block = math.max(1, math.min(block,
        math.floor((deadline - core.time()) * 1000)))
    end
    local entry, deliveries, prev = self:_next(block, deadline)
    if deliveries == "timeout" then return nil, "timeout" end
    if entry then
      local item, why, kind, data = decode(entry)
      if item == nil then
        self.r:pipeline(function(p)   -- a dead letter: keep it, ack it
          p:call("XADD", self.name .. ":dead", "*", "id", entry[1],
                 "why", tostring(why))
          p:call("XACK", self.name, self.group, entry[1])
        end)
        return nil, ("malformed entry %s: %s"):format(entry[1], tostring(why))
      end
      local f = fieldmap(entry)
      local h = { id = entry[1], kind = kind, data = data, error = f.e,
                  attempts = (tonumber(f.a) or 0) + deliveries }
      if h.attempts > self.max_deliveries then
        h.consumer = prev
        h.error = h.error or "its consumers died or timed out"
        h.attempts = h.attempts - 1  -- the deliveries made
        self:_dead(h, ("delivered %d times (max_deliveries %d)")
                      :format(h.attempts, self.max_deliveries))
      else
        local list = self:_watch(me)
        list[#list + 1] = h
        self:_count(1)
        return item
      end
    else
      local closed = self:_call("get", nil, self.r, "EXISTS",
                                self.name .. ":closed")
      if closed == 1 then
        local pending = self:_call("get", nil, self.r, "XPENDING", self.name,
                                   self.group)
        local retries = self:_call("get", nil, self.r, "ZCARD",
                                   self.name .. ":retry")
        if (type(pending) ~= "table" or pending[1] == 0) and retries == 0 then
          return nil, "closed"
        end
      end
      if deadline and core.time() >= deadline then return nil, "timeout" end
    end
  end
end

-- The calling task's oldest item not yet acknowledged, removed.
function Queue:_take(what)
  local me = core.current()
  local list = me and self.held[me]
  local h = list and table.remove(list, 1)
  if h == nil then
    error(("%s: called more times than items got (by this task)"):format(what), 3)
  end
  self:_count(-1)
  return h, list
end

-- Acknowledge an entry and count it done, only if this ack is the first
-- (an item re-delivered elsewhere may be acknowledged twice).
local ACK = [[
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  return redis.call('INCR', KEYS[2])
end
return 0]]

-- q:task_done(): acknowledge the oldest item the calling task got.
function Queue:task_done()
  local h, list = self:_take("task_done")
  local _, err = self:_call("task_done", nil, self.r, "EVAL", ACK, 3,
    self.name, self.name .. ":done", self.name .. ":errors", self.group, h.id)
  if err then
    table.insert(list, 1, h)
    self:_count(1)
    fail("task_done", err)
  end
end

-- Acknowledge the entry and park a copy (attempts and error kept) in the
-- retry set for ARGV[3] ms (on the server's clock). KEYS: stream, retry,
-- errors; ARGV: group, id, delay ms, packed copy.
local RETRY = [[
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
  return 1
end
return 0]]

function pack(id, kind, data, attempts, err)
  -- msgpack by hand (a fixarray of 5 str): the script unpacks it.
  local function str(v)
    v = tostring(v)
    local n = #v
    if n < 32 then return string.char(0xa0 | n) .. v end
    if n < 256 then return "\xd9" .. string.char(n) .. v end
    if n < 65536 then return string.pack(">BI2", 0xda, n) .. v end
    return string.pack(">BI4", 0xdb, n) .. v
  end
  return "\x95" .. str(id) .. str(kind) .. str(data) .. str(attempts)
         .. str(err)
end

-- The backoff before retry number 'attempts' (>= 1), with jitter.
function Queue:_backoff(attempts)
  local d = self.backoff_base * self.backoff_factor ^ (attempts - 1)
  d = d * (0.75 + 0.5 * math.random())
  return math.min(d, self.backoff_cap)
end

-- q:task_failed([err]): the calling task's oldest item failed: retry it
-- after a backoff, or move it to <name>:dead after max_deliveries.
function Queue:task_failed(why)
  local h, list = self:_take("task_failed")
  why = why == nil and "task_failed" or tostring(why)
  if h.attempts >= self.max_deliveries then
    h.error = why
    local ok, e = pcall(self._dead, self, h,
      ("failed %d times (max_deliveries %d)"):format(h.attempts,
                                                     self.max_deliveries))
    if not ok then
      table.insert(list, 1, h)
      self:_count(1)
      error(e, 0)
    end
    return
  end
  local due = math.floor(self:_backoff(h.attempts) * 1000)  -- a delay
  local _, err = self:_call("task_failed", nil, self.r, "EVAL", RETRY, 3,
    self.name, self.name .. ":retry", self.name .. ":errors", self.group,
    h.id, due, pack(h.id, h.kind, h.data, h.attempts, why))
  if err then
    table.insert(list, 1, h)
    self:_count(1)
    fail("task_failed", err)
  end
end

-- q:join([timeout]): until every item put so far has been acknowledged.
function Queue:join(timeout)
  local deadline = timeout and core.time() + timeout
  local function counter(key)
    local v, err = self:_call("join", deadline, self.r, "GET", key)
    if err == "timeout" then return nil end
    if err then fail("join", err) end
    return tonumber(v) or 0
  end
  local target = counter(self.name .. ":puts")
  if target == nil then return nil, "timeout" end
  while true do
    local done = counter(self.name .. ":done")
    if done == nil then return nil, "timeout" end
    if done >= target then return true end
    if deadline and core.time() >= deadline then return nil, "timeout" end
    core.sleep(0.02)
  end
end

-- q:close(): consumers drain what is left, then get nil, "closed"; put
-- returns nil, "closed".
function Queue:close()
  local _, err = self.r:call("SET", self.name .. ":closed", "1")
  if err then fail("close", err) end
end

-- q:reopen(): undo close.
function Queue:reopen()
  local _, err = self.r:call("DEL", self.name .. ":closed")
  if err then fail("reopen", err) end
end

-- for item in q:iter() do ... end (until closed and drained)
function Queue:iter()
  return function()
    while true do
      local item, why = self:get()
      if item ~= nil then return item end
      if why == "closed" then return nil end
    end
  end
end

-- A RESP2 map reply ({k1, v1, k2, v2, ...}) as a table.
local function map(reply)
  local t = {}
  for i = 1, #reply - 1, 2 do t[reply[i]] = reply[i + 1] end
  return t
end

-- q:stats() -> {ready, delayed, in_flight, consumers = {name = {pending,
-- idle}}, dead, puts, done}: the queue as Redis has it now. 'ready' is
-- what no consumer has got yet (the group's lag), 'delayed' what waits in
-- <name>:retry (retries and delayed puts), 'in_flight' what consumers hold
-- unacknowledged; 'idle' is in seconds.
function Queue:stats()
  self:_setup()
  local function call(...)
    local v, err = self:_call("stats", nil, self.r, ...)
    if err then fail("stats", err) end
    return v
  end
  local st = { ready = 0, in_flight = 0, consumers = {} }
  for _, g in ipairs(call("XINFO", "GROUPS", self.name)) do
    g = map(g)
    if g.name == self.group then
      st.in_flight = g.pending or 0
      st.ready = g.lag
    end
  end
  if st.ready == nil then st.ready = call("XLEN", self.name) - st.in_flight end
  for _, c in ipairs(call("XINFO", "CONSUMERS", self.name, self.group)) do
    c = map(c)
    st.consumers[c.name] = { pending = c.pending, idle = (c.idle or 0) / 1000 }
  end
  st.delayed = call("ZCARD", self.name .. ":retry")
  st.dead = call("XLEN", self.name .. ":dead")
  st.puts = tonumber(call("GET", self.name .. ":puts")) or 0
  st.done = tonumber(call("GET", self.name .. ":done")) or 0
  return st
end

-- q:dead([n]) -> list of the first n (default all) dead letters:
-- {id =, entry =, why =, attempts =, error =, consumer =, item =}
function Queue:dead(n)
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then
    error("bad argument #1 to 'dead' (a count >= 1 expected)", 2)
  end
  local args = { "XRANGE", self.name .. ":dead", "-", "+" }
  if n then args[5], args[6] = "COUNT", n end
  local res, err = self.r:call(table.unpack(args))
  if err then fail("dead", err) end
  local list = {}
  for i, e in ipairs(res) do
    local f = fieldmap(e) or {}
    local item
    if f.s then item = f.s
    elseif f.c then
      local ok, v = pcall(core.codec_decode, f.c)
      if ok then item = v end
    end
    list[i] = { id = e[1], entry = f.id, why = f.why,
                attempts = tonumber(f.attempts), error = f.error,
                consumer = f.consumer, item = item }
  end
  return list
end

-- Put dead letters (ARGV[1]: one id or "all") back into the stream.
-- KEYS: stream, dead, puts.
local REQUEUE = [[
local function one(e)
  local f = e[2]
  for i = 1, #f - 1, 2 do
    if f[i] == 's' or f[i] == 'c' then
      redis.call('XADD', KEYS[1], '*', f[i], f[i + 1])
      redis.call('XDEL', KEYS[2], e[1])
      redis.call('INCR', KEYS[3])
      return 1
    end
  end
  return 0
end
local n, list = 0, nil
if ARGV[1] == 'all' then list = redis.call('XRANGE', KEYS[2], '-', '+')
else list = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1]) end
for _, e in ipairs(list) do n = n + one(e) end
return n]]

-- q:requeue_dead(id | "all") -> how many were put back
function Queue:requeue_dead(which)
  if type(which) ~= "string" then
    error("bad argument #1 to 'requeue_dead' (a dead letter id or \"all\" expected)", 2)
  end
  self:_setup()
  local n, err = self.r:call("EVAL", REQUEUE, 3, self.name,
                             self.name .. ":dead", self.name .. ":puts", which)
  if err then fail("requeue_dead", err) end
  return n
end

-- q:disconnect(): close this process's connections (the queue stays).
function Queue:disconnect()
  self.r:close()
  self.blocking:close()
end

return M
