-- Ticket grabbing across processes. Six buyer processes (child `corun`s)
-- share a file as their database: 3 tickets. Buying means reading the
-- count, then (after some network time) writing it back minus one, so two
-- buyers that read the same count sell the same ticket twice. A lock makes
-- it correct; corun has no lock between processes, so the master runs a
-- lock server: one task per buyer reads the buyer's requests from its
-- stdout ("acquire", "release") and answers on its stdin, holding a
-- corun.lock() for it meanwhile. A buyer that dies while holding the lock
-- cannot block the others: its task sees end of stream and releases.
-- Port of the ticket program of reference/multiprocessing-lock-queue.txt
-- (multiprocessing.Lock); random sleeps are fixed, and the buyers start
-- together at a gate, so the unlocked run below always oversells.
-- Run: corun examples/ticket_processes.lua
local corun = require "corun"

local BUYERS, TICKETS = 6, 3

local function runner()   -- $CORUN_BIN, else this corun, else PATH's
  local env = os.getenv("CORUN_BIN")
  if env and env ~= "" then return env end
  if arg and arg[-1] and arg[-1]:match("corun$") then return arg[-1] end
  return "corun"
end

-- The buyer. The database file: "count=N", then one "ticket T NAME" line
-- per sale. It talks to the master line by line; blocking io.read is fine
-- in a process that has nothing else to do.
local BUYER = [[
local corun = require "corun"
local db, name = ...
local function tell(msg) io.write(msg, "\n") io.stdout:flush() end
local function load()
  local f = assert(io.open(db))
  local count = tonumber(f:read("l"):match("^count=(%d+)$"))
  local sales = f:read("a")
  f:close()
  return count, sales
end
tell("ready")
assert(io.read("l") == "go")            -- everybody clicks at once
tell("acquire")
assert(io.read("l") == "ok")            -- the lock is ours
local count, sales = load()
corun.sleep(0.05)                       -- network time
if count > 0 then
  local f = assert(io.open(db, "w"))
  f:write("count=", count - 1, "\n", sales, "ticket ", count, " ", name, "\n")
  f:close()
  tell("bought ticket " .. count)
else
  tell("sold out")
end
tell("release")
]]

-- The master's side of one buyer: the lock server and the gate.
local function serve(p, lock, gate, outcome)
  local held = false
  while true do
    local msg = p.stdout:read("l")
    if msg == nil then break end                -- the buyer exited
    if msg == "ready" then
      gate:wait()
      p.stdin:write("go\n")
    elseif msg == "acquire" then
      lock:acquire()
      held = true
      p.stdin:write("ok\n")
    elseif msg == "release" then
      lock:release()
      held = false
    else
      outcome[#outcome + 1] = msg
    end
  end
  if held then lock:release() end
  p.stdin:close()
  return p:wait()
end

-- A lock that does nothing, to show what the real one prevents.
local no_lock = {acquire = function() end, release = function() end}

-- One sale: a fresh database, BUYERS buyer processes, `lock` in the master.
-- Returns the database's count and sales, and what the buyers were told.
local function sale(lock)
  local db = os.tmpname()
  local f = assert(io.open(db, "w"))
  f:write("count=", TICKETS, "\n")
  f:close()
  local gate, outcome, tasks = corun.barrier(BUYERS), {}, {}
  for i = 1, BUYERS do
    local p = assert(corun.process.spawn(runner(),
      {"-e", BUYER, db, "buyer" .. i}, {stdin = "pipe", stdout = "pipe"}))
    tasks[i] = corun.spawn(serve, p, lock, gate, outcome)
  end
  for _, code in ipairs(corun.gather(tasks)) do assert(code == 0) end
  f = assert(io.open(db))
  local count = tonumber(f:read("l"):match("count=(%d+)"))
  local sales = {}
  for t, name in f:read("a"):gmatch("ticket (%d+) (%S+)") do
    sales[#sales + 1] = t .. ":" .. name
  end
  f:close()
  os.remove(db)
  return count, sales, outcome
end

-- The tickets the buyers were told they bought, sorted; and whether one
-- of them was sold twice.
local function tickets(outcome)
  local sold, seen, twice = {}, {}, false
  for _, msg in ipairs(outcome) do
    local t = tonumber(msg:match("^bought ticket (%d+)$"))
    if t then
      twice = twice or seen[t] == true
      seen[t] = true
      sold[#sold + 1] = t
    end
  end
  table.sort(sold)
  return sold, twice
end

print(("%d buyer processes, %d tickets"):format(BUYERS, TICKETS))

local count, sales, outcome = sale(corun.lock())
local sold, twice = tickets(outcome)
print("with the lock:")
print("  tickets bought: " .. table.concat(sold, " ") .. "; sold out: "
      .. #outcome - #sold)
print("  a ticket sold twice: " .. tostring(twice))
print(("  database: count=%d, %d sales recorded"):format(count, #sales))

count, sales, outcome = sale(no_lock)
sold, twice = tickets(outcome)
print("without the lock:")
print("  more tickets bought than exist: " .. tostring(#sold > TICKETS))
print("  a ticket sold twice: " .. tostring(twice))
print("  sales lost from the database: " .. tostring(#sales < #sold))
