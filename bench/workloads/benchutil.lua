-- benchutil.lua: helpers shared by the Lua workload scripts (corun and
-- limit): N scaled by BENCH_SCALE, the LCG behind the timers' delays, the
-- process's own peak RSS, and the RESULT line run.py parses.
local M = {}

-- n times BENCH_SCALE (default 1), rounded down: BENCH_SCALE=0 gives N=0.
function M.scaled(n)
  return math.floor(n * (tonumber(os.getenv("BENCH_SCALE")) or 1))
end

-- Pseudo-random delays of 0..0.200 s in 1 ms steps, from a fixed-seed LCG
-- (the same sequence as bench_util.delays in the asyncio scripts).
function M.delays()
  local seed = 12345
  return function()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return ((seed >> 8) % 201) / 1000
  end
end

-- Peak RSS of this process in KB (VmHWM), or -1 where /proc is missing.
-- The child's ru_maxrss seen by run.py is floored by run.py's own RSS
-- (Linux keeps the pre-exec high-water mark), so scripts report their own.
function M.peak_kb()
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local status = f:read("a")
  f:close()
  return tonumber(status:match("VmHWM:%s*(%d+)")) or -1
end

-- Print "RESULT name k=v ... peak_kb=K" (fmt holds the k=v part).
function M.result(name, fmt, ...)
  local fields = string.format(fmt, ...)
  print(string.format("RESULT %s %s peak_kb=%d", name, fields, M.peak_kb()))
end

return M
