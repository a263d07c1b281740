-- spec/regress/010_process_nul_spec.lua: issue 10 #17. A NUL byte in the
-- command, an argument, an env name or value or cwd used to cut the string
-- silently ("a\0b" ran as "a"); spawn now raises, naming the argument.

local corun = require "corun"
local cb = require "corun.busted"
local async = cb.async

describe("issue 10 #17: process.spawn refuses NUL bytes", function()
  for _, case in ipairs {
    { "an argument", { "echo", { "ok", "a\0b" } }, "spawn: args[2] cannot contain NUL" },
    { "the command", { "ec\0ho", { "a" } }, "spawn: cmd cannot contain NUL" },
    { "an env value", { "echo", {}, { env = { X = "a\0b" } } },
      "spawn: env value of 'X' cannot contain NUL" },
    { "an env name", { "echo", {}, { env = { ["X\0Y"] = "ab" } } },
      "spawn: env names cannot contain NUL" },
    { "cwd", { "echo", {}, { cwd = "/tm\0p" } }, "spawn: cwd cannot contain NUL" },
  } do
    it("in " .. case[1], async(function()
      local ok, err = pcall(corun.process.spawn, table.unpack(case[2]))
      assert.is_false(ok)
      assert.matches(case[3], err, 1, true)
      ok, err = pcall(corun.process.run, table.unpack(case[2]))
      assert.is_false(ok)
      assert.matches(case[3], err, 1, true)
    end))
  end

  it("numbers and plain strings still pass", async(function()
    local code, out = corun.process.run("sh", { "-c", 'echo "$0 $1 $N"', "x", 12 },
                                        { env = { N = 5 } })
    assert.equal(0, code)
    assert.equal("x 12 5\n", out)
  end))
end)
