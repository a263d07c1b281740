-- spec/codec_spec.lua: the value codec (src/codec.c), through the internal
-- helpers core.codec_roundtrip / codec_encode / codec_decode.

local core = require "corun.core"
local helper = require "helper"
local catch = helper.catch

local roundtrip = core.codec_roundtrip
local encode, decode = core.codec_encode, core.codec_decode

local function pack(...) return { n = select("#", ...), ... } end

-- The error raised by roundtrip(...).
local function err_of(...) return catch(roundtrip, ...) end

-- A message by hand (native byte order, as the codec writes it):
-- header 'C' flags n ntables, then the value bytes.
local function msg(n, ntables, body)
  return string.pack("=c1BI4I4", "C", 0, n, ntables) .. body
end
local function tbl(narr, nhash) return string.pack("=BI4I4", 7, narr, nhash) end

describe("codec round trips", function()
  after_each(helper.check)

  it("copies nil, booleans and the count of values", function()
    assert.same({ n = 0 }, pack(roundtrip()))
    assert.same({ n = 3, nil, true, nil }, pack(roundtrip(nil, true, nil)))
    assert.same({ n = 2, false, true }, pack(roundtrip(false, true)))
  end)

  it("copies integers exactly, keeping their subtype", function()
    for _, i in ipairs { 0, 1, -1, 255, 1 << 40, math.maxinteger,
                         math.mininteger } do
      local r = roundtrip(i)
      assert.equal("integer", math.type(r))
      assert.equal(i, r)
    end
    assert.equal("float", math.type(roundtrip(1.0)))
  end)

  it("copies floats bit for bit: NaN, inf, -0.0, subnormals", function()
    local nan, inf, nzero = roundtrip(0 / 0, math.huge, -0.0)
    assert.is_true(nan ~= nan)
    assert.equal(math.huge, inf)
    assert.equal("float", math.type(nzero))
    assert.equal(-math.huge, 1 / nzero)
    assert.equal(-math.huge, roundtrip(-math.huge))
    for _, x in ipairs { math.pi, 5e-324, 2.2250738585072014e-308,
                         1.7976931348623157e308, -1e-300, 0.1 } do
      assert.equal(string.pack("d", x), string.pack("d", roundtrip(x)))
    end
  end)

  it("copies strings byte for byte", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert.same({ n = 4, "", "a\0b", all, "\0" },
                pack(roundtrip("", "a\0b", all, "\0")))
    local big = string.rep("x\0y", 400000)
    assert.equal(big, roundtrip(big))
  end)

  it("copies nested tables with array and hash parts", function()
    local t = { 1, 2, "three", { 4, { 5 } }, x = { y = { z = true } },
                [1.5] = "f", [true] = "t", [false] = 0, [-7] = "neg",
                ["a b"] = { "c" } }
    local r = roundtrip(t)
    assert.are_not.equal(t, r)
    assert.same(t, r)
  end)

  it("copies arrays with holes and sparse keys", function()
    local t = { 1, nil, 3, [10] = 10, [1000000] = "m" }
    t[5] = 5
    assert.same(t, roundtrip(t))
    assert.same({ [2] = 2 }, roundtrip({ [2] = 2 }))
  end)

  it("copies table keys as tables", function()
    local k = { "key" }
    local r = roundtrip({ [k] = "v" })
    local rk, rv = next(r)
    assert.same({ "key" }, rk)
    assert.are_not.equal(k, rk)
    assert.equal("v", rv)
  end)

  it("keeps cycles", function()
    local t = { name = "root" }
    t.self = t
    t.child = { parent = t }
    t[1] = t
    local r = roundtrip(t)
    assert.equal(r, r.self)
    assert.equal(r, r[1])
    assert.equal(r, r.child.parent)
    assert.equal("root", r.name)
  end)

  it("keeps shared sub-tables shared within one message", function()
    local s = { 42 }
    local t = { a = s, b = s, list = { s, s } }
    local r, r2, r3 = roundtrip(t, s, s)
    assert.equal(r.a, r.b)
    assert.equal(r.a, r.list[1])
    assert.equal(r.a, r.list[2])
    assert.equal(r.a, r2)
    assert.equal(r2, r3)
    assert.equal(42, r2[1])
    assert.are_not.equal(roundtrip(s), roundtrip(s))
  end)

  it("uses a table as a key and as a value alike", function()
    local s = {}
    local r = roundtrip({ [s] = s })
    local k, v = next(r)
    assert.equal(k, v)
  end)

  it("does not copy metatables", function()
    local t = setmetatable({ 1 }, { __index = function() return "mt" end })
    local r = roundtrip(t)
    assert.is_nil(getmetatable(r))
    assert.is_nil(r.anything)
  end)

  it("copies big tables (100k entries in each part)", function()
    local t = {}
    for i = 1, 100000 do t[i] = i * 2 end
    for i = 1, 100000 do t["k" .. i] = i end
    local r = roundtrip(t)
    assert.equal(100000, #r)
    for i = 1, 100000, 997 do
      assert.equal(i * 2, r[i])
      assert.equal(i, r["k" .. i])
    end
    local n = 0
    for _ in pairs(r) do n = n + 1 end
    assert.equal(200000, n)
  end)

  it("copies many values at once", function()
    local t = {}
    for i = 1, 5000 do t[i] = i end
    local r = pack(roundtrip(table.unpack(t)))
    assert.equal(5000, r.n)
    assert.equal(5000, r[5000])
  end)

  it("allows 100 levels of nesting", function()
    local t = {}
    for _ = 1, 99 do t = { t } end  -- 100 tables
    local r, depth = roundtrip(t), 0
    while r do depth, r = depth + 1, r[1] end
    assert.equal(100, depth)
  end)

  it("counts shared references and cycles once for depth", function()
    local root = {}
    local t = root
    for _ = 1, 99 do t[1] = {}; t = t[1] end
    t.back = root  -- a TREF at depth 101 is no deeper table
    local r = roundtrip(root)
    local x = r
    for _ = 1, 99 do x = x[1] end
    assert.equal(r, x.back)
  end)
end)

describe("codec functions", function()
  after_each(helper.check)

  it("copies functions without upvalues", function()
    local f = roundtrip(function(a, b) return a * b, select("#", a, b) end)
    assert.same({ n = 2, 12, 2 }, pack(f(3, 4)))
  end)

  it("copies functions using globals, which see this state's globals",
     function()
    local mk = load([[
      local _ENV = { marker = "private" }
      return function() return marker end
    ]])
    local f = mk()
    assert.equal("private", f())
    _G.codec_marker_test = nil
    local g = roundtrip(
      load("return function() return codec_marker_test end")())
    _G.codec_marker_test = "global"
    assert.equal("global", g())
    local f2 = roundtrip(f)
    rawset(_G, "marker", "from _G")
    assert.equal("from _G", f2())
    rawset(_G, "marker", nil)
    _G.codec_marker_test = nil
  end)

  it("copies functions inside tables and keeps them shared", function()
    local fn = function(x) return string.rep("a", x) end
    local r = roundtrip({ f = fn, g = fn, list = { fn } })
    assert.equal("aaa", r.f(3))
    assert.equal(r.f, r.g)
    assert.equal(r.f, r.list[1])
    assert.are_not.equal(fn, r.f)
  end)

  it("copies functions that make closures when called", function()
    local f = roundtrip(function(n)
      local c = 0
      return function() c = c + n; return c end
    end)
    local inc = f(2)
    inc()
    assert.equal(4, inc())
  end)
end)

describe("codec errors", function()
  after_each(helper.check)

  it("names a function's upvalue and where it sits", function()
    local counter = 0
    local function cb() counter = counter + 1 end
    assert.equal("cannot send args[2].cb: function with upvalue 'counter'",
                 err_of(1, { cb = cb }))
    assert.equal("cannot send args[1]: function with upvalue 'counter'",
                 err_of(cb))
    local function two() return counter, print end  -- _ENV and counter
    assert.equal("cannot send args[1]: function with upvalue 'counter'",
                 err_of(two))
  end)

  it("refuses C functions, userdata and coroutines", function()
    assert.equal("cannot send args[1]: C function", err_of(print))
    assert.equal("cannot send args[1].out: userdata value",
                 err_of({ out = io.stdout }))
    assert.equal("cannot send args[3][2]: coroutine value",
                 err_of(1, 2, { 1, coroutine.create(print) }))
    assert.equal("cannot send args[1]: coroutine value",
                 err_of(coroutine.running()))
  end)

  it("refuses functions in data-only messages", function()
    assert.equal("cannot send args[1]: functions are not allowed here",
                 catch(encode, function() end))
    assert.equal("cannot send args[2].f: functions are not allowed here",
                 catch(encode, 1, { f = function() end }))
  end)

  it("writes every kind of key in the path", function()
    local co = coroutine.create(print)
    local cases = {
      { { { 1, 2, co } }, "args[1][1][3]" },
      { { ["a b"] = co }, 'args[1]["a b"]' },
      { { ["end"] = co }, 'args[1]["end"]' },
      { { _x1 = { y = co } }, "args[1]._x1.y" },
      { { ["1x"] = co }, 'args[1]["1x"]' },
      { { ['q"\\'] = co }, 'args[1]["q\\"\\\\"]' },
      { { ["a\0\n"] = co }, 'args[1]["a\\000\\010"]' },
      { { [true] = co }, "args[1][true]" },
      { { [false] = co }, "args[1][false]" },
      { { [1.5] = co }, "args[1][1.5]" },
      { { [-3] = co }, "args[1][-3]" },
      { { [math.mininteger] = co }, "args[1][" .. math.mininteger .. "]" },
      { { [string.rep("k", 50)] = co },
        'args[1]["' .. string.rep("k", 40) .. '..."]' },
    }
    for _, c in ipairs(cases) do
      assert.equal("cannot send " .. c[2] .. ": coroutine value",
                   err_of(c[1]))
    end
  end)

  it("names a table key's address and what is wrong inside it", function()
    local k = { 1, coroutine.create(print) }
    local e = err_of({ [k] = 1 })
    assert.equal(("cannot send args[1]<key table: %p>[2]: coroutine value")
                 :format(k), e)
    local t = {}
    local e2 = err_of({ [t] = coroutine.create(print) })
    assert.equal(("cannot send args[1][table: %p]: coroutine value")
                 :format(t), e2)
  end)

  it("refuses tables nested deeper than 100 levels", function()
    local t = {}
    for _ = 1, 100 do t = { t } end  -- 101 tables
    assert.equal("cannot send args[1]" .. string.rep("[1]", 100) ..
                 ": table nested deeper than 100 levels", err_of(t))
    assert.matches("nested deeper than 100 levels", catch(encode, t))
  end)

  it("leaves the caller's stack usable after an error", function()
    for _ = 1, 100 do
      assert.is_string(err_of(1, string.rep("x", 10000), { print }))
    end
    assert.equal(7, roundtrip(7))
  end)
end)

describe("codec data messages", function()
  after_each(helper.check)

  it("encodes to a string and decodes back", function()
    local t = { 1, "two", x = { y = 0 / 0 } }
    t.me = t
    local s = encode(nil, t, math.mininteger, -0.0, "a\0")
    assert.is_string(s)
    local r = pack(decode(s))
    assert.equal(5, r.n)
    assert.is_nil(r[1])
    assert.equal(r[2], r[2].me)
    assert.equal("two", r[2][2])
    assert.is_true(r[2].x.y ~= r[2].x.y)
    assert.equal(math.mininteger, r[3])
    assert.equal(-math.huge, 1 / r[4])
    assert.equal("a\0", r[5])
    assert.same({ n = 0 }, pack(decode(encode())))
  end)

  local function corrupt(s)
    local e = catch(decode, s)
    assert.is_string(e)
    return e
  end

  it("rejects a bad header, bad tags and bad lengths", function()
    assert.equal("corrupt message: truncated", corrupt(""))
    assert.equal("corrupt message: bad header", corrupt("X" .. ("\0"):rep(9)))
    assert.equal("corrupt message: bad header", corrupt(msg(5, 0, "\0")))
    assert.equal("corrupt message: bad header", corrupt(msg(1, 9, "\0")))
    assert.equal("corrupt message: bad tag", corrupt(msg(1, 0, "\200")))
    assert.equal("corrupt message: bad length",
                 corrupt(msg(1, 0, "\5" .. string.pack("=I8", 99) .. "ab")))
    assert.equal("corrupt message: bad length",
                 corrupt(msg(1, 0, "\5" .. string.pack("=I8", -1))))
    assert.equal("corrupt message: trailing bytes", corrupt(msg(1, 0, "\0\0")))
    assert.equal("corrupt message: truncated", corrupt(msg(1, 0, "\3\1\2")))
  end)

  it("rejects bad tables", function()
    assert.equal("corrupt message: bad reference",
                 corrupt(msg(1, 0, "\8" .. string.pack("=I4", 0))))
    assert.equal("corrupt message: bad reference count",
                 corrupt(msg(1, 0, tbl(0, 0))))
    assert.equal("corrupt message: bad table size",
                 corrupt(msg(1, 1, tbl(0xffffffff, 0) .. ("\0"):rep(9))))
    assert.equal("corrupt message: bad table size",
                 corrupt(msg(1, 1, tbl(0, 1 << 30) .. ("\0"):rep(9))))
    assert.equal("corrupt message: nil key",
                 corrupt(msg(1, 1, tbl(0, 1) .. "\0\1")))
    assert.equal("corrupt message: NaN key",
                 corrupt(msg(1, 1, tbl(0, 1) .. "\4" ..
                                   string.pack("=d", 0 / 0) .. "\1")))
    -- a reference to a table still being built is a cycle: fine
    local r = decode(msg(1, 1, tbl(1, 0) .. "\8" .. string.pack("=I4", 0)))
    assert.equal(r, r[1])
  end)

  it("rejects tables nested deeper than 100 levels", function()
    local function nest(k)
      return msg(1, k, tbl(1, 0):rep(k - 1) .. tbl(0, 0))
    end
    assert.is_table(decode(nest(100)))
    assert.equal("corrupt message: table nested deeper than 100 levels",
                 corrupt(nest(101)))
    assert.equal("corrupt message: table nested deeper than 100 levels",
                 corrupt(nest(100000)))
  end)

  it("never loads bytecode or handles from bytes", function()
    local code = string.dump(function() return 1 end)
    assert.equal("corrupt message: functions are not allowed here",
                 corrupt(msg(1, 0, "\6" .. string.pack("=s8", code))))
    assert.equal("corrupt message: shared handles are not allowed here",
                 corrupt(msg(1, 0, "\9" .. ("\0"):rep(8))))
  end)

  it("rejects more values than a stack holds", function()
    assert.equal("corrupt message: too many values",
                 corrupt(msg(1100000, 0, ("\0"):rep(1100000))))
  end)

  it("fails cleanly on every truncation of valid messages", function()
    local t = { 1, 2.5, "s\0", { x = true, [false] = { 1 } } }
    t.t = t
    for _, s in ipairs { encode(t), encode(1, "abc", nil, false, -0.0) } do
      for len = 0, #s - 1 do
        assert.matches("^corrupt message: ", corrupt(s:sub(1, len)))
      end
    end
  end)

  it("fails cleanly on random and mutated bytes (LCG)", function()
    local rnd = helper.lcg(20240404)
    local seeds = {
      encode({ 1, 2, { 3, { 4 } }, a = "b", c = { d = { e = 1.5 } } }),
      encode("x", 1, true, nil, { [2] = 2, [{}] = {} }),
    }
    local ok, bad = 0, 0
    for i = 1, 20000 do
      local s
      if i % 4 == 0 then  -- random bytes, sometimes with a valid header
        local b = {}
        for j = 1, rnd(40) do b[j] = string.char(rnd(256) - 1) end
        s = table.concat(b)
        if rnd(2) == 1 then s = msg(rnd(4), rnd(4) - 1, s) end
      else  -- a valid message with bytes flipped
        local b = { seeds[rnd(#seeds)]:byte(1, -1) }
        for _ = 1, rnd(4) do b[rnd(#b)] = rnd(256) - 1 end
        s = string.char(table.unpack(b))
      end
      local res = table.pack(pcall(decode, s))
      if res[1] then ok = ok + 1
      else
        assert.matches("^corrupt message: ", res[2])
        bad = bad + 1
      end
    end
    assert.is_true(bad > 1000)
    assert.is_true(ok + bad == 20000)
    collectgarbage()
  end)
end)

describe("codec shareable handles", function()
  after_each(helper.check)

  it("copies a handle as another box on the same object", function()
    local h = core.channel()
    local r, r2 = roundtrip(h, { h })
    assert.equal(getmetatable(h), getmetatable(r))
    assert.are_not.equal(h, r)
    assert.equal(getmetatable(h), getmetatable(r2[1]))
    assert.is_true(r:send("through the copy"))   -- the same channel
    assert.equal("through the copy", h:recv())
    assert.is_true(r2[1]:send(2))
    assert.equal(2, h:recv())
    assert.equal("cannot send args[1]: userdata value",
                 err_of(io.stderr))
    assert.equal("corrupt message: shared handles are not allowed here",
                 catch(decode, encode(h)))
  end)
end)
