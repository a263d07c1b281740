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
** first XAUTOCLAIMs entries some consumer has held for longer than
** 'visibility' seconds: at-least-once delivery, nothing lost when a worker
** dies. task_done is XACK. Entries that cannot be decoded (they come from
** other machines: only data is decoded, never code) are acknowledged,
** copied to the stream <name>:dead, and make that get return nil, err.
** Keys: <name> (the stream), <name>:puts and <name>:done (counters for
** join), <name>:closed.
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

-- redis.connect(url) -> client (it connects on its first call)
function M.connect(url)
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

local function check(r, err, what)
  if r == nil and err ~= nil then
    error(("redis queue: %s: %s"):format(what, err), 3)
  end
  return r
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

-- The item of stream entry {id, {field, value, ...}}, or nil, why.
local function decode(entry)
  local fields = entry[2]
  if type(fields) ~= "table" then return nil, "no fields" end
  local kind, value = fields[1], fields[2]
  if kind == "s" and type(value) == "string" then return value end
  if kind == "c" and type(value) == "string" then
    local ok, item = pcall(core.codec_decode, value)
    if ok and item ~= nil then return item end
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

-- redis.queue(url, name, {group=, consumer=, visibility=}) -> queue
function M.queue(url, name, opts)
  if type(name) ~= "string" or name == "" then
    error("bad argument #2 to 'queue' (a stream name expected)", 2)
  end
  opts = opts or {}
  local self = setmetatable({
    name = name,
    group = opts.group or "corun",
    consumer = opts.consumer or default_consumer(),
    visibility = opts.visibility or 30,
    r = M.connect(url),      -- commands
    blocking = M.connect(url), -- XREADGROUP BLOCK
    held = {},               -- ids delivered and not yet acknowledged
  }, Queue)
  return self
end

function Queue:_setup()
  if self.ready then return end
  local ok, err = self.r:call("XGROUP", "CREATE", self.name, self.group, "0",
                              "MKSTREAM")
  if not ok and err and not err:match("BUSYGROUP") then
    check(nil, err, "creating the consumer group")
  end
  self.ready = true
end

-- q:put(item) -> true
function Queue:put(item)
  local kind, data = encode(item)
  self:_setup()
  local replies = check(self.r:pipeline(function(p)
    p:call("XADD", self.name, "*", kind, data)
    p:call("INCR", self.name .. ":puts")
  end), "connection lost", "put")
  if type(replies[1]) == "table" and replies[1].err then
    check(nil, replies[1].err, "put")
  end
  return true
end

-- The entry to deliver, claimed from a consumer that held it too long, or
-- read from the group; nil when none came within 'block' ms.
function Queue:_next(block)
  local claimed = self.r:call("XAUTOCLAIM", self.name, self.group,
                              self.consumer,
                              math.floor(self.visibility * 1000), "0-0",
                              "COUNT", 1)
  if type(claimed) == "table" and type(claimed[2]) == "table"
     and claimed[2][1] then
    return claimed[2][1]
  end
  local res, err = self.blocking:call("XREADGROUP", "GROUP", self.group,
    self.consumer, "COUNT", 1, "BLOCK", block, "STREAMS", self.name, ">")
  if res == nil then
    if err then check(nil, err, "get") end
    return nil
  end
  return res[1][2][1]
end

-- q:get([timeout]) -> item | nil, "closed" | nil, "timeout" | nil, err
function Queue:get(timeout)
  self:_setup()
  local deadline = timeout and core.time() + timeout
  while true do
    local block = 200
    if deadline then
      block = math.max(1, math.min(block,
        math.floor((deadline - core.time()) * 1000)))
    end
    local entry = self:_next(block)
    if entry then
      local item, why = decode(entry)
      if item ~= nil then
        self.held[#self.held + 1] = entry[1]
        return item
      end
      self.r:pipeline(function(p)   -- a dead letter: keep it, ack it
        p:call("XADD", self.name .. ":dead", "*", "id", entry[1],
               "why", tostring(why))
        p:call("XACK", self.name, self.group, entry[1])
      end)
      return nil, ("malformed entry %s: %s"):format(entry[1], tostring(why))
    end
    if self.r:call("EXISTS", self.name .. ":closed") == 1 then
      local pending = self.r:call("XPENDING", self.name, self.group)
      if type(pending) ~= "table" or pending[1] == 0 then
        return nil, "closed"
      end
    end
    if deadline and core.time() >= deadline then return nil, "timeout" end
  end
end

-- Acknowledge an entry and count it done, only if this ack is the first
-- (an item re-delivered elsewhere may be acknowledged twice).
local ACK = [[
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  return redis.call('INCR', KEYS[2])
end
return 0]]

-- q:task_done(): acknowledge the oldest item this consumer got.
function Queue:task_done()
  local id = table.remove(self.held, 1)
  if id == nil then error("task_done: called more times than items got", 2) end
  check(self.r:call("EVAL", ACK, 2, self.name, self.name .. ":done",
                    self.group, id), nil, "task_done")
end

-- q:join([timeout]): until every item put so far has been acknowledged.
function Queue:join(timeout)
  local target = tonumber(self.r:call("GET", self.name .. ":puts")) or 0
  local deadline = timeout and core.time() + timeout
  while (tonumber(self.r:call("GET", self.name .. ":done")) or 0) < target do
    if deadline and core.time() >= deadline then return nil, "timeout" end
    core.sleep(0.02)
  end
  return true
end

-- q:close(): consumers drain what is left, then get nil, "closed".
function Queue:close()
  check(self.r:call("SET", self.name .. ":closed", "1"), nil, "close")
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

-- q:disconnect(): close this process's connections (the queue stays).
function Queue:disconnect()
  self.r:close()
  self.blocking:close()
end

return M
