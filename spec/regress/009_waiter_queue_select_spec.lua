-- spec/regress/009_waiter_queue_select_spec.lua: a queue keeps one wait
-- list per direction in which tasks parked in get/put and select cases are
-- both waiters (issue 9 section 1, src/wait.c). They are served in arrival
-- order whatever their kind (before: plain tasks always went first), and
-- timeouts, cancellations and stale cases lose or duplicate nothing.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async_virtual = cb.async_virtual

-- corun.select over the cases, with a timeout when it is not nil.
local function sel(timeout, ...)
  local cases = {...}
  if timeout ~= nil then cases[#cases + 1] = timeout end
  return corun.select(table.unpack(cases))
end

-- Spawn fn and let it run until it parks.
local function park(fn, ...)
  local t = corun.spawn(fn, ...)
  corun.sleep(0)
  return t
end

describe("queue waiters: tasks and select cases in one list (009)", function()
  after_each(helper.check)

  it("getters are served in arrival order, select case or plain get",
  async_virtual(function()
    local q, other = corun.queue(), corun.queue()
    local got = {}
    local a = park(function()
      local i, v = corun.select({q, "get"})
      got.a = {i, v}
    end)
    local b = park(function() got.b = q:get() end)
    local c = park(function()
      local i, v = corun.select({other, "get"}, {q, "get"})
      got.c = {i, v}
    end)
    local d = park(function() got.d = q:get() end)
    for i = 1, 4 do q:put(i) end
    corun.gather(a, b, c, d)
    assert.same({1, 1}, got.a)
    assert.equal(2, got.b)
    assert.same({2, 3}, got.c)
    assert.equal(4, got.d)
    assert.equal(0, q:size())
  end))

  it("putters are served in arrival order, select case or plain put",
  async_virtual(function()
    local q, other = corun.queue(1), corun.queue()
    q:put("first")
    local res = {}
    local a = park(function() res.a = {corun.select({q, "put", "a"})} end)
    local b = park(function() res.b = q:put("b") end)
    local c = park(function()
      res.c = {corun.select({other, "get"}, {q, "put", "c"})}
    end)
    local d = park(function() res.d = q:put("d") end)
    local order = {}
    for _ = 1, 5 do order[#order + 1] = q:get() end
    corun.gather(a, b, c, d)
    assert.same({"first", "a", "b", "c", "d"}, order)
    assert.same({1, true}, res.a)
    assert.is_true(res.b)
    assert.same({2, true}, res.c)
    assert.is_true(res.d)
  end))

  it("close wakes both kinds, in each direction", async_virtual(function()
    local q = corun.queue()
    local res = {}
    local a = park(function() res.a = {corun.select({q, "get"})} end)
    local b = park(function() res.b = {q:get()} end)
    q:close()
    corun.gather(a, b)
    assert.same({1, nil, "closed"}, res.a)
    assert.same({nil, "closed"}, res.b)
    local f = corun.queue(1)
    f:put(0)
    local c = park(function() res.c = {corun.select({f, "put", 1})} end)
    local d = park(function() res.d = {f:put(2)} end)
    f:close()
    corun.gather(c, d)
    assert.same({1, nil, "closed"}, res.c)
    assert.same({nil, "closed"}, res.d)
    assert.equal(0, f:get())
  end))

  it("timed-out waiters of both kinds leave the list; the rest keep order",
  async_virtual(function()
    local q = corun.queue()
    local res = {}
    local tasks = {}
    for k = 1, 8 do
      local timeout = k % 2 == 0 and 1 or nil
      if k % 4 < 2 then
        tasks[k] = park(function()
          res[k] = {sel(timeout, {q, "get"})}
        end)
      else
        tasks[k] = park(function() res[k] = {q:get(timeout)} end)
      end
    end
    corun.sleep(2)  -- the even ones time out
    for i = 1, 4 do q:put(i) end
    corun.gather(table.unpack(tasks))
    local got = {}
    for k = 1, 8 do
      if k % 2 == 0 then
        assert.equal("timeout", res[k][#res[k]])
        assert.is_nil(res[k][1])
      elseif k % 4 < 2 then
        got[#got + 1] = res[k][2]
      else
        got[#got + 1] = res[k][1]
      end
    end
    assert.same({1, 2, 3, 4}, got)
    assert.equal(0, q:size())
  end))

  it("a case made stale by a channel is skipped: the item goes to the next",
  async_virtual(function()
    local q, ch = corun.queue(), corun.channel(0)
    local res = {}
    local a = park(function()
      res.a = {corun.select({ch, "recv"}, {q, "get"})}
    end)
    local b = park(function() res.b = q:get() end)
    local s = corun.spawn(function() ch:send("via channel") end)
    corun.sleep(0)  -- the send completes a's group (posted to the loop)
    q:put("item")   -- a's queue case may still be linked: stale, skipped
    corun.gather(a, b, s)
    assert.same({1, "via channel"}, res.a)
    assert.equal("item", res.b)
    assert.equal(0, q:size())
  end))

  it("random cancellations and timeouts of getters lose and duplicate nothing",
  async_virtual(function()
    local seed = 12345
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for _ = 1, 20 do
      local q, other = corun.queue(), corun.queue()
      local got, tasks, n = {}, {}, 40
      for k = 1, n do
        local kind, timeout = rand(3), rand(3) == 1 and rand(3) * 0.5 or nil
        tasks[k] = corun.spawn(function()
          local v
          if kind == 1 then
            v = q:get(timeout)
          elseif kind == 2 then
            local i, x = sel(timeout, {q, "get"})
            if i == 1 then v = x end
          else
            local i, x = sel(timeout, {other, "get"}, {q, "get"})
            if i == 2 then v = x end
          end
          if v ~= nil then got[#got + 1] = v end
        end)
      end
      corun.sleep(0)
      for k = 1, n do
        if rand(4) == 1 then tasks[k]:cancel() end
      end
      corun.sleep(rand(2) - 1)
      for i = 1, n do q:put(i) end
      corun.sleep(0)
      q:close()
      for k = 1, n do pcall(tasks[k].join, tasks[k]) end
      local seen = {}
      for _, v in ipairs(got) do
        assert.is_nil(seen[v], "item " .. v .. " twice")
        seen[v] = true
      end
      for v in q:iter() do
        assert.is_nil(seen[v], "item " .. v .. " twice")
        seen[v] = true
      end
      for i = 1, n do assert.is_true(seen[i], "item " .. i .. " lost") end
    end
  end))

  it("random cancellations and timeouts of putters lose and duplicate nothing",
  async_virtual(function()
    local seed = 777
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for _ = 1, 20 do
      local q, other = corun.queue(2), corun.queue()
      local put, tasks, n = {}, {}, 40
      for k = 1, n do
        local kind, timeout = rand(3), rand(3) == 1 and rand(3) * 0.5 or nil
        tasks[k] = corun.spawn(function()
          local ok
          if kind == 1 then
            ok = q:put(k, timeout)
          elseif kind == 2 then
            ok = sel(timeout, {q, "put", k}) == 1
          else
            ok = sel(timeout, {other, "get"}, {q, "put", k}) == 2
          end
          if ok then put[k] = true end
        end)
      end
      corun.sleep(0)
      for k = 1, n do
        if rand(4) == 1 then tasks[k]:cancel() end
      end
      corun.sleep(rand(2) - 1)
      local seen = {}
      while true do
        local v = q:get(5)
        if v == nil then break end
        assert.is_nil(seen[v], "item " .. v .. " twice")
        seen[v] = true
      end
      for k = 1, n do pcall(tasks[k].join, tasks[k]) end
      for k = 1, n do
        assert.equal(put[k] == true, seen[k] == true,
                     "item " .. k .. ": put and got must agree")
      end
    end
  end))
end)
