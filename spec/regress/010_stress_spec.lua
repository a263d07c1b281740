-- spec/regress/010_stress_spec.lua: what held up under hostile testing
-- (issue 10), kept as stress specs bounded in time. Sizes are smaller
-- than the hostile runs (which used 1M tasks, 100k waiters, 10k
-- connections) so that make test stays short, and smaller again under
-- the sanitizers (CORUN_STRESS_SCALE, default 1; test/run.sh sets it).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local SCALE = tonumber(os.getenv("CORUN_STRESS_SCALE") or "1")
local function n(x) return math.max(10, math.floor(x * SCALE)) end

describe("stress (issue 10: what held up)", function()
  after_each(helper.check)

  it("tasks spawned and cancelled: every cleanup runs", async(function()
    local N = n(200000)
    local cleaned, ts = 0, {}
    for i = 1, N do
      ts[i] = corun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          cleaned = cleaned + 1
        end })
        corun.sleep(100)
      end)
    end
    corun.sleep(0)                  -- all parked
    for i = 1, N do ts[i]:cancel() end
    for i = 1, N do
      assert(corun.is_cancelled(helper.catch(ts[i].join, ts[i])))
    end
    assert.equal(N, cleaned)
  end))

  for _, kind in ipairs { "queue", "lifo_queue", "priority_queue" } do
    it(kind .. ": getters and putters cancelled at random lose nothing",
       async(function()
      local N = n(20000)
      local rnd = helper.lcg(7)
      local q = corun[kind](kind == "priority_queue" and 0 or 8)
      local put, got = {}, {}
      local getters, putters = {}, {}
      for i = 1, N do
        putters[i] = corun.spawn(function()
          q:put(i)
          put[#put + 1] = i
        end)
        getters[i] = corun.spawn(function()
          got[#got + 1] = q:get()
        end)
      end
      for _ = 1, N // 3 do
        local i = rnd(N)
        getters[i]:cancel()
        putters[rnd(N)]:cancel()
        if rnd(4) == 1 then corun.sleep(0) end
      end
      for i = 1, N do
        pcall(putters[i].join, putters[i])
      end
      corun.sleep(0)
      for i = 1, N do getters[i]:cancel() end
      for i = 1, N do pcall(getters[i].join, getters[i]) end
      while true do                  -- what is still in the queue
        local v = q:get_nowait()
        if v == nil then break end
        got[#got + 1] = v
      end
      table.sort(put)
      table.sort(got)
      assert.equal(#put, #got)      -- nothing lost, nothing twice
      for i = 1, #put do assert(put[i] == got[i], "item " .. put[i]) end
    end))
  end

  it("selectors over many channels with random cancellation: sends = receives",
     async(function()
    local NCH, NSEL = 64, n(2000)
    local rnd = helper.lcg(11)
    local chans = {}
    for i = 1, NCH do chans[i] = corun.channel(1) end
    local received = 0
    local sels = {}
    for i = 1, NSEL do
      local a, b = chans[rnd(NCH)], chans[rnd(NCH)]
      sels[i] = corun.spawn(function()
        local which = corun.select({ a, "recv" }, { b, "recv" })
        if which then received = received + 1 end
      end)
    end
    corun.sleep(0)
    local sent = 0
    for round = 1, NSEL do
      if rnd(3) == 1 then sels[rnd(NSEL)]:cancel() end
      local ch = chans[rnd(NCH)]
      if ch:send(round, 0) then sent = sent + 1 end
      if round % 16 == 0 then corun.sleep(0) end
    end
    corun.sleep(0.01)
    for i = 1, NSEL do sels[i]:cancel() end
    for i = 1, NSEL do pcall(sels[i].join, sels[i]) end
    local left = 0
    for i = 1, NCH do
      while chans[i]:recv(0) ~= nil do left = left + 1 end
    end
    assert.equal(sent, received + left)
  end))

  it("threads × messages at capacity 0, 64 and unbounded", async(function()
    local N = n(20000)
    for _, cap in ipairs { 0, 64, false } do
      local ch = cap and corun.channel(cap) or corun.channel()
      local producers = {}
      for p = 1, 4 do
        producers[p] = corun.thread(function(ch, p, N)
          for i = 1, N do ch:send(p * 10000000 + i) end
        end, ch, p, N)
      end
      local seen, count = {}, 0
      for _ = 1, 4 * N do
        local v = ch:recv()
        assert(not seen[v], "received twice: " .. tostring(v))
        seen[v] = true
        count = count + 1
      end
      for p = 1, 4 do producers[p]:join() end
      assert.equal(4 * N, count)
    end
  end))

  it("failing thread-pool jobs: each fails only itself", async(function()
    local N = n(2000)
    local pool = corun.pool(2)
    local fs = {}
    for i = 1, N do
      fs[i] = pool:submit(function(i)
        if i % 2 == 0 then error("job " .. i .. " failed", 0) end
        return i
      end, i)
    end
    local ok, bad = 0, 0
    for i = 1, N do
      local good, v = pcall(fs[i].wait, fs[i])
      if good then assert.equal(i, v); ok = ok + 1
      else assert.matches("job " .. i .. " failed", v); bad = bad + 1 end
    end
    assert.equal(N // 2, bad)
    assert.equal(N - N // 2, ok)
    pool:close()
    pool:join()
  end))

  it("corrupted codec messages never crash the decoder", function()
    local N = n(20000)
    local rnd = helper.lcg(3)
    local good = require("corun.core").codec_encode({ 1, "two", { three = 3.5 }, true })
    local failures = 0
    for _ = 1, N do
      local b = { good:byte(1, -1) }
      for _ = 1, 1 + rnd(4) do b[rnd(#b)] = rnd(256) - 1 end
      local ok = pcall(require("corun.core").codec_decode, string.char(table.unpack(b)))
      if not ok then failures = failures + 1 end
    end
    assert.is_true(failures > 0)
  end)

  it("many concurrent TCP connections are all served", async(function()
    local N = n(1000)
    local served = 0
    local server = assert(corun.tcp.listen("127.0.0.1", 0, function(s)
      local line = s:read("l")
      s:write(line, "\n")
      served = served + 1
    end, { backlog = 1024 }))
    local clients = {}
    for i = 1, N do
      clients[i] = corun.spawn(function()
        local c = assert(corun.tcp.connect("127.0.0.1", server.port))
        c:write("hello " .. i .. "\n")
        local r = c:read("l")
        c:close()
        return r
      end)
    end
    for i = 1, N do assert.equal("hello " .. i, clients[i]:join()) end
    server:close()
    assert.equal(N, served)
  end))
end)
