-- spec/regress/010_process_pool_spec.lua: issue 10 #2 and #10. A process
-- pool worker that dies in the middle of a long answer, or writes a frame
-- that is not a valid answer, fails only its job ("worker died ...",
-- "corrupt answer ..."); the worker is replaced and the pool goes on. A
-- pool larger than 1024 workers is refused before anything starts.
-- Every case runs in a child runner, so a hang or crash fails the spec.

local corun = require "corun"
local cb = require "corun.busted"
local async = cb.async

local CORUN = os.getenv("CORUN_BIN") or "build/bin/corun"

-- Run 'code' with the runner, 'env' (shell assignments) before it; returns
-- status, stdout, stderr ("hung" when still running after 'limit' s).
local function runner(code, env, limit)
  local p = assert(corun.process.spawn("sh", { "-c",
    (env or "") .. ' exec "$0" -e "$1"', CORUN, code },
    { stdin = "null", stdout = "pipe", stderr = "pipe" }))
  local out, err
  limit = limit or 20
  -- (a worker left behind may hold the pipes: the reads have a deadline)
  local ro = corun.spawn(function() out = p.stdout:read("a", limit + 5) end)
  local re = corun.spawn(function() err = p.stderr:read("a", limit + 5) end)
  local status = p:wait(limit)
  if status == nil then
    p:kill("kill")
    p:wait()
    status = "hung"
  end
  ro:join()
  re:join()
  return status, out, err
end

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Ends by submitting one more job, to show the pool still works.
local AFTER = [[
  local g = pool:submit(function(x) return x + 1 end, 41)
  print("next", g:wait(10))
  pool:close()
  pool:join()
]]

describe("issue 10: process pool worker failures", function()
  it("a worker killed -9 in the middle of a 10 MB answer fails its job",
     async(function()
    local pidfile = os.tmpname()
    os.remove(pidfile)
    local status, out, err = runner(([[
      local corun = require "corun"
      local pidfile = %q
      local pool = corun.process.pool(1)
      local f = pool:submit(function(path)
        local s = io.open("/proc/self/stat")
        local pid = s:read("n")
        s:close()
        local o = io.open(path, "w")
        o:write(pid)
        o:close()
        return string.rep("x", 10 * 1000 * 1000)
      end, pidfile)
      local pid
      for _ = 1, 10000 do  -- until the job has started in the worker
        local h = io.open(pidfile)
        pid = h and h:read("n")
        if h then h:close() end
        if pid then break end
        corun.sleep(0.001)
      end
      -- the master is busy (its loop blocked): the worker fills the pipe
      -- and blocks in the middle of its answer
      os.execute("sleep 1")
      os.execute("kill -9 " .. pid)
      print("job", pcall(f.wait, f, 10))
    ]]):format(pidfile) .. AFTER)
    os.remove(pidfile)
    assert.equal(0, status, err)
    assert.equal("job\tfalse\tworker died (exit code 0, signal kill)\n"
                 .. "next\t42\n", out)
  end))

  for _, case in ipairs {
    { "a garbage frame", [["\0\0\0\8garbage!"]],
      "corrupt answer from the worker: corrupt message: truncated" },
    { "a frame header claiming 4 GB", [["\255\255\255\255"]],
      "corrupt answer from the worker (a frame of 4294967295 bytes)" },
    { "a frame that is not an answer",
      [[string.pack(">s4", require("corun.core").codec_dump(1, 2))]],
      "corrupt answer from the worker: not an answer" },
  } do
    it("a worker that writes " .. case[1] .. " fails its job", async(function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. dir))
      -- the first worker started answers its first job with the frame; the
      -- others are real workers
      writefile(dir .. "/fake.lua", ([[
        local input = io.stdin
        local n = string.unpack(">I4", input:read(4))
        input:read(n)
        io.stdout:write(%s)
        io.stdout:flush()
        input:read("a")  -- stays alive, out of step with the master
      ]]):format(case[2]))
      writefile(dir .. "/worker.sh", ([[
#!/bin/sh
if mkdir %q/started 2>/dev/null; then exec "$REAL" %q/fake.lua; fi
exec "$REAL" "$@"
]]):format(dir, dir))
      assert(os.execute("chmod +x " .. dir .. "/worker.sh"))
      local status, out, err = runner([[
        local corun = require "corun"
        local pool = corun.process.pool(1)
        local f = pool:submit(function() return "fine" end)
        print("job", pcall(f.wait, f, 10))
      ]] .. AFTER, ("REAL=%q CORUN_BIN=%s/worker.sh"):format(CORUN, dir))
      os.execute("rm -rf " .. dir)
      assert.equal(0, status, err)
      assert.equal("job\tfalse\t" .. case[3] .. "\nnext\t42\n", out)
    end))
  end

  it("refuses a pool of math.maxinteger workers", async(function()
    -- in a child: before the fix it tries to start them all
    local status, out, err = runner([[
      local corun = require "corun"
      print(pcall(corun.process.pool, math.maxinteger))
      print(pcall(corun.process.pool, 0))
      print(pcall(corun.process.pool, 1.5))
    ]], "ulimit -u 400 2>/dev/null;", 10)
    assert.equal(0, status, err)
    assert.equal(("false\tbad argument #1 to 'pool' (size must be 1..1024)\n")
                 :rep(3), (out:gsub("%(command line%):%d+: ", "")))
  end))
end)
