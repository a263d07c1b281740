--[[
** corun.redis_cluster: the client of corun.redis.connect for a Redis
** Cluster (a URL with ?cluster=1, or the option {cluster = true}). hiredis
** 0.14 knows nothing of clusters: this file is all the routing, over one
** plain corun.redis client (C) per node.
**
** The slot map (CLUSTER SLOTS: slot -> master "host:port") is read on the
** first call from a seed or any node known. A command goes to the master
** of its key's slot (CRC16 of the key, or of its hash tag {...}, mod
** 16384); commands without a key go to any master. Keys of one command in
** different slots: nil, "CROSSSLOT ..." before anything is sent.
** MOVED: the map entry is updated and the command sent again; ASK: ASKING
** and the command to the node named, once; TRYAGAIN and CLUSTERDOWN: the
** map is read again and the command retried with a growing pause for up
** to opts.retry seconds (default 2), then the error is returned. A lost
** connection to a node (a master died): the map is read again for the
** next calls and the call returns nil, "connection lost (node h:p)" (it
** is not retried: the command may have run). A pipeline is split by node,
** the parts are sent in parallel (a task per extra node) and the replies
** put back in order; a part MOVED or ASKed is resent one command at a time.
--]]

local core = require "corun.core"

local M = {}

--[[ key slots ]]

local CRC = {}  -- CRC16-CCITT (XMODEM), as the cluster spec gives it
for i = 0, 255 do
  local c = i << 8
  for _ = 1, 8 do
    c = (c & 0x8000 ~= 0) and (((c << 1) ~ 0x1021) & 0xffff) or ((c << 1) & 0xffff)
  end
  CRC[i] = c
end

local byte = string.byte

local function crc16(s, i, j)
  local crc = 0
  for k = i, j do
    crc = ((crc << 8) & 0xffff) ~ CRC[((crc >> 8) ~ byte(s, k)) & 0xff]
  end
  return crc
end

