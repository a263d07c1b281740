-- spec/regress/010_prio_reentrant_spec.lua: a priority queue whose
-- comparator (or an item's __lt) uses the same queue (issue 10 #7). Before
-- the fix the re-entrant call ran in the middle of a heap operation: with 8
-- items in, one was lost and another came out twice. Now it raises a clear
-- error and the queue loses and duplicates nothing.

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local async = cb.async

local MSG = "comparator cannot use the queue it orders"

describe("a priority queue used from its own comparator", function()
  after_each(helper.check)

  it("raises a clear error naming the method", async(function()
    local q
    local errs = {}
    q = corun.priority_queue(0, function(a, b)
      local ok, err = pcall(q.get_nowait, q)
      if not ok then errs[#errs + 1] = err end
      return a < b
    end)
    for _, v in ipairs { 10, 20, 30, 40, 50, 60, 70, 80 } do q:put(v) end
    local out = {}
    while q:size() > 0 do out[#out + 1] = q:get() end
    assert.same({ 10, 20, 30, 40, 50, 60, 70, 80 }, out)
    assert.truthy(#errs > 0)
    assert.truthy(errs[1]:find("get_nowait: a priority queue's " .. MSG, 1, true),
                  errs[1])
  end))

  it("an item's __lt cannot use the queue either", async(function()
    local q = corun.priority_queue()
    local seen
    local mt = { __lt = function(a, b)
      local ok, err = pcall(q.size, q)
      if not ok then seen = err end
      return a.v < b.v
    end }
    for _, v in ipairs { 3, 1, 2 } do q:put_nowait(setmetatable({ v = v }, mt)) end
    assert.equal(1, q:get_nowait().v)
    assert.truthy(seen and seen:find("size: ", 1, true), seen)
  end))

  it("randomized: nothing lost or duplicated", async(function()
    local rnd = helper.lcg(12345)
    local q
    local ops = {
      function() return q:get_nowait() end,
      function() return q:put_nowait(-1) end,
      function() return q:put(-2) end,
      function() return q:size() end,
      function() return #q end,
      function() return q:empty() end,
      function() q:close() end,
      function() q:task_done() end,
    }
    local inner_ok, calm = 0, false
    q = corun.priority_queue(0, function(a, b)
      local r = calm and 4 or rnd(8)
      if r == 1 then
        local ok, err = pcall(ops[rnd(#ops)])
        if ok then inner_ok = inner_ok + 1
        else assert(tostring(err):find(MSG, 1, true), err) end
      elseif r == 2 then
        ops[rnd(#ops)]()  -- raises out of the comparator
      end
      return a < b
    end)
    local inq = {}       -- value -> times it is in the queue
    local next_v = 1
    for _ = 1, 5000 do
      if rnd(2) == 1 then
        local v = next_v
        next_v = next_v + 1
        local ok, err = pcall(q.put_nowait, q, v)
        if ok then inq[v] = (inq[v] or 0) + 1
        else assert(tostring(err):find(MSG, 1, true), err) end
      elseif q:size() > 0 then
        local ok, v = pcall(q.get_nowait, q)
        if ok then
          assert(inq[v] == 1, "got " .. tostring(v) .. " not in the queue")
          inq[v] = nil
        else
          assert(tostring(v):find(MSG, 1, true), v)
        end
      end
    end
    assert.equal(0, inner_ok)
    local left = 0
    for _ in pairs(inq) do left = left + 1 end
    assert.equal(left, q:size())
    calm = true
    while q:size() > 0 do
      local ok, v = pcall(q.get_nowait, q)
      if ok then
        assert(inq[v] == 1, "got " .. tostring(v) .. " not in the queue")
        inq[v] = nil
      end
    end
    assert.same({}, inq)
    assert.is_false(q:closed())
  end))
end)
