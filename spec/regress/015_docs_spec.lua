-- spec/regress/015_docs_spec.lua: issue 15, item 11. The code blocks of
-- docs/ are checked examples (test/doc_examples.lua, a stage of make
-- test): a block whose `-->` lines differ from what it prints fails; and
-- `corun --help` tells exit status 2, -h and -e CODE args....

local ROOT do
  local p = io.popen("pwd")
  ROOT = p:read("l")
  p:close()
end
local RUNNER = os.getenv("CORUN_BIN") or ROOT .. "/build/bin/corun"

local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

describe("issue 15: docs", function()
  local md
  setup(function() md = os.tmpname() .. ".md" end)
  teardown(function() os.remove(md) end)

  it("test/doc_examples.lua checks the --> lines of each lua block", function()
    local f = assert(io.open(md, "w"))
    f:write([[
# t

```lua
local corun = require "corun"
print(corun.gather(function() return 1 end)[1])   --> 1
io.write("a\tb\n")                                --> a   b  (blanks count as one)
```

```lua
print("drifted")   --> expected
```

```lua
error("exits 1")   --> nothing
```

```lua no-check
print("not run")   --> whatever
```

```lua
-- named.lua
print(debug.getinfo(1, "S").short_src)   --> named.lua
print("x: long text")                    --> x: ...
print("more")
--> ...
```

```lua
-- plain lua5.4
local corun = require "corun"
print(corun.run(function() return corun.current().name end))   --> main
```

```lua
print("no expected lines: not run")
```
]])
    f:close()
    local code, out = sh("lua5.4 test/doc_examples.lua " .. q(RUNNER) .. " " .. q(md))
    assert.equal(1, code, out)
    local got = {}
    for status, line in out:gmatch("(%a+) %- [^\n]*:(%d+)\n") do
      got[#got + 1] = status .. " " .. line
    end
    assert.same({ "ok 3", "FAILED 9", "FAILED 13", "ok 21", "ok 29" }, got)
    assert.truthy(out:find("got:\n  drifted", 1, true), out)
  end)

  it("corun --help tells exit status 2, -h and -e CODE args...", function()
    for _, opt in ipairs { "--help", "-h" } do
      local code, out = sh(q(RUNNER) .. " " .. opt)
      assert.equal(0, code)
      assert.truthy(out:find("-e CODE [args...]", 1, true), out)
      assert.truthy(out:find("-h, --help", 1, true), out)
      assert.truthy(out:find("2 for a usage error", 1, true), out)
    end
  end)
end)
