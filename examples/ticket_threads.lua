-- Four buyer threads grab 10 tickets. corun threads share no memory, so the
-- count cannot be a global guarded by a Lock: it travels through a channel,
-- or one task owns it and sells on request. Port of the ticket grabbing of
-- reference/multiprocessing-lock-queue.txt (with Lock; no random sleeps).
local corun = require "corun"

local BUYERS, TICKETS = 4, 10

-- Start the buyers, join them and check what they bought: every ticket
-- 1..TICKETS sold exactly once.
local function sell(buyer, ...)
  local threads = {}
  for i = 1, BUYERS do threads[i] = corun.thread(buyer, "buyer" .. i, ...) end
  local times, sold = {}, 0
  for _, th in ipairs(threads) do
    for _, ticket in ipairs((th:join())) do
      times[ticket] = (times[ticket] or 0) + 1
      sold = sold + 1
    end
  end
  local twice = 0
  for t = 1, TICKETS do
    if (times[t] or 0) > 1 then twice = twice + 1 end
  end
  print(("sold %d tickets for %d seats; %d of them sold more than once"):format(
    sold, TICKETS, twice))
end

print("-- each thread with its own copy of the count (no sharing at all)")
-- Arguments are copied: every buyer gets a private {left = 10} and sells
-- all of it. This is what a plain global would do across corun threads.
sell(function(name, stock)
  local corun = require "corun"
  local mine = {}
  while stock.left > 0 do
    corun.sleep(0.001)
    mine[#mine + 1] = stock.next
    stock.left, stock.next = stock.left - 1, stock.next + 1
  end
  return mine
end, {left = TICKETS, next = 1})

print("-- the count passed around in a channel of capacity 1 (a lock)")
-- Python: with lock: read count; if count > 0: count -= 1 (I/O in between).
-- Here the count itself is the lock: box:recv() takes it (acquire), and
-- box:send(count) puts it back (release). While one buyer holds it nobody
-- else can read it, so the read-modify-write cannot interleave.
local box = corun.channel(1)
box:send({left = TICKETS, next = 1})
sell(function(name, box)
  local corun = require "corun"
  local mine = {}
  while true do
    local stock = box:recv()           -- acquire
    if stock.left == 0 then
      box:send(stock)                  -- release, and stop: sold out
      return mine
    end
    corun.sleep(0.001)                 -- the network I/O of the reference
    mine[#mine + 1] = stock.next
    stock.left, stock.next = stock.left - 1, stock.next + 1
    box:send(stock)                    -- release
  end
end, box)

print("-- the count owned by one task that sells on request")
-- The count never leaves the main thread: one task holds it and serves the
-- requests one at a time, so its check-and-decrement needs no lock at all.
-- A request carries the buyer's own reply channel.
local requests = corun.channel()
local office = corun.spawn(function()
  local left, nextticket = TICKETS, 1
  for req in requests:iter() do
    if left > 0 then
      req.reply:send(nextticket)
      left, nextticket = left - 1, nextticket + 1
    else
      req.reply:send(false)            -- sold out
    end
  end
  return left
end)
sell(function(name, requests)
  local corun = require "corun"
  local reply, mine = corun.channel(1), {}
  while true do
    requests:send({who = name, reply = reply})
    local ticket = reply:recv()
    if not ticket then return mine end
    mine[#mine + 1] = ticket
    corun.sleep(0.001)
  end
end, requests)
requests:close()                       -- the office task ends its loop
print(("tickets left at the office: %d"):format(office:join()))
