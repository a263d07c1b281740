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
** other values are encoded by the data-only codec in the field "c"), in a
** script that batches the puts of the object's tasks made in one turn of
** the loop. Priorities 0..9 are one stream each (<name>, <name>:p1 ..
** <name>:p9; key() makes every key name). get takes the next entry from
** the object's buffer; when it is empty, one task fetches (the others
** wait): a script moves due retries and delayed items into their streams,
** claims (XPENDING IDLE + XCLAIM) entries some consumer has held for
** longer than 'visibility' seconds and reads new ones (XREADGROUP), level
** by level from the highest, up to 'prefetch' entries; if there are none,
** a blocking XREADGROUP on every stream, in short slices so that close is
** noticed. At-least-once delivery: nothing lost when a worker dies.
** Items are held per task: task_done acknowledges the calling task's
** oldest (XACK, batched with the other tasks' of the same turn); a task
** that ends holding items gives them back (XCLAIM ... TIME 1: idle at
** once); disconnect gives back the prefetched ones. Redis's delivery
** counter (plus the field "a" of a retried entry) counts the deliveries;
** past max_deliveries an item goes to <name>:dead. task_failed
** acknowledges the entry and parks a copy in the sorted set <name>:retry
** until its backoff is over (the fetch script moves it back).
** Entries that cannot be decoded (they come from other machines: only data
** is decoded, never code) are acknowledged, copied to the stream
** <name>:dead, and make that get return nil, err.
** Keys: the streams, <name>:puts and <name>:done (counters for join),
** <name>:closed, <name>:dead, <name>:retry, <name>:errors (the last error
** of an item, by entry id). Scripts are sent by EVALSHA.
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

-- Priorities: levels 0 (the default) .. LEVELS - 1; a higher level is
-- served first. Each level is its own stream (see key).
local LEVELS = 10
local MAX_ITEM_BYTES = 1024 * 1024  -- the default max_item_bytes (1 MiB)
local BATCH = 500  -- at most this many puts or acks in one script call

-- The names of a queue's Redis keys, all made here (a sharded queue would
-- add its shard here): the stream of priority level 'part' (level 0 is
-- <name> itself, level p > 0 <name>:p<p>), or <name>:<part> ("dead",
-- "retry", "errors", "puts", "done", "closed").
local function key(name, part)
  if part == 0 then return name end
  if type(part) == "number" then return name .. ":p" .. part end
  return name .. ":" .. part
end

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

