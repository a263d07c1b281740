-- spec/channel_spec.lua: channels and corun.select (src/channel.c), from
-- tasks, plain callbacks, other threads and plain (loopless) main chunks.
-- Threads, pools and futures are in spec/thread_spec.lua.
--
-- Functions run by other threads are copied: they use only their
-- parameters and globals (`local corun = require "corun"` when needed).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fail, raises = helper.both, helper.fail, helper.raises
local async = cb.async



-- Join t, which must have been cancelled.
local function join_cancelled(t)
  local e = catch(t.join, t)
  assert(corun.is_cancelled(e), "expected Cancelled, got " .. tostring(e))
end

-- Run Lua code in a child lua5.4 (same environment), from a task, without
-- a shell (a shell crashes under the TSan stage); returns the exit status,
-- stdout and stderr.
local function run_lua(code)
  local status, out, err = corun.process.run("timeout",
    { "-s", "KILL", "20", "lua5.4", "-" }, { input = code })
  return status, out, err
end

-- Everything buffered in ch, polled.
local function drain(ch)
  local got = {}
  while true do
    local v = ch:recv(0)
    if v == nil then return got end
    got[#got + 1] = v
  end
end

--[[ channels ]]

describe("corun.channel", function()
  after_each(helper.check)

  it("sends copies, received in FIFO order", async(function()
    local ch = corun.channel()
    local t = { 1, { 2 }, k = "v" }
    t.self = t
    assert.is_true(ch:send(t))
    t[1] = "changed after sending"
    for _, v in ipairs({ false, 0, "", 1.5, "s", math.maxinteger }) do
      assert.is_true(ch:send(v))
    end
    assert.is_true(ch:send(function(x) return x + 1 end))
    local r = ch:recv()
    assert.are_not.equal(t, r)
    assert.equal(1, r[1])
    assert.equal(r, r.self)
    assert.same({ 2 }, r[2])
    for _, v in ipairs({ false, 0, "", 1.5, "s", math.maxinteger }) do
      assert.same(both(v), both(ch:recv()))
    end
    assert.equal(2, ch:recv()(1))
    assert.matches("^corun%.channel %(capacity %-1%)", tostring(ch))
    assert.matches("^corun%.channel %(capacity 0%)",
                   tostring(corun.channel(0)))
    assert.matches("^corun%.channel %(capacity 3%)",
                   tostring(corun.channel(3)))
  end))

  it("# counts the buffered values; closed() tells a closed channel",
  async(function()
    local ch = corun.channel(5)
    assert.equal(0, #ch)
    assert.is_false(ch:closed())
    ch:send("a")
    ch:send("b")
    assert.equal(2, #ch)
    ch:recv()
    assert.equal(1, #ch)
    ch:close()
    assert.is_true(ch:closed())
    assert.equal(1, #ch)
    ch:recv()
    assert.equal(0, #ch)
  end))

  it("unbounded (no capacity): a send never waits", async(function()
    local ch = corun.channel()
    for i = 1, 10000 do assert.is_true(ch:send(i, 0)) end
    assert.equal(10000, #ch)
    for i = 1, 10000 do assert.equal(i, ch:recv(0)) end
    assert.same(fail("timeout"), both(ch:recv(0)))
  end))

  it("bounded: senders wait while it is full; a receive lets the first "
     .. "waiting sender in", async(function()
    local ch = corun.channel(2)
    assert.is_true(ch:send(1))
    assert.is_true(ch:send(2, 0))
    assert.same(fail("timeout"), both(ch:send("no room", 0)))
    local log = {}
    local senders = {}
    for i = 3, 5 do
      senders[i] = corun.spawn(function()
        local ok = ch:send(i)
        log[#log + 1] = i
        return ok
      end)
    end
    corun.sleep(0.02)
    assert.same({}, log)
    assert.equal(2, #ch)
    assert.equal(1, ch:recv())
    assert.equal(2, #ch)   -- sender 3's value moved into the free slot
    corun.sleep(0.02)
    assert.same({ 3 }, log)
    for i = 2, 5 do assert.equal(i, ch:recv()) end
    for i = 3, 5 do assert.is_true(senders[i]:join()) end
    assert.same({ 3, 4, 5 }, log)
    assert.equal(0, #ch)
  end))

  it("capacity 0 is a rendezvous: a send waits for its receiver",
  async(function()
    local ch = corun.channel(0)
    assert.same(fail("timeout"), both(ch:send("nobody", 0)))
    assert.same(fail("timeout"), both(ch:send("nobody", 0.02)))
    assert.same(fail("timeout"), both(ch:recv(0)))
    local log = {}
    local sender = corun.spawn(function()
      ch:send("v")
      log[#log + 1] = "sent"
    end)
    corun.sleep(0.02)
    assert.same({}, log)
    assert.equal(0, #ch)
    assert.equal("v", ch:recv())
    sender:join()
    assert.same({ "sent" }, log)
    -- a poll takes a waiting sender's value
    local s2 = corun.spawn(function() return ch:send("w") end)
    corun.sleep(0.01)
    assert.equal("w", ch:recv(0))
    assert.is_true(s2:join())
    -- a send with a receiver waiting completes at once, even polled
    local r = corun.spawn(function() return ch:recv() end)
    corun.sleep(0.01)
    assert.is_true(ch:send("x", 0))
    assert.equal("x", r:join())
  end))

  it("recv and send time out after their timeout; 0 polls", async(function()
    local ch = corun.channel(1)
    local t0 = corun.time()
    assert.same(fail("timeout"), both(ch:recv(0.05)))
    assert.is_true(corun.time() - t0 >= 0.049)
    local ran = false  -- a poll does not suspend: this task cannot run
    corun.spawn(function() ran = true end)
    assert.same(fail("timeout"), both(ch:recv(0)))
    assert.is_false(ran)
    ch:send("full")
    t0 = corun.time()
    assert.same(fail("timeout"), both(ch:send("late", 0.05)))
    assert.is_true(corun.time() - t0 >= 0.049)
    -- the timed-out value was not delivered
    assert.equal("full", ch:recv())
    assert.same(fail("timeout"), both(ch:recv(0)))
  end))

  it("close: buffered values are still received, then nil, 'closed'",
  async(function()
    local ch = corun.channel(3)
    ch:send(1)
    ch:send(2)
    ch:close()
    ch:close()  -- harmless
    assert.same(fail("closed"), both(ch:send(3)))
    assert.same(fail("closed"), both(ch:send(3, 0)))
    assert.equal(1, ch:recv())
    assert.equal(2, ch:recv(0))
    assert.same(fail("closed"), both(ch:recv()))
    assert.same(fail("closed"), both(ch:recv(0)))
    assert.same(fail("closed"), both(ch:recv(1)))
  end))

  it("close wakes blocked receivers and senders with nil, 'closed'; "
     .. "buffered values are still drained", async(function()
    local empty = corun.channel()
    local full = corun.channel(1)
    full:send("kept")
    local receivers, senders = {}, {}
    for i = 1, 3 do
      receivers[i] = corun.spawn(function() return empty:recv() end)
      senders[i] = corun.spawn(function() return full:send("dropped " .. i) end)
    end
    corun.sleep(0.02)
    empty:close()
    full:close()
    for i = 1, 3 do
      assert.same(fail("closed"), both(receivers[i]:join()))
      assert.same(fail("closed"), both(senders[i]:join()))
    end
    assert.equal("kept", full:recv())
    assert.same(fail("closed"), both(full:recv()))
  end))

  it("close wakes receivers and senders blocked in other threads",
  async(function()
    local r, s = corun.channel(), corun.channel(0)
    local ths = {}
    for i = 1, 3 do
      ths[#ths + 1] = corun.thread(function(r) return r:recv() end, r)
      ths[#ths + 1] = corun.thread(function(s, i) return s:send(i) end, s, i)
    end
    corun.sleep(0.1)
    r:close()
    s:close()
    for i = 1, #ths do
      assert.same(fail("closed"), both(ths[i]:join(10)))
    end
  end))

  it("iter gives the values until the channel is closed and drained",
  async(function()
    local ch = corun.channel(2)
    local producer = corun.spawn(function()
      for i = 1, 5 do ch:send(i) end
      ch:close()
    end)
    local got = {}
    for v in ch:iter() do got[#got + 1] = v end
    assert.same({ 1, 2, 3, 4, 5 }, got)
    producer:join()
    for _ in ch:iter() do error("nothing left") end
  end))

  it("a task cancelled while waiting in recv takes nothing", async(function()
    local ch = corun.channel()
    local r = corun.spawn(function() return ch:recv() end)
    corun.sleep(0.01)
    r:cancel()
    join_cancelled(r)
    ch:send("for someone else")
    assert.equal("for someone else", ch:recv(0))
  end))

  it("a task cancelled once a value was handed to it keeps the value",
  async(function()
    local ch = corun.channel()
    local got = {}
    local r = corun.spawn(function()
      got[#got + 1] = ch:recv()
      corun.sleep(1)  -- the next suspension raises Cancelled
      got[#got + 1] = "not reached"
    end)
    corun.sleep(0.01)
    ch:send("handed")  -- to r's waiting recv, which has not run yet
    r:cancel()
    join_cancelled(r)
    assert.same({ "handed" }, got)
    assert.same(fail("timeout"), both(ch:recv(0)))
  end))

  it("a task cancelled while waiting in send delivers nothing",
  async(function()
    local ch = corun.channel(0)
    local s = corun.spawn(function() return ch:send("never") end)
    corun.sleep(0.01)
    s:cancel()
    join_cancelled(s)
    assert.same(fail("timeout"), both(ch:recv(0)))
    -- and one whose value was taken before it ran learns it was sent
    local log = {}
    local s2 = corun.spawn(function()
      log[#log + 1] = ch:send("taken")
      corun.sleep(1)
    end)
    corun.sleep(0.01)
    assert.equal("taken", ch:recv(0))
    s2:cancel()
    join_cancelled(s2)
    assert.same({ true }, log)
  end))

  it("cancelling receivers at random while a thread sends loses and "
     .. "duplicates nothing", async(function()
    local N = 3000
    local ch = corun.channel(4)
    local producer = corun.thread(function(ch, n)
      for i = 1, n do ch:send(i) end
      ch:close()
    end, ch, N)
    local seen, count = {}, 0
    local function take(v)
      assert(not seen[v], "duplicate " .. tostring(v))
      seen[v] = true
      count = count + 1
    end
    local rnd = helper.lcg(7)
    local done = false
    while not done do
      local workers = {}
      for i = 1, 4 do
        workers[i] = corun.spawn(function()
          while true do
            local v = ch:recv()
            if v == nil then return "closed" end
            take(v)
          end
        end)
      end
      corun.sleep(rnd(3) * 0.001)
      for i = 1, 4 do workers[i]:cancel() end
      for i = 1, 4 do
        local ok, e = pcall(workers[i].join, workers[i])
        if ok then done = true
        else assert(corun.is_cancelled(e), tostring(e)) end
      end
    end
    for v in ch:iter() do take(v) end
    producer:join()
    assert.equal(N, count)
    for i = 1, N do assert(seen[i], "lost " .. i) end
  end))

  it("8 threads x 100,000 messages through one channel: nothing lost or "
     .. "duplicated", async(function()
    local N, K = 100000, 8
    local ch = corun.channel(64)
    local producers = {}
    for k = 1, K do
      producers[k] = corun.thread(function(ch, k, n, K)
        for i = 0, n - 1 do ch:send(i * K + k) end
        return n
      end, ch, k, N, K)
    end
    local seen, count, sum = {}, 0, 0
    for _ = 1, N * K do
      local v = ch:recv(10)
      assert(type(v) == "number", "got " .. tostring(v))
      if seen[v] then error("duplicate " .. v) end
      seen[v] = true
      count = count + 1
      sum = sum + v
    end
    for k = 1, K do assert.equal(N, producers[k]:join()) end
    assert.same(fail("timeout"), both(ch:recv(0)))
    local M = N * K
    assert.equal(M, count)
    assert.equal(M * (M + 1) // 2, sum)
  end))

  it("several receiving threads share the values (MPMC)", async(function()
    local N = 20000
    local ch, results = corun.channel(16), corun.channel()
    local consumers = {}
    for c = 1, 3 do
      consumers[c] = corun.thread(function(ch, results)
        local count, sum = 0, 0
        for v in ch:iter() do
          count = count + 1
          sum = sum + v
        end
        results:send({ count, sum })
      end, ch, results)
    end
    local producers = {}
    for p = 1, 2 do
      producers[p] = corun.thread(function(ch, p, n)
        for i = p, n, 2 do ch:send(i) end
      end, ch, p, N)
    end
    for p = 1, 2 do producers[p]:join() end
    ch:close()
    local count, sum = 0, 0
    for c = 1, 3 do
      consumers[c]:join()
      local r = results:recv()
      count, sum = count + r[1], sum + r[2]
    end
    assert.equal(N, count)
    assert.equal(N * (N + 1) // 2, sum)
  end))

  it("ping-pong between two threads' tasks", async(function()
    local ping, pong = corun.channel(0), corun.channel(0)
    local echo = corun.thread(function(ping, pong)
      for v in ping:iter() do pong:send(v + 1) end
      return "echo done"
    end, ping, pong)
    local v = 0
    for _ = 1, 2000 do
      ping:send(v)
      v = pong:recv()
    end
    ping:close()
    assert.equal(2000, v)
    assert.equal("echo done", echo:join())
  end))

  it("travels through channels, inside tables and to threads",
  async(function()
    local outer, inner = corun.channel(), corun.channel()
    outer:send(inner)
    outer:send({ chans = { inner } })
    local a = outer:recv()
    local b = outer:recv().chans[1]
    assert.are_not.equal(inner, a)  -- another box, the same channel
    a:send("via a")
    b:send("via b")
    assert.equal("via a", inner:recv())
    assert.equal("via b", inner:recv())
    -- a thread gets a reply channel through a channel and answers on it
    local requests = corun.channel()
    local server = corun.thread(function(requests)
      for req in requests:iter() do req.reply:send(req.x * 2) end
    end, requests)
    for i = 1, 5 do
      local reply = corun.channel(1)
      requests:send({ x = i, reply = reply })
      assert.equal(i * 2, reply:recv(10))
    end
    requests:close()
    server:join()
  end))

  it("has boxes made and collected in another thread, all on one "
     .. "channel", async(function()
    local ch = corun.channel()
    local th = corun.thread(function(ch)
      for _ = 1, 100 do
        local copy = ch  -- new boxes are made and collected in the thread
        copy:send(1)
      end
      collectgarbage()
      return #ch
    end, ch)
    assert.equal(100, th:join())
    ch = nil
    collectgarbage()
    collectgarbage()
  end))

  it("refuses nil, values that cannot be copied, bad capacities and "
     .. "timeouts", async(function()
    local ch = corun.channel()
    raises("nil", ch.send, ch, nil)
    raises("value expected", ch.send, ch)
    raises("userdata value", ch.send, ch, io.stdout)
    raises("coroutine value", ch.send, ch, { { coroutine.running() } })
    local x = 1
    raises("function with upvalue 'x'", ch.send, ch, function() return x end)
    assert.equal(0, #ch)  -- nothing half-sent
    raises("capacity must be >= 0", corun.channel, -1)
    raises("number has no integer representation", corun.channel, 1.5)
    raises("number expected", corun.channel, "x")
    raises("timeout must be >= 0", ch.recv, ch, -1)
    raises("timeout must be >= 0", ch.send, ch, 1, -0.5)
    raises("timeout must be >= 0", ch.recv, ch, 0 / 0)
    raises("corun.channel expected", ch.recv, {})
    raises("corun.channel expected", ch.send, corun.queue(), 1)
  end))

  it("from a plain callback: works when nothing must wait, raises when "
     .. "it would", async(function()
    local ch = corun.channel(1)
    local r = {}
    corun.call_soon(function()
      r.send = both(ch:send("from a callback"))
      r.full = both(catch(ch.send, ch, "would wait"))
      r.poll_full = both(ch:send("polled", 0))
      r.recv = both(ch:recv())
      r.wait = catch(ch.recv, ch)
      r.poll = both(ch:recv(0))
    end)
    corun.sleep(0.01)
    assert.same(both(true), r.send)
    assert.matches("would block the loop", r.full[1])
    assert.same(fail("timeout"), r.poll_full)
    assert.same(both("from a callback"), r.recv)
    assert.matches("would block the loop", r.wait)
    assert.same(fail("timeout"), r.poll)
  end))

  it("blocks a plain lua5.4 main chunk (no loop running)", async(function()
    local status, out, err = run_lua([[
      local corun = require "corun"
      local ch, rv = corun.channel(), corun.channel(0)
      local th = corun.thread(function(ch, rv)
        local corun = require "corun"
        corun.sleep(0.1)
        ch:send("late")
        return rv:recv(), rv:recv()
      end, ch, rv)
      print(ch:recv(0))
      print(ch:recv(0.01))
      print(ch:recv())
      print(rv:send("rendezvous"), rv:send("again", 10))
      print(th:join())
      ch:send(1)
      print(corun.select({ rv, "recv" }, { ch, "recv" }))
      print(corun.select({ rv, "recv" }, 0.01))
      print(pcall(corun.select, { corun.queue(), "get" }))
      ch:close()
      for v in ch:iter() do print("never", v) end
      print(ch:recv())
    ]])
    assert.equal("", err)
    assert.equal(table.concat({
      "nil\ttimeout",
      "nil\ttimeout",
      "late",
      "true\ttrue",
      "rendezvous\tagain",
      "2\t1",
      "nil\ttimeout",
      "false\tselect: queue cases need a task",
      "nil\tclosed", "" }, "\n"), out)
    assert.equal(0, status)
  end))
end)

--[[ select ]]

describe("corun.select", function()
  after_each(helper.check)

  it("returns the index and value of a ready recv case", async(function()
    local a, b = corun.channel(), corun.channel()
    b:send("from b")
    assert.same(both(2, "from b"),
                both(corun.select({ a, "recv" }, { b, "recv" })))
    b:send(false)
    assert.same(both(2, false), both(corun.select({ a, "recv" }, { b, "recv" })))
    b:send({ t = 1 })
    local i, v = corun.select({ a, "recv" }, { b, "recv" })
    assert.equal(2, i)
    assert.same({ t = 1 }, v)
  end))

  it("a send case returns i, true", async(function()
    local full, free = corun.channel(1), corun.channel(1)
    full:send("x")
    assert.same(both(2, true), both(corun.select({ full, "send", "a" },
                                                 { free, "send", "b" })))
    assert.equal("b", free:recv())
    assert.equal("x", full:recv())
    assert.same(fail("timeout"), both(full:recv(0)))  -- "a" not sent
  end))

  it("waits until a case can proceed, in this thread or another",
  async(function()
    local a, b = corun.channel(), corun.channel()
    corun.spawn(function() corun.sleep(0.02) b:send("later") end)
    assert.same(both(2, "later"), both(corun.select({ a, "recv" },
                                                    { b, "recv" })))
    local th = corun.thread(function(a)
      require("corun").sleep(0.05)
      a:send("from a thread")
    end, a)
    assert.same(both(1, "from a thread"),
                both(corun.select({ a, "recv" }, { b, "recv" }, 10)))
    th:join()
    -- a waiting send case completes when room is made
    local full = corun.channel(1)
    full:send(1)
    corun.spawn(function() corun.sleep(0.02) full:recv() end)
    assert.same(both(2, true), both(corun.select({ a, "recv" },
                                                 { full, "send", 2 })))
    assert.equal(2, full:recv(0))
  end))

  it("times out with nil, 'timeout'; 0 polls", async(function()
    local a, full = corun.channel(), corun.channel(1)
    full:send("x")
    local t0 = corun.time()
    assert.same(fail("timeout"), both(corun.select({ a, "recv" },
                                                   { full, "send", "y" },
                                                   0.05)))
    assert.is_true(corun.time() - t0 >= 0.049)
    local ran = false  -- a poll does not suspend: this task cannot run
    corun.spawn(function() ran = true end)
    assert.same(fail("timeout"), both(corun.select({ a, "recv" }, 0)))
    assert.is_false(ran)
    assert.equal("x", full:recv())
    assert.same(fail("timeout"), both(full:recv(0)))  -- "y" was dropped
    a:send(1)
    assert.same(both(1, 1), both(corun.select({ a, "recv" }, 0)))
  end))

  it("a closed channel's case gives i, nil, 'closed'", async(function()
    local a, b, c = corun.channel(), corun.channel(), corun.channel()
    b:close()
    assert.same({ n = 3, 2, nil, "closed" },
                both(corun.select({ a, "recv" }, { b, "recv" })))
    assert.same({ n = 3, 1, nil, "closed" },
                both(corun.select({ b, "send", 1 })))
    -- closing wakes a waiting select
    corun.spawn(function() corun.sleep(0.02) c:close() end)
    assert.same({ n = 3, 2, nil, "closed" },
                both(corun.select({ a, "recv" }, { c, "recv" })))
    -- a closed channel's buffered values come first
    local d = corun.channel()
    d:send("left")
    d:close()
    assert.same(both(1, "left"), both(corun.select({ d, "recv" })))
    assert.same({ n = 3, 1, nil, "closed" },
                both(corun.select({ d, "recv" })))
  end))

  it("meets a rendezvous: with a waiting receiver, a waiting sender, or "
     .. "waiting itself", async(function()
    local ch = corun.channel(0)
    local r = corun.spawn(function() return ch:recv() end)
    corun.sleep(0.01)
    assert.same(both(1, true), both(corun.select({ ch, "send", "to r" }, 0)))
    assert.equal("to r", r:join())
    local s = corun.spawn(function() return ch:send("from s") end)
    corun.sleep(0.01)
    assert.same(both(1, "from s"), both(corun.select({ ch, "recv" }, 0)))
    assert.is_true(s:join())
    -- the select waits for a receiver
    local got
    corun.spawn(function() corun.sleep(0.02) got = ch:recv() end)
    assert.same(both(1, true), both(corun.select({ ch, "send", "waited" })))
    corun.sleep(0)
    assert.equal("waited", got)
    -- a send and a receive of one select never meet each other
    assert.same(fail("timeout"), both(corun.select({ ch, "send", 1 },
                                                   { ch, "recv" }, 0.02)))
  end))

  it("chooses fairly among ready cases", async(function()
    local a, b = corun.channel(), corun.channel()
    for i = 1, 1000 do
      a:send(i)
      b:send(i)
    end
    local count = { 0, 0 }
    for _ = 1, 1000 do
      local i = corun.select({ a, "recv" }, { b, "recv" })
      count[i] = count[i] + 1
    end
    -- binomial(1000, 1/2): 350 is more than 9 standard deviations away
    assert.is_true(count[1] >= 350 and count[2] >= 350,
                   count[1] .. " / " .. count[2])
    -- send cases and a mix of both kinds too
    local c, d = corun.channel(), corun.channel()
    count = { 0, 0, 0 }
    for _ = 1, 1500 do
      local i = corun.select({ c, "send", 1 }, { d, "send", 2 },
                             { a, "recv" })
      count[i] = count[i] + 1
    end
    for i = 1, 3 do
      assert.is_true(count[i] >= 380, table.concat(count, " / "))
    end
    assert.equal(count[1], #c)
    assert.equal(count[2], #d)
  end))

  it("a select cancelled while waiting loses nothing", async(function()
    local a, b = corun.channel(), corun.channel(0)
    local s = corun.spawn(function()
      return corun.select({ a, "recv" }, { b, "send", "offer" })
    end)
    corun.sleep(0.01)
    s:cancel()
    join_cancelled(s)
    a:send("kept")
    assert.equal("kept", a:recv(0))
    assert.same(fail("timeout"), both(b:recv(0)))  -- the offer is gone
    -- handed a value before it ran: it returns it, then gets Cancelled
    local log = {}
    local s2 = corun.spawn(function()
      log[#log + 1] = { corun.select({ a, "recv" }, { b, "recv" }) }
      corun.sleep(1)
    end)
    corun.sleep(0.01)
    a:send("handed")
    s2:cancel()
    join_cancelled(s2)
    assert.same({ { 1, "handed" } }, log)
    assert.same(fail("timeout"), both(a:recv(0)))
    -- its offer taken before it ran: it returns i, true
    local s3 = corun.spawn(function()
      log[#log + 1] = { corun.select({ b, "send", "taken" }) }
      corun.sleep(1)
    end)
    corun.sleep(0.01)
    assert.equal("taken", b:recv(0))
    s3:cancel()
    join_cancelled(s3)
    assert.same({ 1, true }, log[2])
  end))

  it("loses and duplicates nothing with threads selecting on both sides",
  async(function()
    local N = 3000
    local a, b, c = corun.channel(8), corun.channel(0), corun.channel()
    local senders = {}
    for t = 1, 3 do
      senders[t] = corun.thread(function(a, b, t, n)
        local corun = require "corun"
        for i = t, n, 3 do corun.select({ a, "send", i }, { b, "send", i }) end
      end, a, b, t, N)
    end
    local seen, count = {}, 0
    local receivers = {}
    for r = 1, 2 do
      receivers[r] = corun.spawn(function()
        while count < N do
          local i, v = corun.select({ a, "recv" }, { b, "recv" },
                                    { c, "recv" })
          if i == 3 then return end
          assert(not seen[v], "duplicate " .. tostring(v))
          seen[v] = true
          count = count + 1
        end
        c:send("stop")
      end)
    end
    for t = 1, 3 do senders[t]:join() end
    for r = 1, 2 do receivers[r]:join() end
    assert.equal(N, count)
    for i = 1, N do assert(seen[i], "lost " .. i) end
  end))

  it("accepts a channel twice and queue cases", async(function()
    local ch = corun.channel(1)
    ch:send(1)  -- full: only the receive cases can proceed
    local i, v = corun.select({ ch, "send", 9 }, { ch, "recv" }, { ch, "recv" })
    assert.is_true(i == 2 or i == 3)
    assert.equal(1, v)
    assert.same(fail("timeout"), both(ch:recv(0)))
    ch = corun.channel()
    local q = corun.queue(1)
    q:put("queued")
    assert.same(both(1, "queued"), both(corun.select({ q, "get" },
                                                     { ch, "recv" }, 0)))
    assert.same(both(1, true), both(corun.select({ q, "put", "p" })))
    assert.equal("p", q:get())
    -- "get"/"put" and "recv"/"send" are synonyms
    ch:send("c")
    assert.same(both(1, "c"), both(corun.select({ ch, "get" })))
    assert.same(both(1, true), both(corun.select({ ch, "put", "d" })))
    assert.equal("d", ch:recv(0))
    corun.spawn(function() corun.sleep(0.01) q:put("woke") end)
    assert.same(both(2, "woke"), both(corun.select({ ch, "recv" },
                                                   { q, "get" })))
  end))

  it("refuses bad cases", async(function()
    local ch = corun.channel()
    raises("at least one case expected", corun.select)
    raises("at least one case expected", corun.select, 1)
    raises("case expected", corun.select, "x")
    raises("case expected", corun.select, { ch, "recv" }, "x")
    raises("case 1: its field 1 must be a channel or a queue", corun.select,
           { 42, "recv" })
    raises("case 1: its field 1 must be a channel or a queue", corun.select, { {}, "recv" })
    raises('case 1: its field 2 must be "recv", "send", "get" or "put"', corun.select,
           { ch, "bogus" })
    raises('case 1: its field 2 must be "recv", "send", "get" or "put"', corun.select,
           { ch })
    raises("case 1: its field 3, the value to send, is nil", corun.select, { ch, "send" })
    raises("userdata value", corun.select, { ch, "send", io.stdout })
    raises("timeout must be >= 0", corun.select, { ch, "recv" }, -1)
    raises("put cases on a priority queue are not supported", corun.select,
           { corun.priority_queue(), "put", 1 })
    local many = {}
    for i = 1, 65 do many[i] = { ch, "recv" } end
    raises("too many cases", corun.select, table.unpack(many))
    many[65] = nil
    assert.same(fail("timeout"), both(corun.select(table.unpack(many), 0)))
    assert.equal(0, #ch)  -- nothing was sent by a refused select
  end))

  it("from a plain callback: polls, raises when it would wait",
  async(function()
    local ch = corun.channel()
    ch:send("x")
    local r = {}
    corun.call_soon(function()
      r.ready = both(corun.select({ ch, "recv" }))
      r.poll = both(corun.select({ ch, "recv" }, 0))
      r.wait = catch(corun.select, { ch, "recv" })
    end)
    corun.sleep(0.01)
    assert.same(both(1, "x"), r.ready)
    assert.same(fail("timeout"), r.poll)
    assert.matches("would block the loop", r.wait)
  end))
end)
