--[[
** corun.worker: the child side of corun.process.pool. Run as
**   corun -e 'require("corun.worker")()'
** (called from the main chunk, so that jobs may suspend) it reads jobs
** from the master on stdin and answers on stdout, one frame each: a 4-byte
** big-endian length, then a codec message (codec_dump). A job is {fn,
** args...}; the answer is {true, results...} or {false, error}. What the
** job prints goes to stderr: the worker keeps its own copies of the pipes
** to the master.
--]]

local core = require "corun.core"

local pack, unpack = table.pack, table.unpack

local function traceback(e)
  if type(e) == "string" then return debug.traceback(e, 2) end
  return e
end

local function answer(output, ...)
  local ok, frame = pcall(core.codec_dump, ...)
  if not ok then  -- args[k] of the answer is results[k - 1]
    frame = core.codec_dump(false, (frame:gsub("args%[(%d+)%]", function(k)
      return ("results[%d]"):format(tonumber(k) - 1)
    end)))
  end
  output:write(string.pack(">s4", frame))
  output:flush()
end

return function()
  local input, output = core.process.worker_stdio()
  while true do
    local header = input:read(4)
    if header == nil or #header < 4 then break end
    local payload = input:read((string.unpack(">I4", header)))
    if payload == nil then break end
    local job = pack(core.codec_load(payload))
    local res = pack(xpcall(job[1], traceback, unpack(job, 2, job.n)))
    if res[1] then
      answer(output, true, unpack(res, 2, res.n))
    else
      answer(output, false, tostring(res[2]))
    end
  end
end
