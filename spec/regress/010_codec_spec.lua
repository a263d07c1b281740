-- spec/regress/010_codec_spec.lua: issue 10 #6. A codec message whose
-- header claims array/hash sizes near the message length, followed by
-- garbage, must fail fast without pre-allocating what the claims ask for
-- (a Lua slot is 16-32 bytes, so a 32 MB message used to cost ~1 GB before
-- its first bad tag was read). Measured in a child runner: its peak RSS
-- (VmHWM) may grow by less than the message size while decoding.

local corun = require "corun"
local helper = require "helper"
local cb = require "corun.busted"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Without ASan (which reserves terabytes of address space) the child's
-- address space is capped at 'vm_mb', so a regression fails with "not
-- enough memory" instead of taking the machine's memory.
local ASAN = (os.getenv("LD_PRELOAD") or ""):match("asan") ~= nil

local function runner(code, vm_mb, limit)
  local cap = ASAN and "" or ("ulimit -v %d; "):format(vm_mb * 1024)
  return helper.run_child("sh", { "-c", cap ..
    'ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" '
    .. 'exec "$0" -e "$1"', CORUN, code }, limit or 60)
end

-- The child: build the message (MB megabytes, LAYOUT gives what follows
-- the header), decode it, print the error, the peak RSS growth in bytes
-- and the time decoding took.
local CHILD = [[
  local core = require "corun.core"
  local size = %d * 1024 * 1024
  local function hwm()
    local f = assert(io.open("/proc/self/status"))
    local kb = f:read("a"):match("VmHWM:%%s*(%%d+)")
    f:close()
    return tonumber(kb) * 1024
  end
  local T_TABLE = "\7"
  -- 'C', flags, n = 1 value, nrefs: as many tables as the header allows
  local function header(nrefs) return string.pack("=c1BI4I4", "C", 0, 1, nrefs) end
  local msg
  if %q == "flat" then
    -- one table claiming every byte as an element, then garbage
    local left = size - 10 - 9
    msg = header(1) .. T_TABLE .. string.pack("=I4I4", left, left // 2)
          .. string.rep("\255", left)
  else
    -- 100 nested tables, each claiming the rest, then garbage
    local parts, depth = {}, 100
    local left = size - 10 - 9 * depth
    for i = 1, depth do
      parts[i] = T_TABLE .. string.pack("=I4I4", left, left // 2)
    end
    msg = header(depth) .. table.concat(parts) .. string.rep("\255", left)
  end
  assert(#msg == size)
  collectgarbage()
  collectgarbage()
  local before = hwm()
  local t0 = os.clock()
  local ok, err = pcall(core.codec_decode, msg)
  local took = os.clock() - t0
  print(ok, err)
  print(hwm() - before)
  print(took)
]]

describe("issue 10 #6: decoding a message whose sizes lie", function()
  for _, layout in ipairs { "flat", "nested" } do
    for _, mb in ipairs { 16, 64 } do
      it(("%s tables, %d MB: fails fast, memory bounded"):format(layout, mb),
         async(function()
        local status, out, err = runner(CHILD:format(mb, layout), 4 * mb + 512)
        assert.equal(0, status, err)
        local line, grown, took = out:match("^([^\n]*)\n(%d+)\n([%d.e-]+)\n$")
        assert.equal("false\tcorrupt message: bad tag", line)
        grown, took = tonumber(grown), tonumber(took)
        assert.is_true(grown < mb * 1024 * 1024,
          ("decoding grew the peak RSS by %.0f MB"):format(grown / 2^20))
        assert.is_true(took < 10, "decoding took " .. took .. " s")
      end))
    end
  end

  it("still decodes large honest tables", function()
    local core = require "corun.core"
    local t = {}
    for i = 1, 100000 do t[i] = i end
    for i = 1, 20000 do t["k" .. i] = i end
    local copy = core.codec_decode(core.codec_encode(t))
    assert.equal(100000, #copy)
    assert.equal(100000, copy[100000])
    assert.equal(20000, copy.k20000)
  end)
end)
