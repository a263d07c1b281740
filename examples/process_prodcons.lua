-- Producer/consumer across processes: two producer processes and two
-- consumer processes, each a child `corun` running a small script. The
-- master is the queue between them (multiprocessing.Queue's role): a relay
-- task per producer reads the items it prints and puts them on a
-- corun.queue; a relay task per consumer takes them off and writes them to
-- its consumer's stdin, one at a time. When both producers have exited the
-- master puts one sentinel per consumer, which ends it.
-- Port of the producer/consumer program of
-- reference/multiprocessing-lock-queue.txt; random sleeps are fixed ones
-- and the output is a summary, since the processes interleave freely.
-- Run: corun examples/process_prodcons.lua
local corun = require "corun"

-- The runner for the children: $CORUN_BIN, else the corun running this
-- script (arg[-1]), else `corun` on PATH.
local function runner()
  local env = os.getenv("CORUN_BIN")
  if env and env ~= "" then return env end
  if arg and arg[-1] and arg[-1]:match("corun$") then return arg[-1] end
  return "corun"
end

-- A producer prints one item per line, then exits (end of its stdout).
local PRODUCER = [[
local corun = require "corun"
local food, pause = ...
for i = 0, 2 do
  corun.sleep(tonumber(pause))          -- cooking
  io.write(food, i, "\n")
  io.stdout:flush()                     -- a pipe: flush each item
end
]]

-- A consumer reads items from stdin until the sentinel (an empty line) and
-- acknowledges each one after eating it. It has nothing else to do, so
-- blocking io.read is fine here.
local CONSUMER = [[
local corun = require "corun"
local name = ...
for item in io.lines() do
  if item == "" then break end          -- the sentinel
  corun.sleep(0.03)                     -- eating
  io.write(name, " ate ", item, "\n")
  io.stdout:flush()
end
io.write(name, " got the sentinel\n")
]]

local items = corun.queue()             -- the master's queue
local STOP = {}                         -- the sentinel on that queue
local made, eaten, farewells = {}, {}, {}

local function producer(food, pause)
  local p = assert(corun.process.spawn(runner(),
    {"-e", PRODUCER, food, pause}, {stdout = "pipe"}))
  local n = 0
  for item in function() return p.stdout:read("l") end do
    items:put(item)
    n = n + 1
  end
  assert(p:wait() == 0)
  made[#made + 1] = food .. ": " .. n
end

local function consumer(name)
  local p = assert(corun.process.spawn(runner(), {"-e", CONSUMER, name},
    {stdin = "pipe", stdout = "pipe"}))
  while true do
    local item = items:get()
    if item == STOP then break end
    p.stdin:write(item, "\n")
    local ack = p.stdout:read("l")      -- "<name> ate <item>"
    eaten[#eaten + 1] = ack:match(" ate (.*)$")
  end
  p.stdin:write("\n")                   -- pass the sentinel on
  p.stdin:close()
  local rest = p.stdout:read("a")       -- read first: the index below
  farewells[#farewells + 1] = rest:gsub("\n$", "")   -- must not be stale
  return p:wait()
end

local producers = {
  corun.spawn(producer, "fish", 0.02),
  corun.spawn(producer, "pork", 0.03),
}
local consumers = {corun.spawn(consumer, "xx"), corun.spawn(consumer, "yy")}

corun.wait(producers)                   -- p1.join(); p2.join()
for _ = 1, #consumers do items:put(STOP) end   -- one sentinel per consumer
local codes = corun.gather(consumers)

table.sort(made)
table.sort(eaten)
table.sort(farewells)
print("made:  " .. table.concat(made, ", "))
print("eaten: " .. table.concat(eaten, " ") .. " (" .. #eaten .. " items)")
for _, line in ipairs(farewells) do print(line) end
print("consumer exit codes: " .. table.concat(codes, " "))
print("the master ends")
