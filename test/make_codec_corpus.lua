-- test/make_codec_corpus.lua: regenerate the seed corpus of the codec
-- fuzzer (test/fuzz_codec.c) in test/corpus/codec/, one file per message
-- made by core.codec_encode. Run from the repo root after building:
--   LUA_CPATH="build/?.so;;" lua5.4 test/make_codec_corpus.lua

local core = require "corun.core"

local dir = arg[1] or "test/corpus/codec"
assert(os.execute("mkdir -p " .. dir))

local function cycle()
  local t = { name = "root" }
  t.self, t.child = t, { parent = t }
  return t
end

local function shared()
  local s = { 1, 2 }
  return { a = s, b = s, list = { s, s, { s } } }
end

local function nested(k)
  local t = {}
  for _ = 1, k - 1 do t = { t } end
  return t
end

local function bytes()
  local b = {}
  for i = 0, 255 do b[#b + 1] = string.char(i) end
  return table.concat(b)
end

local function mixed()
  local t = { 1, 2.5, "three", true, false, [10] = 10, [-1] = -1,
              [0.5] = "half", [true] = "yes", x = { y = { z = "deep" } } }
  t[{ "key" }] = { "value" }
  return t
end

local function array(n, f)
  local t = {}
  for i = 1, n do t[i] = f(i) end
  return t
end

local function S(name, ...)
  return { name = name, n = select("#", ...), ... }
end

local seeds = {
  S("empty"),
  S("nil", nil),
  S("nils", nil, nil, nil),
  S("booleans", true, false),
  S("int_zero", 0),
  S("int_small", 1, -1, 255, 256),
  S("int_limits", math.maxinteger, math.mininteger),
  S("floats", 0.5, -2.25, math.pi, 1e300, 5e-324),
  S("float_special", 0 / 0, math.huge, -math.huge, -0.0),
  S("string_empty", ""),
  S("string_short", "hello"),
  S("string_binary", "a\0b\255\n"),
  S("string_bytes", bytes()),
  S("string_long", string.rep("xyz", 300)),
  S("table_empty", {}),
  S("table_array", { 1, 2, 3, 4, 5 }),
  S("table_hash", { a = 1, b = "two", c = true }),
  S("table_mixed", mixed()),
  S("table_holes", { 1, nil, 3, nil, 5, [100] = 100 }),
  S("table_nested", { { { { "bottom" } } } }),
  S("table_deep_100", nested(100)),
  S("table_deep_20", nested(20)),
  S("table_cycle", cycle()),
  S("table_shared", shared()),
  S("table_selfkey", (function() local t = {} t[t] = t return t end)()),
  S("table_floats", array(20, function(i) return i / 3 end)),
  S("table_strings", array(20, function(i) return ("s"):rep(i) end)),
  S("table_of_tables", array(10, function(i) return { i, tostring(i) } end)),
  S("table_bool_keys", { [true] = { [false] = false } }),
  S("many_values", 1, "2", 3.0, { 4 }, nil, true, false, -0.0, ""),
  S("same_table_twice", shared().a, shared().a),
  S("args_mixed", "cmd", { argv = { "a", "b" }, env = { HOME = "/root" } }),
}

for i, seed in ipairs(seeds) do
  local s = core.codec_encode(table.unpack(seed, 1, seed.n))
  local f = assert(io.open(("%s/%02d_%s.bin"):format(dir, i, seed.name), "wb"))
  f:write(s)
  f:close()
end
print(("%d seeds in %s"):format(#seeds, dir))
