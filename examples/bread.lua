-- Two producer/consumer pairs share one queue: producers make a bread every
-- 0.5 s, consumers eat one a second and mark it done. The main task waits for
-- the producers, then for the queue to drain, then cancels the idle consumers.
-- Port of reference/asyncio-producer-consumer.txt. Run: corun examples/bread.lua
local corun = require "corun"

local PLATE_SIZE = 6                  -- each producer makes 6 breads

local function produce_bread(name, queue)
  for i = 0, PLATE_SIZE - 1 do
    local bread = "bread " .. i
    corun.sleep(0.5)                  -- making is fast: 0.5 s a piece
    queue:put(bread)
    print(name .. " makes " .. bread)
  end
end

local function consume_bread(name, queue)
  while true do
    local bread = queue:get()
    corun.sleep(1)                    -- eating is slow: 1 s a piece
    print(name .. " eats " .. bread)
    queue:task_done()
  end
end

local queue = corun.queue()           -- the plate, shared by both pairs

-- Consumers first, then producers: tasks first run in the order spawned.
local grace = corun.spawn(consume_bread, "Grace", queue)
local lucy = corun.spawn(consume_bread, "Lucy", queue)
corun.gather(corun.spawn(produce_bread, "John", queue),
             corun.spawn(produce_bread, "Mike", queue))

queue:join()                          -- every bread put has been eaten
grace:cancel()                        -- the consumers wait in get() forever:
lucy:cancel()                         -- cancel them
