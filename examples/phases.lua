-- Three phases start together and finish in reverse order of starting;
-- corun.as_completed yields each task as it finishes, so the answers arrive
-- in completion order. Port of the as_completed example in
-- reference/asyncio-sync-primitives.txt. Run: corun examples/phases.lua
local corun = require "corun"

local function phase(i)
  print("in phase " .. i)
  corun.sleep(0.5 - 0.1 * i)
  print("done with phase " .. i)
  return "phase " .. i .. " result"
end

local function main(num_phases)
  print("starting main")
  local phases = {}
  for i = 0, num_phases - 1 do
    phases[#phases + 1] = corun.spawn(phase, i)
  end
  print("waiting for phases to complete")
  local results = {}
  for t in corun.as_completed(phases) do
    local answer = t:result()
    print("received answer '" .. answer .. "'")
    results[#results + 1] = answer
  end
  print("results: " .. table.concat(results, ", "))
  return results
end

main(3)