-- The stored form of an item: kind "s" (a string as it is) or "c" (the
-- codec), and the data, at most 'max' bytes.
local function encode(item, max)
  if item == nil then
    error("bad argument #1 to 'put' (nil is not a valid item)", 3)
  end
  local kind, data = "s", item
  if type(item) ~= "string" then
    local ok, msg = pcall(core.codec_encode, item)
    if not ok then
      msg = msg:gsub("^cannot send args%[1%]", "cannot put item")
      error(msg, 3)
    end
    kind, data = "c", msg
  end
  if #data > max then
    error(("bad argument #1 to 'put' (item too large: %d bytes stored, "
           .. "max_item_bytes is %d)"):format(#data, max), 3)
  end
  return kind, data
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

-- An entry's fields as printable text, for a dead letter (at most 1000
-- bytes).
local function rawfields(entry)
  local fields, parts = entry[2], {}
  if type(fields) ~= "table" then return "" end
  for i = 1, #fields do parts[i] = ("%q"):format(tostring(fields[i])) end
  return table.concat(parts, " "):sub(1, 1000)
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

local function option(opts, key_, default, min, integer)
  local v = opts[key_]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min
     or (integer and math.type(v) ~= "integer") then
    error(("bad argument #3 to 'queue' (%s must be %s >= %s)")
          :format(key_, integer and "an integer" or "a number", min), 3)
  end
  return v
end

-- redis.queue(url, name, {group=, consumer=, visibility=, max_deliveries=,
-- backoff_base=, backoff_factor=, backoff_cap=, reconnect=, prefetch=,
-- max_item_bytes=}) -> queue
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
    prefetch = option(opts, "prefetch", 10, 1, true),
    max_item_bytes = option(opts, "max_item_bytes", MAX_ITEM_BYTES, 1, true),
    url = url,
    r = M.connect(url),      -- commands
    blocking = M.connect(url), -- XREADGROUP BLOCK
    held = {},               -- task -> list of items got, not acknowledged
    buf = {},                -- prefetched entries not yet handed to a task
    streams = {},            -- the stream of level p is streams[p + 1]
    level_of = {},           -- stream name -> level
  }, Queue)
  for p = 0, LEVELS - 1 do
    self.streams[p + 1] = key(name, p)
    self.level_of[key(name, p)] = p
  end
  local function keys(...)   -- the streams, then the named keys
    local list = table.move(self.streams, 1, LEVELS, 1, {})
    for _, part in ipairs({ ... }) do list[#list + 1] = key(name, part) end
    return list
  end
  self.k_setup = keys("dead", "retry", "errors", "puts", "done", "closed")
  self.k_fetch = keys("retry", "closed")
  self.k_ack = keys("done", "errors")
  self.k_put = keys("puts", "closed")
  self.k_requeue = keys("dead", "puts")
  -- XREADGROUP ... STREAMS <the streams, highest level first> > > ...
  local read = { "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT",
                 self.prefetch, "BLOCK", 0, "STREAMS" }
  for p = LEVELS - 1, 0, -1 do read[#read + 1] = key(name, p) end
  for _ = 1, LEVELS do read[#read + 1] = ">" end
  self.readcmd = read
  return self
end

-- Call cmd on connection 'conn' (self.r or self.blocking); a transient
-- failure is retried with backoff for up to 'reconnect' seconds (and not
-- past 'deadline': then nil, "timeout"). A NOGROUP error (the server lost
-- the stream, e.g. restarted without persistence) recreates the group and
-- retries; WRONGTYPE raises naming the key. Other errors: nil, err.
function Queue:_call(what, deadline, conn, ...)
  local delay, giveup = 0.05, nil
  while true do
    local res, err = conn:call(...)
    if err == nil then return res end
    if err:find("NOGROUP", 1, true) then
      self.ready = false
      if self:_setup(deadline, what) then return nil, "timeout" end
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
      if err:find("WRONGTYPE", 1, true) and not self.checking then
        self:_check_types(what)
      end
      return nil, err
    end
  end
end

-- Scripts by SHA1 (SCRIPT LOAD once per server; EVAL when the server
-- lost them).
local SHAS = {}

-- self:_eval(what, deadline, conn, script, keys, args...) -> reply | nil, err
function Queue:_eval(what, deadline, conn, script, keys, ...)
  local n = #keys
  local args = table.move(keys, 1, n, 1, {})
  table.move({ ... }, 1, select("#", ...), n + 1, args)
  local sha = SHAS[script]
  if sha == nil then
    local s, err = self:_call(what, deadline, conn, "SCRIPT", "LOAD", script)
    if err then return nil, err end
    sha, SHAS[script] = s, s
  end
  local res, err = self:_call(what, deadline, conn, "EVALSHA", sha, n,
                              table.unpack(args))
  if err and err:find("^NOSCRIPT") then
    SHAS[script] = nil
    return self:_call(what, deadline, conn, "EVAL", script, n,
                      table.unpack(args))
  end
  return res, err
end

-- Check the types of the queue's keys (KEYS: LEVELS streams, dead, retry,
-- errors, puts, done, closed): {key, its type, the type wanted} for the
-- first wrong one; else, with ARGV[2] "create", create the consumer group
-- ARGV[1] on every stream; 1.
local SETUP = [[
local want = {dead = 'stream', retry = 'zset', errors = 'hash',
              puts = 'string', done = 'string', closed = 'string'}
local named = {'dead', 'retry', 'errors', 'puts', 'done', 'closed'}
local L = #KEYS - #named
for i, k in ipairs(KEYS) do
  local w = i <= L and 'stream' or want[named[i - L] ]
  local t = redis.call('TYPE', k)
  t = t.ok or t
  if t ~= 'none' and t ~= w then return {k, t, w} end
end
if ARGV[2] ~= 'create' then return 1 end
for i = 1, L do
  local r = redis.pcall('XGROUP', 'CREATE', KEYS[i], ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r.err and not r.err:find('BUSYGROUP') then
    return redis.error_reply(r.err)
  end
end
return 1]]

local function wrongtype(what, t)
  fail(what, ("key '%s' holds a %s, not the %s the queue keeps there "
              .. "(WRONGTYPE: another program uses that name)")
             :format(t[1], t[2], t[3]))
end

-- Raise naming the first key of the queue that has the wrong type, if any.
function Queue:_check_types(what)
  self.checking = true
  local ok, res = pcall(self._eval, self, what, nil, self.r, SETUP,
                        self.k_setup, self.group, "check")
  self.checking = false
  if not ok then error(res, 0) end
  if type(res) == "table" then wrongtype(what, res) end
end

-- Create the group on every stream (once per object, and again after
-- NOGROUP); "timeout" past deadline.
function Queue:_setup(deadline, what)
  if self.ready then return end
  self.checking = true
  local ok, res, err = pcall(self._eval, self, "creating the consumer group",
                             deadline, self.r, SETUP, self.k_setup,
                             self.group, "create")
  self.checking = false
  if not ok then error(res, 0) end
  if err == "timeout" then return err end
  if err then fail("creating the consumer group", err) end
  if type(res) == "table" then
    wrongtype(what or "creating the consumer group", res)
  end
  self.ready = true
end

-- Group commit: the calls of several tasks of this object made in one turn
-- of the loop go to Redis together. x joins the open batch in self[slot]
-- (or opens one and sends it after one turn); send(list) -> ok, err is
-- called once per batch. Returns what send returned. A batch whose sender
-- was cancelled is sent again by the others.
function Queue:_batched(slot, x, send)
  while true do
    local b = self[slot]
    if b == nil then
      b = { list = { x }, ev = core.event() }
      self[slot] = b
      local ok, r1, r2 = pcall(function()
        core.sleep(0)
        if self[slot] == b then self[slot] = nil end
        return send(b.list)
      end)
      if self[slot] == b then self[slot] = nil end
      if ok then b.ok, b.err = r1, r2
      elseif type(r1) == "string" and r1:find("^redis queue: ") then
        b.raise = r1
      else b.lost = true end
      b.ev:set()
      if not ok then error(r1, 0) end
      return r1, r2
    end
    local list = b.list
    list[#list + 1] = x
    if #list >= BATCH then self[slot] = nil end
    b.ev:wait()
    if b.raise then error(b.raise, 0) end
    if not b.lost then return b.ok, b.err end
  end
end

-- Put items (ARGV: level, kind, data, ... per item) unless the queue is
-- closed (then 0); count them. KEYS: LEVELS streams, puts, closed.
local PUTS = [[
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return 0 end
for i = 1, #ARGV - 2, 3 do
  redis.call('XADD', KEYS[tonumber(ARGV[i]) + 1], '*', ARGV[i + 1], ARGV[i + 2])
end
redis.call('INCRBY', KEYS[#KEYS - 1], #ARGV / 3)
return 1]]

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
  if opts == nil then return nil, nil, 0, nil, 1 end
  if type(opts) ~= "table" then
    error("bad argument #2 to 'put' (options table expected, got "
          .. type(opts) .. ")", 3)
  end
  local d, at, p, n, t = opts.delay, opts.at, opts.priority, opts.replicas,
                         opts.timeout
  if d ~= nil and (type(d) ~= "number" or d ~= d or d < 0 or d == math.huge) then
    error("bad argument #2 to 'put' (delay must be a number of seconds >= 0)", 3)
  end
  if at ~= nil and (type(at) ~= "number" or at ~= at or at == math.huge) then
    error("bad argument #2 to 'put' (at must be a Unix time in seconds)", 3)
  end
  if d ~= nil and at ~= nil then
    error("bad argument #2 to 'put' (give delay or at, not both)", 3)
  end
  if p ~= nil and (math.type(p) ~= "integer" or p < 0 or p >= LEVELS) then
    error(("bad argument #2 to 'put' (priority must be an integer 0..%d)")
          :format(LEVELS - 1), 3)
  end
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then
    error("bad argument #2 to 'put' (replicas must be an integer >= 1)", 3)
  end
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0 or t == math.huge) then
    error("bad argument #2 to 'put' (timeout must be a number of seconds >= 0)", 3)
  end
  if (n ~= nil or t ~= nil) and (d ~= nil or at ~= nil) then
    error("bad argument #2 to 'put' (replicas is for immediate puts, not with delay or at)", 3)
  end
  return d, at, p or 0, n, t or 1
end

local delayed_seq = 0

-- q:put(item, [{delay = s} | {at = unix_time}, priority = p,
-- replicas = n, timeout = s]) -> true | nil, "closed" | nil, "replicas: ..."
function Queue:put(item, opts)
  local delay, at, level, replicas, wait = check_put_opts(opts)
  local kind, data = encode(item, self.max_item_bytes)
  self:_setup(nil, "put")
  if delay ~= nil or at ~= nil then
    delayed_seq = delayed_seq + 1
    local member = pack(("%s:%d:%d"):format(self.consumer, delayed_seq,
                        math.random(1 << 30)), kind, data, 0, "", level)
    local mode, when = "now", math.floor((delay or 0) * 1000)
    if at ~= nil then mode, when = "at", math.floor(at * 1000) end
    local r, err = self:_eval("put", nil, self.r, PUT_LATER,
      { key(self.name, "closed"), key(self.name, "puts"),
        key(self.name, "retry") }, member, mode, when)
    if err then fail("put", err) end
    if r == nil then return nil, "closed" end
    return true
  end
  if replicas then return self:_put_replicated(level, kind, data, replicas, wait) end
  local ok, err = self:_batched("putb", { level, kind, data }, function(list)
    local args = {}
    for _, x in ipairs(list) do
      args[#args + 1], args[#args + 2], args[#args + 3] = x[1], x[2], x[3]
    end
    local r, e = self:_eval("put", nil, self.r, PUTS, self.k_put,
                            table.unpack(args))
    if e then return nil, e end
    return r == 1
  end)
  if err then fail("put", err) end
  if not ok then return nil, "closed" end
  return true
end

-- A put followed by WAIT replicas, on a connection of its own (WAIT holds
-- up the connection it is sent on).
function Queue:_put_replicated(level, kind, data, replicas, wait)
  self.w = self.w or M.connect(self.url)
  local r, err = self:_eval("put", nil, self.w, PUTS, self.k_put, level,
                            kind, data)
  if err then fail("put", err) end
  if r ~= 1 then return nil, "closed" end
  local n
  n, err = self:_call("put", nil, self.w, "WAIT", replicas,
                      math.floor(wait * 1000))
  if err then fail("put", err) end
  if n < replicas then
    return nil, ("replicas: %d of %d acknowledged within %g s (the item "
      .. "is queued, but a failover now can lose it)"):format(n, replicas, wait)
  end
  return true
end

-- Move due retries and delayed items into their streams (due times are
-- the Redis server's clock, so every machine agrees); then, level by
-- level from the highest, claim entries held longer than ARGV[3] ms and
-- read new ones, up to ARGV[4] entries in all. Returns {status, entries
-- ...}: each {level, entry, deliveries, previous consumer (or nil)};
-- status, when there is none: ms until the next due item, -1 (none) or
-- -2 (the queue is closed and nothing is left or held).
-- KEYS: LEVELS streams, retry set, closed; ARGV: group, consumer, min
-- idle ms, count, "1" to claim (else only read).
local FETCH = [[
local L = #KEYS - 2
local retry, closed = KEYS[L + 1], KEYS[L + 2]
local g, c, idle, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  local f = cmsgpack.unpack(m)
  local s = KEYS[(tonumber(f[6]) or 0) + 1] or KEYS[1]
  if f[5] ~= '' then
    redis.call('XADD', s, '*', f[2], f[3], 'a', f[4], 'e', f[5])
  else
    redis.call('XADD', s, '*', f[2], f[3], 'a', f[4])
  end
  redis.call('ZREM', retry, m)
end
local out = {0}
for lv = L, 1, -1 do
  local want = count - #out + 1
  if want <= 0 then break end
  local p = ARGV[5] == '1'
            and redis.call('XPENDING', KEYS[lv], g, 'IDLE', idle, '-', '+', want)
            or {}
  if p[1] then
    local ids, info = {}, {}
    for i, e in ipairs(p) do ids[i] = e[1]; info[e[1] ] = e end
    local es = redis.call('XCLAIM', KEYS[lv], g, c, idle, unpack(ids))
    for _, e in ipairs(es) do
      if type(e) == 'table' and e[2] then
        local i = info[e[1] ]
        out[#out + 1] = {lv - 1, e, i[4] + 1, i[2]}
      end
    end
    want = count - #out + 1
  end
  if want > 0 then
    local r = redis.call('XREADGROUP', 'GROUP', g, c, 'COUNT', want,
                         'STREAMS', KEYS[lv], '>')
    if r then
      for _, e in ipairs(r[1][2]) do out[#out + 1] = {lv - 1, e, 1} end
    end
  end
end
if #out > 1 then return out end
local nxt = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
if nxt[2] then out[1] = math.max(tonumber(nxt[2]) - now, 0) else out[1] = -1 end
if redis.call('EXISTS', closed) == 1 then
  local held = redis.call('ZCARD', retry)
  for lv = 1, L do held = held + redis.call('XPENDING', KEYS[lv], g)[1] end
  if held == 0 then out[1] = -2 end
end
return out]]

-- Fill the buffer: the fetch script, then (nothing there) a blocking read
-- of every stream for up to 'block' ms. Returns "timeout" past deadline,
-- "closed" when the queue is closed and drained, else nil.
function Queue:_fetch(block, deadline)
  -- look for entries to claim at most every visibility / 4 (and at most
  -- every second): a claim waits out 'visibility' anyway
  local now, claim = core.time(), "0"
  if now >= (self.next_claim or 0) then
    claim = "1"
    self.next_claim = now + math.min(self.visibility / 4, 1)
  end
  local res, err = self:_eval("get", deadline, self.r, FETCH, self.k_fetch,
    self.group, self.consumer, math.floor(self.visibility * 1000),
    self.prefetch, claim)
  if err == "timeout" then return err end
  if err then fail("get", err) end
  local buf = self.buf
  if #res > 1 then
    for i = 2, #res do
      local e = res[i]
      buf[#buf + 1] = { level = e[1], entry = e[2], deliveries = e[3],
                        prev = e[4] }
    end
    self:_count(#res - 1)
    return
  end
  if res[1] == -2 then return "closed" end
  if res[1] >= 0 then  -- wake for the next due item (within ~10 ms)
    block = math.max(1, math.min(block, res[1] + 5))
  end
  self.readcmd[8] = block
  res, err = self:_call("get", deadline, self.blocking,
                        table.unpack(self.readcmd))
  if err == "timeout" then return err end
  if err then fail("get", err) end
  if res == nil then return end
  local bylevel, n = {}, 0
  for _, s in ipairs(res) do
    bylevel[self.level_of[s[1]] or 0] = s[2]
  end
  for p = LEVELS - 1, 0, -1 do
    for _, e in ipairs(bylevel[p] or {}) do
      buf[#buf + 1] = { level = p, entry = e, deliveries = 1 }
      n = n + 1
    end
  end
  self:_count(n)
end

-- Move entry 'id' to <name>:dead (with the item, why, attempts, last
-- error, consumer and priority), acknowledge it and count it done.
-- KEYS: stream, dead, done, errors; ARGV: group, id, why, attempts,
-- consumer, kind, data, error, priority.
local DEAD = [[
local err = redis.call('HGET', KEYS[4], ARGV[2]) or ARGV[8]
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'why', ARGV[3],
             'attempts', ARGV[4], 'error', err, 'consumer', ARGV[5],
             'priority', ARGV[9], ARGV[6], ARGV[7])
  redis.call('INCR', KEYS[3])
end
redis.call('HDEL', KEYS[4], ARGV[2])
return 1]]

function Queue:_dead(h, why)
  local _, err = self:_eval("dead letter", nil, self.r, DEAD,
    { self.streams[h.level + 1], key(self.name, "dead"),
      key(self.name, "done"), key(self.name, "errors") },
    self.group, h.id, why, h.attempts, h.consumer or self.consumer, h.kind,
    h.data, h.error or "", h.level)
  if err then fail("dead letter", err) end
end

-- An entry that cannot be decoded: acknowledged and copied (its fields as
-- text) to <name>:dead. KEYS: stream, dead; ARGV: group, id, why,
-- consumer, fields.
local MALFORMED = [[
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'why', ARGV[3],
             'attempts', 1, 'consumer', ARGV[4], 'fields', ARGV[5])
end
return 1]]

-- Give entries ({id =, level =} or buffered {entry =, level =,
-- deliveries =}) back for re-delivery at once: idle since 1970, the
-- delivery counter untouched (JUSTID) or put back to what it was
-- (RETRYCOUNT, for prefetched entries no task got); record why.
function Queue:_giveback(list, why)
  pcall(function()
    self.r:pipeline(function(p)
      for _, h in ipairs(list) do
        local s = self.streams[h.level + 1]
        if h.entry then
          p:call("XCLAIM", s, self.group, self.consumer, 0, h.entry[1],
                 "TIME", 1, "RETRYCOUNT", math.max(h.deliveries - 1, 0),
                 "JUSTID")
        else
          if why then p:call("HSET", key(self.name, "errors"), h.id, why) end
          p:call("XCLAIM", s, self.group, self.consumer, 0, h.id, "TIME", 1,
                 "JUSTID")
        end
      end
    end)
  end)
end

-- Renew the claims on the items of this object whose XPENDING owner is
-- still this consumer (idle time back to 0; the counter untouched).
-- KEYS: LEVELS streams; ARGV: group, consumer, then level, id, ...
local RENEW = [[
local n = 0
for i = 3, #ARGV - 1, 2 do
  local s, id = KEYS[tonumber(ARGV[i]) + 1], ARGV[i + 1]
  local p = redis.call('XPENDING', s, ARGV[1], id, id, 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', s, ARGV[1], ARGV[2], 0, id, 'JUSTID')
    n = n + 1
  end
end
return n]]

-- Count items held by this object (its tasks' and the prefetched ones);
-- while there are any, a task renews their claims every visibility / 3
-- seconds, so that a long job is not taken over while its task is alive.
-- It ends when none is held.
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
        local args = {}
        local function add(level, id)
          args[#args + 1], args[#args + 2] = level, id
        end
        for _, list in pairs(self.held) do
          for _, h in ipairs(list) do add(h.level, h.id) end
        end
        for _, e in ipairs(self.buf) do add(e.level, e.entry[1]) end
        if #args > 0 then
          pcall(self._eval, self, "renew", nil, self.r, RENEW, self.streams,
                self.group, self.consumer, table.unpack(args))
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

-- Hand buffered entry e to task 'me': its item; nil, "malformed entry
-- ..." (moved to the dead letters); or nil when it went to the dead
-- letters for too many deliveries.
function Queue:_hand(me, e)
  local entry = e.entry
  local item, why, kind, data = decode(entry)
  if item == nil then
    self:_count(-1)
    local _, err = self:_eval("get", nil, self.r, MALFORMED,
      { self.streams[e.level + 1], key(self.name, "dead") }, self.group,
      entry[1], tostring(why), self.consumer, rawfields(entry))
    if err then fail("get", err) end
    return nil, ("malformed entry %s: %s"):format(entry[1], tostring(why))
  end
  local f = fieldmap(entry)
  local h = { id = entry[1], level = e.level, kind = kind, data = data,
              error = f.e, attempts = (tonumber(f.a) or 0) + e.deliveries }
  if h.attempts > self.max_deliveries then
    self:_count(-1)
    h.consumer = e.prev
    h.error = h.error or "its consumers died or timed out"
    h.attempts = h.attempts - 1  -- the deliveries made
    self:_dead(h, ("delivered %d times (max_deliveries %d)")
                  :format(h.attempts, self.max_deliveries))
    return nil
  end
  local list = self:_watch(me)
  list[#list + 1] = h
  return item
end

-- q:get([timeout]) -> item | nil, "closed" | nil, "timeout" | nil, err
-- One task of the object at a time fetches (up to 'prefetch' entries);
-- the others wait for it and take from the buffer.
function Queue:get(timeout)
  local me = core.current()
  if me == nil then error("get: must be called inside a task", 2) end
  local deadline = timeout and core.time() + timeout
  if self:_setup(deadline, "get") then return nil, "timeout" end
  while true do
    local e = table.remove(self.buf, 1)
    if e then
      local item, err = self:_hand(me, e)
      if item ~= nil then return item end
      if err then return nil, err end
    elseif self.fetching then
      local f = self.fetching
      local left = deadline and deadline - core.time()
      if left and left <= 0 then return nil, "timeout" end
      f.ev:wait(left)
      if f.closed then return nil, "closed" end
    else
      local f = { ev = core.event() }
      self.fetching = f
      local block = 200
      if deadline then
        block = math.max(1, math.min(block,
          math.floor((deadline - core.time()) * 1000)))
      end
      local ok, st = pcall(self._fetch, self, block, deadline)
      self.fetching = nil
      f.closed = ok and st == "closed"
      f.ev:set()
      if not ok then error(st, 0) end
      if st == "timeout" then return nil, "timeout" end
      if st == "closed" then return nil, "closed" end
      if #self.buf == 0 and deadline and core.time() >= deadline then
        return nil, "timeout"
      end
    end
  end
end

-- The calling task's oldest entry in 'held' (task -> list), removed, and
-- that list; raises for method 'what' (called by the caller's caller) when
-- the task has none left. Shared with redis_shards.lua.
function M._shift_held(held, what)
  local me = core.current()
  local list = me and held[me]
  local h = list and table.remove(list, 1)
  if h == nil then
    error(("%s: called more times than items got (by this task)"):format(what), 4)
  end
  return h, list
end

-- The calling task's oldest item not yet acknowledged, removed.
function Queue:_take(what)
  local h, list = M._shift_held(self.held, what)
  self:_count(-1)
  return h, list
end

-- Acknowledge entries and count them done, each only if this ack is the
-- first (an item re-delivered elsewhere may be acknowledged twice).
-- KEYS: LEVELS streams, done, errors; ARGV: group, then level, id, ...
local ACK = [[
local L = #KEYS - 2
local errs = redis.call('EXISTS', KEYS[L + 2]) == 1
local n = 0
for i = 2, #ARGV - 1, 2 do
  if errs then redis.call('HDEL', KEYS[L + 2], ARGV[i + 1]) end
  n = n + redis.call('XACK', KEYS[tonumber(ARGV[i]) + 1], ARGV[1], ARGV[i + 1])
end
if n > 0 then redis.call('INCRBY', KEYS[L + 1], n) end
return n]]

-- q:task_done(): acknowledge the oldest item the calling task got. The
-- acknowledgements of the object's tasks made in the same turn of the
-- loop go in one script call; task_done returns once Redis has its.
function Queue:task_done()
  local h, list = self:_take("task_done")
  local ok, done, err = pcall(self._batched, self, "ackb", h, function(hs)
    local args = {}
    for _, x in ipairs(hs) do args[#args + 1], args[#args + 2] = x.level, x.id end
    local _, e = self:_eval("task_done", nil, self.r, ACK, self.k_ack,
                            self.group, table.unpack(args))
    if e then return nil, e end
    return true
  end)
  if not ok or not done then
    table.insert(list, 1, h)
    self:_count(1)
    if not ok then error(done, 0) end
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

function pack(id, kind, data, attempts, err, level)
  -- msgpack by hand (a fixarray of 6 str): the script unpacks it.
  local function str(v)
    v = tostring(v)
    local n = #v
    if n < 32 then return string.char(0xa0 | n) .. v end
    if n < 256 then return "\xd9" .. string.char(n) .. v end
    if n < 65536 then return string.pack(">BI2", 0xda, n) .. v end
    return string.pack(">BI4", 0xdb, n) .. v
  end
  return "\x96" .. str(id) .. str(kind) .. str(data) .. str(attempts)
         .. str(err) .. str(level or 0)
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
  local ok, r, err = pcall(self._eval, self, "task_failed", nil, self.r,
    RETRY, { self.streams[h.level + 1], key(self.name, "retry"),
             key(self.name, "errors") }, self.group, h.id, due,
    pack(h.id, h.kind, h.data, h.attempts, why, h.level))
  if not ok or err then
    table.insert(list, 1, h)
    self:_count(1)
    if not ok then error(r, 0) end
    fail("task_failed", err)
  end
end

-- q:join([timeout]): until every item put so far has been acknowledged.
function Queue:join(timeout)
  local deadline = timeout and core.time() + timeout
  local function counter(part)
    local v, err = self:_call("join", deadline, self.r, "GET",
                              key(self.name, part))
    if err == "timeout" then return nil end
    if err then fail("join", err) end
    return tonumber(v) or 0
  end
  local target = counter("puts")
  if target == nil then return nil, "timeout" end
  while true do
    local done = counter("done")
    if done == nil then return nil, "timeout" end
    if done >= target then return true end
    if deadline and core.time() >= deadline then return nil, "timeout" end
    core.sleep(0.02)
  end
end

-- q:close(): consumers drain what is left, then get nil, "closed"; put
-- returns nil, "closed".
function Queue:close()
  local _, err = self:_call("close", nil, self.r, "SET",
                            key(self.name, "closed"), "1")
  if err then fail("close", err) end
end

-- q:reopen(): undo close.
function Queue:reopen()
  local _, err = self:_call("reopen", nil, self.r, "DEL",
                            key(self.name, "closed"))
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
-- idle}}, dead, puts, done, priorities = {[p] = {ready, in_flight}}}: the
-- queue as Redis has it now, over every priority level. 'ready' is what
-- no consumer has got yet (the group's lag), 'delayed' what waits in
-- <name>:retry (retries and delayed puts), 'in_flight' what consumers
-- hold unacknowledged (prefetched entries too); 'idle' is in seconds.
function Queue:stats()
  self:_setup(nil, "stats")
  local function call(...)
    local v, err = self:_call("stats", nil, self.r, ...)
    if err then fail("stats", err) end
    return v
  end
  local st = { ready = 0, in_flight = 0, consumers = {}, priorities = {} }
  for p = 0, LEVELS - 1 do
    local s = self.streams[p + 1]
    local ready, pending
    for _, g in ipairs(call("XINFO", "GROUPS", s)) do
      g = map(g)
      if g.name == self.group then ready, pending = g.lag, g.pending or 0 end
    end
    pending = pending or 0
    if ready == nil then ready = call("XLEN", s) - pending end
    if ready > 0 or pending > 0 then
      st.priorities[p] = { ready = ready, in_flight = pending }
      for _, c in ipairs(call("XINFO", "CONSUMERS", s, self.group)) do
        c = map(c)
        local old = st.consumers[c.name]
        local idle = (c.idle or 0) / 1000
        if old then
          old.pending = old.pending + c.pending
          old.idle = math.min(old.idle, idle)
        else
          st.consumers[c.name] = { pending = c.pending, idle = idle }
        end
      end
    end
    st.ready, st.in_flight = st.ready + ready, st.in_flight + pending
  end
  st.delayed = call("ZCARD", key(self.name, "retry"))
  st.dead = call("XLEN", key(self.name, "dead"))
  st.puts = tonumber(call("GET", key(self.name, "puts"))) or 0
  st.done = tonumber(call("GET", key(self.name, "done"))) or 0
  return st
end

-- q:dead([n]) -> list of the first n (default all) dead letters:
-- {id =, entry =, why =, attempts =, error =, consumer =, priority =,
-- fields =, item =}
function Queue:dead(n)
  if n ~= nil and (math.type(n) ~= "integer" or n < 1) then
    error("bad argument #1 to 'dead' (a count >= 1 expected)", 2)
  end
  local args = { "XRANGE", key(self.name, "dead"), "-", "+" }
  if n then args[5], args[6] = "COUNT", n end
  local res, err = self:_call("dead", nil, self.r, table.unpack(args))
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
                consumer = f.consumer, priority = tonumber(f.priority),
                fields = f.fields, item = item }
  end
  return list
end

-- Put dead letters (ARGV[1]: one id or "all") back into the stream of
-- their priority. KEYS: LEVELS streams, dead, puts.
local REQUEUE = [[
local L = #KEYS - 2
local function one(e)
  local f, level = e[2], 0
  for i = 1, #f - 1, 2 do
    if f[i] == 'priority' then level = tonumber(f[i + 1]) or 0 end
  end
  for i = 1, #f - 1, 2 do
    if f[i] == 's' or f[i] == 'c' then
      redis.call('XADD', KEYS[level + 1] or KEYS[1], '*', f[i], f[i + 1])
      redis.call('XDEL', KEYS[L + 1], e[1])
      redis.call('INCR', KEYS[L + 2])
      return 1
    end
  end
  return 0
end
local n, list = 0, nil
if ARGV[1] == 'all' then list = redis.call('XRANGE', KEYS[L + 1], '-', '+')
else list = redis.call('XRANGE', KEYS[L + 1], ARGV[1], ARGV[1]) end
for _, e in ipairs(list) do n = n + one(e) end
return n]]

-- q:requeue_dead(id | "all") -> how many were put back
function Queue:requeue_dead(which)
  if type(which) ~= "string" then
    error("bad argument #1 to 'requeue_dead' (a dead letter id or \"all\" expected)", 2)
  end
  self:_setup(nil, "requeue_dead")
  local n, err = self:_eval("requeue_dead", nil, self.r, REQUEUE,
                            self.k_requeue, which)
  if err then fail("requeue_dead", err) end
  return n
end

-- q:disconnect(): give the prefetched entries back, close this process's
-- connections (the queue stays).
function Queue:disconnect()
  local buf = self.buf
  if #buf > 0 and core.current() then
    self.buf = {}
    self:_count(-#buf)
    self:_giveback(buf)
  end
  self.r:close()
  self.blocking:close()
  if self.w then self.w:close() end
end

return M
