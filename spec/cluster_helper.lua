-- spec/cluster_helper.lua: the Redis Cluster of the cluster specs
-- (spec/redis_cluster_*_spec.lua). CORUN_REDIS_CLUSTER and
-- CORUN_REDIS_CLUSTER_DIR (test/run.sh starts one with
-- test/redis_cluster.sh), or, when they are unset, a cluster of our own
-- started and stopped by test/redis_cluster.sh as a script.
local corun = require "corun"

local M = {}

-- Run a shell command without LD_PRELOAD (the ASan stage sets it; the
-- redis tools do not need it); its output.
local function sh(cmd)
  local f = assert(io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1"))
  local out = f:read("a")
  f:close()
  return out
end
M.sh = sh

-- url, dir, stop: the seed URL, the nodes' dir (node<i>/port, pid,
-- start.sh) and a function ending a cluster we started (a no-op for the
-- shared one).
function M.cluster()
  local url, dir = os.getenv("CORUN_REDIS_CLUSTER"), os.getenv("CORUN_REDIS_CLUSTER_DIR")
  if url and url ~= "" and dir and dir ~= "" then return url, dir, function() end end
  local bin = os.getenv("CORUN_BIN") or "build/bin/corun"
  local out = sh("bash test/redis_cluster.sh start '" .. bin .. "'")
  url = out:match("CORUN_REDIS_CLUSTER=(%S+)")
  dir = out:match("CORUN_REDIS_CLUSTER_DIR=(%S+)")
  assert(url and dir, "could not start a redis cluster:\n" .. out)
  return url, dir, function() sh("bash test/redis_cluster.sh stop '" .. dir .. "'") end
end

local function readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The nodes of the cluster in dir: list of {i, port, addr, dir}.
function M.nodes(dir)
  local list = {}
  for i = 0, 5 do
    local port = tonumber(readfile(("%s/node%d/port"):format(dir, i)) or "")
    if port then
      list[#list + 1] = { i = i, port = port, addr = "127.0.0.1:" .. port,
                          dir = ("%s/node%d"):format(dir, i) }
    end
  end
  return list
end

-- The pid of a node (its pid file).
function M.pid(node)
  return tonumber(readfile(node.dir .. "/pid") or "")
end

-- CLUSTER NODES of the node at addr (a plain client, in a task): list of
-- {id, addr, master = bool, master_id, fail = bool, myself = bool}.
function M.cluster_nodes(addr)
  local r <close> = corun.redis.connect("redis://" .. addr .. "/0")
  local text, err = r:call("CLUSTER", "NODES")
  if not text then return nil, err end
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local id, a, flags, master = line:match("^(%S+) (%S+) (%S+) (%S+)")
    list[#list + 1] = { id = id, addr = a:match("^([^@]+)"),
      master = flags:find("master", 1, true) ~= nil, master_id = master,
      fail = flags:find("fail", 1, true) ~= nil,
      myself = flags:find("myself", 1, true) ~= nil }
  end
  return list
end

-- Wait (in a task, up to 'limit' s) until every node says
-- cluster_state:ok; true or nil, why.
function M.wait_ok(dir, limit)
  local deadline = corun.time() + (limit or 30)
  local why
  repeat
    why = nil
    for _, n in ipairs(M.nodes(dir)) do
      local r <close> = corun.redis.connect("redis://" .. n.addr .. "/0")
      local info = r:call("CLUSTER", "INFO")
      if not (info and info:find("cluster_state:ok", 1, true)) then
        why = n.addr .. ": " .. tostring(info)
        break
      end
    end
    if not why then return true end
    corun.sleep(0.1)
  until corun.time() > deadline
  return nil, why
end

-- A to-be-closed guard for a spec that migrates 'slot' from the master on
-- port 'from' to the one on port 'to' (id to_id): on any exit, also a
-- failed assertion, the keys left on 'from' are moved and every master in
-- 'masters' ("host:port") gets the slot as to's (redis-cli: no yield),
-- so that no half-done migration is left to the specs after us.
function M.slot_guard(masters, slot, from, to, to_id)
  return setmetatable({}, { __close = function()
    local keys = sh(("redis-cli -p %d cluster getkeysinslot %d 1000"):format(from, slot))
    for k in keys:gmatch("[^\n]+") do
      sh(("redis-cli -p %d migrate 127.0.0.1 %d '%s' 0 5000"):format(from, to, k))
    end
    for _, m in ipairs(masters) do
      sh(("redis-cli -p %s cluster setslot %d node %s"):format(m:match(":(%d+)$"), slot, to_id))
    end
  end })
end

-- A to-be-closed guard for a spec that kills 'node': on any exit, the
-- node is started again if it does not answer (redis-cli: no yield).
function M.revive_guard(node)
  return setmetatable({}, { __close = function()
    if not sh(("redis-cli -p %d ping"):format(node.port)):find("PONG") then
      sh("sh '" .. node.dir .. "/start.sh'")
    end
  end })
end

-- A master of the cluster in dir with a replica (seen from node addr):
-- master, replica (entries of cluster_nodes) and the master's node (of
-- M.nodes); nil if none.
function M.master_with_replica(dir, addr, pick)
  local nodes = assert(M.cluster_nodes(addr))
  for _, m in ipairs(nodes) do
    if m.master and not m.fail and (pick == nil or pick == m.addr) then
      for _, s in ipairs(nodes) do
        if not s.master and not s.fail and s.master_id == m.id then
          for _, n in ipairs(M.nodes(dir)) do
            if n.addr == m.addr then return m, s, n end
          end
        end
      end
    end
  end
end

-- Start a killed node again and wait (up to 30 s) until the cluster is ok
-- and 'replica' (now its master) has it as a replica in sync; true or nil,
-- why.
function M.restart(dir, node, replica)
  M.sh("sh '" .. node.dir .. "/start.sh'")
  local ok, why = M.wait_ok(dir, 30)
  if not ok then return nil, why end
  local deadline = corun.time() + 30
  local master <close> = corun.redis.connect("redis://" .. replica.addr .. "/0")
  local online = ("port=%d,state=online"):format(node.port)
  repeat
    for _, m in ipairs(assert(M.cluster_nodes(replica.addr))) do
      if m.addr == node.addr and not m.fail and not m.master then
        -- and its copy of the data is in sync
        local info = master:call("INFO", "replication")
        if info and info:find(online, 1, true) then return true end
      end
    end
    corun.sleep(0.1)
  until corun.time() > deadline
  return nil, "the killed node did not rejoin as a replica in sync"
end

return M
