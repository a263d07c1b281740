-- spec/regress/009_spawn_alloc_spec.lua: the runner's allocator (main.c:
-- small blocks from 16-byte size classes, the rest from the C library;
-- issue 9 section 5). A script that allocates, grows, shrinks and frees
-- blocks of every size across the small/large boundary (strings, tables
-- whose parts are resized both ways, coroutines with deep stacks, tasks)
-- prints the same under the runner's allocator as under the C library's
-- (CORUN_ALLOC=libc), and both exit 0.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

local CHURN = [[
local corun = require "corun"
local sum, keep = 0, {}
local function h(s)
  local x = 0
  for i = 1, #s, 97 do x = (x * 31 + s:byte(i)) % 1000003 end
  return x + #s
end
for round = 1, 3 do
  for n = 1, 3000, 7 do  -- strings of every size, across 1024 bytes
    local s = string.rep(string.char(65 + n % 26), n)
    sum = (sum + h(s)) % 1000003
    if n % 5 == 0 then keep[#keep + 1] = s end
  end
  local t = {}
  for i = 1, 5000 do t[i] = i * round end  -- array part grows
  for i = 5000, 10, -1 do t[i] = nil end   -- and shrinks on rehash
  local hsh = {}
  for i = 1, 3000 do hsh["k" .. i] = i end
  for i = 1, 3000, 2 do hsh["k" .. i] = nil end
  collectgarbage()
  for k, v in pairs(hsh) do sum = (sum + v) % 1000003 end
  local function deep(k) if k == 0 then return 0 end return 1 + deep(k - 1) end
  local co = coroutine.wrap(function() coroutine.yield(deep(3000)) end)
  sum = (sum + co()) % 1000003
  local tasks = {}
  for i = 1, 2000 do
    tasks[i] = corun.spawn(function(j)
      local buf = {}
      for k = 1, j % 50 do buf[k] = ("x"):rep(k * 10) end
      corun.sleep(0)
      return #table.concat(buf)
    end, i)
  end
  for i, r in ipairs(corun.gather(tasks)) do sum = (sum + r * i) % 1000003 end
  for i = 1, #keep, 3 do keep[i] = false end
  collectgarbage()
end
print("sum", sum, #keep)
]]

describe("the runner's allocator (regress 009)", function()
  it("gives the same results as the C library's", async(function()
    local st1, out1, err1 = helper.run_child(CORUN, { "-e", CHURN }, 120)
    local st2, out2, err2 = helper.run_child("/bin/sh",
      { "-c", 'CORUN_ALLOC=libc exec "$0" -e "$1"', CORUN, CHURN }, 120)
    assert.equal(0, st1, err1)
    assert.equal(0, st2, err2)
    assert.truthy(out1:find("^sum\t%d+\t%d+\n$"), out1)
    assert.equal(out2, out1)
  end))
end)