-- The slot of a key (a string or a number, as sent): its hash tag, the
-- part between the first { and the next }, if that is not empty.
local function keyslot(key)
  key = tostring(key)
  local s = key:find("{", 1, true)
  if s then
    local e = key:find("}", s + 1, true)
    if e and e > s + 1 then return crc16(key, s + 1, e - 1) & 16383 end
  end
  return crc16(key, 1, #key) & 16383
end
M.keyslot = keyslot

--[[ where the keys of a command are ]]

-- {first, last, step}: last < 0 counts from the end (-1: the last word).
-- {numkeys = i, dest = j}: the key count at word i, the keys after it (and
-- a destination key at word j). "streams": XREAD's keys after STREAMS.
-- Any other command with an argument has its key at word 2.
local function span(first, last, step) return { first, last or -1, step or 1 } end
local SPECS = {}
for _, c in ipairs { "DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "SINTER",
    "SUNION", "SDIFF", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE",
    "PFCOUNT", "PFMERGE" } do SPECS[c] = span(2) end
for _, c in ipairs { "RENAME", "RENAMENX", "SMOVE", "RPOPLPUSH", "LMOVE",
    "BLMOVE", "BRPOPLPUSH", "COPY", "GEOSEARCHSTORE", "ZRANGESTORE",
    "LCS" } do SPECS[c] = span(2, 3) end
for _, c in ipairs { "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX" } do
  SPECS[c] = span(2, -2)
end
for _, c in ipairs { "OBJECT", "XINFO", "XGROUP" } do SPECS[c] = span(3, 3) end
for _, c in ipairs { "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL",
    "FCALL_RO", "BLMPOP", "BZMPOP" } do SPECS[c] = { numkeys = 3 } end
for _, c in ipairs { "ZUNION", "ZINTER", "ZDIFF", "SINTERCARD",
    "ZINTERCARD", "LMPOP", "ZMPOP" } do SPECS[c] = { numkeys = 2 } end
for _, c in ipairs { "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE" } do
  SPECS[c] = { numkeys = 3, dest = 2 }
end
SPECS.MSET, SPECS.MSETNX = span(2, -1, 2), span(2, -1, 2)
SPECS.BITOP = span(3)
SPECS.XREAD, SPECS.XREADGROUP = "streams", "streams"

local NOKEY = {}
for _, c in ipairs { "PING", "ECHO", "INFO", "TIME", "CLUSTER", "COMMAND",
    "CONFIG", "SCRIPT", "FUNCTION", "DBSIZE", "FLUSHALL", "FLUSHDB", "KEYS",
    "SCAN", "RANDOMKEY", "PUBLISH", "WAIT", "LASTSAVE", "SAVE", "BGSAVE",
    "BGREWRITEAOF", "CLIENT", "ACL", "DEBUG", "MEMORY", "SLOWLOG", "LATENCY",
    "READONLY", "READWRITE", "ASKING", "HELLO", "ROLE", "LOLWUT",
    "SWAPDB" } do NOKEY[c] = true end

-- Commands that need one connection for several calls.
local REFUSED = { MULTI = true, EXEC = true, DISCARD = true, WATCH = true,
                  UNWATCH = true, SELECT = true }

-- Command names in capitals, remembered (a few hundred at most).
local caps, ncaps = {}, 0
local function upper(s)
  local u = caps[s]
  if u == nil then
    u = s:upper()
    if ncaps < 512 then caps[s], ncaps = u, ncaps + 1 end
  end
  return u
end

-- The slot of command 'cmd' (a packed list of words); nil for a command
-- without a key; nil, "CROSSSLOT ..." if its keys are in different slots.
local function slot_of(cmd)
  local name = cmd[1]
  name = type(name) == "string" and upper(name) or name
  local spec, n = SPECS[name], cmd.n
  if spec == nil then  -- the common case: one key, the first argument
    local w = cmd[2]
    if NOKEY[name] or n < 2 or (type(w) ~= "string" and type(w) ~= "number") then
      return nil
    end
    return keyslot(w)
  end
  local keys = {}
  if spec == "streams" then
    for i = 2, n do
      if type(cmd[i]) == "string" and cmd[i]:upper() == "STREAMS" then
        for k = i + 1, i + (n - i) // 2 do keys[#keys + 1] = k end
        break
      end
    end
  elseif spec.numkeys then
    local nk = math.tointeger(tonumber(cmd[spec.numkeys]))
    if spec.dest then keys[1] = spec.dest end
    for k = spec.numkeys + 1, spec.numkeys + math.min(nk or 0, n) do
      keys[#keys + 1] = k
    end
  else
    local last = spec[2] < 0 and n + spec[2] + 1 or spec[2]
    for k = spec[1], math.min(last, n), spec[3] do keys[#keys + 1] = k end
  end
  local slot, first
  for _, k in ipairs(keys) do
    local w = cmd[k]
    if type(w) == "string" or type(w) == "number" then
      local s = keyslot(w)
      if slot == nil then slot, first = s, w
      elseif s ~= slot then
        return nil, ("CROSSSLOT Keys in request don't hash to the same slot "
          .. "(%s: '%s' in slot %d, '%s' in slot %d; a hash tag {...} puts "
          .. "keys in one slot)"):format(tostring(cmd[1]), tostring(first),
                                          slot, tostring(w), s)
      end
    end
  end
  return slot
end

-- The words of cmd are strings or numbers (the messages of the C client).
local function checkwords(cmd, i)
  if cmd.n == 0 then
    error(i and ("pipeline: command %d is empty"):format(i)
          or "call: a command expected", 3)
  end
  for k = 1, cmd.n do
    local t = type(cmd[k])
    if t ~= "string" and t ~= "number" then
      error(i and ("pipeline: command %d: argument %d must be a string or a "
                   .. "number"):format(i, k)
            or ("call: argument %d must be a string or a number"):format(k), 3)
    end
  end
  local name = type(cmd[1]) == "string" and upper(cmd[1])
  if REFUSED[name] then
    error(("%s: %s is not supported on a Redis Cluster client (it needs one "
           .. "connection over several calls): use EVAL, with its keys in "
           .. "one slot"):format(i and "pipeline" or "call", name), 3)
  end
end

--[[ the client ]]

local Cluster = {}
Cluster.__index = Cluster
Cluster.__name = "corun.redis.cluster"

local function split(addr)
  local host, port = addr:match("^%[?(.-)%]?:(%d+)$")
  return host, tonumber(port)
end

-- The plain client of node addr ("host:port"), made on first use.
function Cluster:_node(addr)
  local c = self.nodes[addr]
  if c == nil then
    local host, port = split(addr)
    c = core.redis_client(host, port, nil, self.password, 0)
    self.nodes[addr] = c
  end
  return c
end

-- The slot map: self.map holds, for each slot s, the index in self.mlist
-- (the masters, "host:port") of its master, in 2 bytes at s * 2 + 1 (0:
-- none). MOVED changes one slot.
local CHUNK = "<" .. ("I2"):rep(256)

function Cluster:_moved(slot, addr)
  local i
  for k, a in ipairs(self.mlist) do if a == addr then i = k end end
  if i == nil then
    self.mlist[#self.mlist + 1] = addr
    i = #self.mlist
  end
  self.map = self.map:sub(1, slot * 2) .. ("<I2"):pack(i)
             .. self.map:sub(slot * 2 + 3)
end

-- Read the slot map from the first node that answers: the masters known,
-- then the seeds, then the other nodes known. true | nil, why.
function Cluster:_load()
  local tried, order, last = {}, {}, nil
  local function add(a) if a and not tried[a] then tried[a] = true; order[#order + 1] = a end end
  for _, a in ipairs(self.mlist) do add(a) end
  for _, a in ipairs(self.seeds) do add(a) end
  for a in pairs(self.nodes) do add(a) end
  for _, addr in ipairs(order) do
    local res, err = self:_node(addr):call("CLUSTER", "SLOTS")
    if type(res) == "table" then
      local slots, masters, seen = {}, {}, {}
      for i = 1, 16384 do slots[i] = 0 end
      local asked = split(addr)
      for _, range in ipairs(res) do
        local m = range[3]
        if type(m) == "table" then
          local host = m[1]
          if host == nil or host == "" or host == "?" then host = asked end
          local a = (host:find(":", 1, true) and "[" .. host .. "]" or host)
                    .. ":" .. m[2]
          if not seen[a] then masters[#masters + 1] = a; seen[a] = #masters end
          for s = range[1] + 1, math.min(range[2] + 1, 16384) do slots[s] = seen[a] end
        end
      end
      local chunks = {}  -- the map as a string: the GC does not walk it
      for i = 0, 63 do
        chunks[i + 1] = CHUNK:pack(table.unpack(slots, i * 256 + 1, i * 256 + 256))
      end
      self.map, self.mlist = table.concat(chunks), masters
      self.loaded_at = core.time()
      return true
    end
    last = ("%s: %s"):format(addr, err or "not a cluster reply")
  end
  return nil, "cannot connect to the cluster: no node gave its slot map ("
              .. (last or "no node") .. ")"
end

-- Read the map again (one task at a time: the others wait for it).
function Cluster:_refresh()
  if self.refreshing then
    self.refreshing:wait()
    if self.map then return true end
    return nil, self.load_err
  end
  local ev = core.event()
  self.refreshing = ev
  local ok, res, err = pcall(self._load, self)
  self.refreshing = nil
  ev:set()
  if not ok then error(res, 0) end
  self.load_err = err
  return res, err
end

-- After a lost node or CLUSTERDOWN: read the map again, at most every
-- 0.1 s.
function Cluster:_stale()
  if core.time() - (self.loaded_at or 0) >= 0.1 then self:_refresh() end
end

-- The master for 'slot' (nil: any master); nil, why if no map.
function Cluster:_addr(slot)
  if self.map == nil then
    local ok, err = self:_refresh()
    if not ok then return nil, err end
  end
  local a = slot and self.mlist[("<I2"):unpack(self.map, slot * 2 + 1)]
  if a == nil then
    a = #self.mlist > 0 and self.mlist[math.random(#self.mlist)] or self.seeds[1]
  end
  return a
end

local function lost(err)
  return err:find("^connection lost") or err:find("^cannot connect")
end

-- Send cmd to the node of slot, following MOVED and ASK, retrying
-- TRYAGAIN and CLUSTERDOWN (up to self.retry seconds).
function Cluster:_exec(slot, cmd)
  local asking, redirects, delay, giveup = nil, 0, 0.02, nil
  while true do
    if self.closed then error("the redis client is closed", 0) end
    local addr, err = asking, nil
    if addr == nil then
      addr, err = self:_addr(slot)
      if addr == nil then return nil, err end
    end
    local node, res = self:_node(addr), nil
    if asking then
      asking = nil
      local r, e = node:_pipeline({ { "ASKING", n = 1 }, cmd })
      if r == nil then err = e
      else
        res = r[2]
        if type(res) == "table" and res.err ~= nil then res, err = nil, res.err end
      end
    else
      res, err = node:call(table.unpack(cmd, 1, cmd.n))
    end
    if err == nil then return res end
    local kind, s, target = err:match("^(%u+) (%d+) (%S+)")
    if kind == "MOVED" or kind == "ASK" then
      redirects = redirects + 1
      if redirects > 16 then return nil, err .. " (too many redirections)" end
      if target:sub(1, 1) == ":" then target = (split(addr)) .. target end
      if kind == "ASK" then asking = target
      elseif self.map then self:_moved(tonumber(s), target) end
    elseif err:find("^TRYAGAIN") or err:find("^CLUSTERDOWN") then
      local now = core.time()
      giveup = giveup or now + self.retry
      if now >= giveup then return nil, err end
      if err:find("^CLUSTERDOWN") then self:_stale() end
      core.sleep(math.min(delay, math.max(giveup - now, 0)))
      delay = math.min(delay * 2, 0.5)
    elseif lost(err) then
      self:_stale()
      return nil, ("%s (node %s)"):format(err, addr)
    else
      return nil, err
    end
  end
end

-- client:call(cmd, ...) -> reply | nil, message
function Cluster:call(...)
  if self.closed then error("the redis client is closed", 2) end
  local cmd = table.pack(...)
  checkwords(cmd)
  local slot, err = slot_of(cmd)
  if err then return nil, err end
  return self:_exec(slot, cmd)
end

-- client:pipeline(fn) -> list of replies, as the plain client's
function Cluster:pipeline(fn)
  local cmds = {}
  fn({ call = function(_, ...) cmds[#cmds + 1] = table.pack(...) end })
  return self:_pipeline(cmds)
end

function Cluster:_pipeline(cmds)
  if self.closed then error("the redis client is closed", 3) end
  local n = #cmds
  for i = 1, n do
    cmds[i].n = cmds[i].n or #cmds[i]
    checkwords(cmds[i], i)
  end
  local results, slots = { n = n }, {}
  if n == 0 then return results end
  local groups, order = {}, {}
  for i = 1, n do
    local slot, err = slot_of(cmds[i])
    if err then results[i] = { err = err }
    else
      local addr, why = self:_addr(slot)
      if addr == nil then return nil, why end
      slots[i] = slot or false
      local g = groups[addr]
      if g == nil then g = {}; groups[addr] = g; order[#order + 1] = addr end
      g[#g + 1] = i
    end
  end
  local failed
  local function send(addr)
    local idx, sub = groups[addr], {}
    for k, i in ipairs(idx) do sub[k] = cmds[i] end
    local r, err = self:_node(addr):_pipeline(sub)
    if r == nil then
      failed = failed or ("%s (node %s)"):format(err, addr)
      if lost(err) then self.loaded_at = 0 end
      return
    end
    for k, i in ipairs(idx) do results[i] = r[k] end
  end
  local tasks = {}
  for k = 2, #order do
    local t = core.spawn(send, order[k])
    t.name = "redis cluster pipeline to " .. order[k]
    tasks[#tasks + 1] = t
  end
  local ok, e = pcall(send, order[1])
  for _, t in ipairs(tasks) do
    if ok then ok, e = pcall(t.join, t) else t:cancel() end
  end
  if not ok then error(e, 0) end
  if failed then
    if self.loaded_at == 0 then self:_stale() end
    return nil, failed
  end
  for i = 1, n do  -- redirected or refused for now: again, one at a time
    local r = results[i]
    if type(r) == "table" and type(r.err) == "string" and slots[i] ~= nil
       and (r.err:find("^MOVED ") or r.err:find("^ASK ")
            or r.err:find("^TRYAGAIN") or r.err:find("^CLUSTERDOWN")) then
      local v, err = self:_exec(slots[i] or nil, cmds[i])
      if err then results[i] = { err = err } else results[i] = v end
    end
  end
  return results
end

-- client:close(): closes every node's connection.
function Cluster:close()
  if self.closed then return end
  self.closed = true
  for _, c in pairs(self.nodes) do c:close() end
end
Cluster.__close = Cluster.close

function Cluster:__tostring()
  return ("corun.redis cluster client (%s)"):format(table.concat(self.seeds, ","))
end

-- The node's plain client for a key (for commands that must go to that
-- node: a blocking read should get a client of its own instead).
function Cluster:node_for(key)
  local addr, err = self:_addr(keyslot(key))
  if addr == nil then return nil, err end
  return self:_node(addr), addr
end

-- The masters, as "host:port", after reading the slot map.
function Cluster:masters()
  local ok, err = self:_refresh()
  if not ok then return nil, err end
  local list = {}
  for i, a in ipairs(self.mlist) do list[i] = a end
  return list
end

--[[ connecting ]]

local function truthy(v)
  return v == true or v == "1" or v == "yes" or v == "true"
end

-- Whether connect(url, opts) asks for a cluster.
function M.wanted(url, opts)
  if type(opts) == "table" and opts.cluster ~= nil then return truthy(opts.cluster) end
  return type(url) == "string" and truthy(url:match("[?&]cluster=([^&]*)"))
end

-- redis://[:password@]host:port[,host:port...][/0][?cluster=1] (seeds)
function M.connect(url, opts)
  opts = type(opts) == "table" and opts or {}
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (URL string expected)", 3)
  end
  local rest = url:match("^rediss?://(.*)$")
  if not rest then
    error("bad argument #1 to 'connect' (a cluster URL is redis://[:password@]"
          .. "host:port[,host:port...][?cluster=1])", 3)
  end
  rest = rest:gsub("%?.*$", "")
  local auth, hosts = rest:match("^(.*)@(.*)$")
  hosts = hosts or rest
  local password = auth and (auth:match("^[^:]*:(.*)$") or auth) or nil
  if password == "" then password = nil end
  local db = hosts:match("/(%d*)$")
  hosts = hosts:gsub("/%d*$", "")
  if db and db ~= "" and tonumber(db) ~= 0 then
    error("bad argument #1 to 'connect' (a Redis Cluster has only database 0)", 3)
  end
  local seeds = {}
  for h in hosts:gmatch("[^,]+") do
    local host, port = h:match("^(%[[^%]]+%]):?(%d*)$")
    if not host then host, port = h:match("^([^:/]*):?(%d*)$") end
    if not host or (port ~= "" and tonumber(port) > 65535) then
      error("bad argument #1 to 'connect' (malformed cluster URL)", 3)
    end
    seeds[#seeds + 1] = (host ~= "" and host or "127.0.0.1") .. ":"
                        .. (port ~= "" and port or "6379")
  end
  if #seeds == 0 then seeds[1] = "127.0.0.1:6379" end
  local retry = opts.retry
  if retry ~= nil and (type(retry) ~= "number" or retry ~= retry or retry < 0) then
    error("bad argument #2 to 'connect' (retry must be a number of seconds >= 0)", 3)
  end
  return setmetatable({
    seeds = seeds, password = password, retry = retry or 2,
    nodes = {}, mlist = {}, map = nil, closed = false,
  }, Cluster)
end

return M
