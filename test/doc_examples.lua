-- test/doc_examples.lua: the code blocks of docs/*.md are checked examples.
--   lua5.4 test/doc_examples.lua [corun binary] [docs/x.md ...]
-- Every ```lua block that contains `-->` lines runs as a script: with the
-- corun runner (default build/bin/corun), or with plain lua5.4 when its
-- first line is `-- plain lua5.4`. What it prints on stdout must match its
-- `-->` lines, in order, and it must exit 0. Matching: runs of blanks count
-- as one (examples show tabs as spaces); an expected line may end with a
-- note set off by two spaces, `--> true  (the writer waited)`, which is not
-- compared; `--> ...` and a `--  ...` line (a continuation of the output
-- above it) stand for any number of lines, and `...` inside a line for
-- any text, and a placeholder in angle brackets (`<port>`) any one word.
-- A first line `-- NAME.lua` (a comment naming the script) makes
-- it run as NAME.lua in a directory of its own, so that tracebacks show
-- that name. Blocks that cannot run alone
-- are fenced ```lua no-check. Prints "ok - file:line" or
-- "FAILED - file:line" (with what differed) per block and exits 1 if any
-- failed.

local corun_bin = arg[1] or "build/bin/corun"
if corun_bin:sub(1, 1) ~= "/" then  -- the named scripts run in a directory of their own
  local p = io.popen("pwd")
  corun_bin = p:read("l") .. "/" .. corun_bin
  p:close()
end
local files = {}
for i = 2, #arg do files[#files + 1] = arg[i] end
if #files == 0 then
  local p = io.popen("ls docs/*.md")
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

local function norm(s)
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

local WILD = {}

-- The blocks of one markdown file: {line =, code =, expect = {...}}.
local function blocks(path)
  local list, cur, n = {}, nil, 0
  for line in io.lines(path) do
    n = n + 1
    if cur == nil then
      local info = line:match("^```(.*)$")
      if info ~= nil and info:match("^lua%s*$") then
        cur = { line = n, lines = {}, expect = {} }
      elseif info ~= nil and info ~= "" then
        cur = { skip = true, lines = {}, expect = {} }
      end
    elseif line:match("^```%s*$") then
      if not cur.skip then
        cur.code = table.concat(cur.lines, "\n") .. "\n"
        list[#list + 1] = cur
      end
      cur = nil
    else
      cur.lines[#cur.lines + 1] = line
      local e = line:match("%-%->(.*)$")
      if e ~= nil then
        e = e:gsub("%s%s+%(.-%)%s*$", "")
        e = norm(e)
        cur.expect[#cur.expect + 1] = e == "..." and WILD or e
      elseif line:match("^%s*%-%-  ") and #cur.expect > 0 then
        cur.expect[#cur.expect + 1] = WILD
      end
    end
  end
  local checked = {}
  for _, b in ipairs(list) do
    if #b.expect > 0 then checked[#checked + 1] = b end
  end
  return checked
end

-- Does actual line a match expected line e ("..." matches any text, and
-- a placeholder such as <port> any one word)?
local function same(a, e)
  a = norm(a)
  if not e:find("...", 1, true) and not e:find("<[^%s<>][^<>]*>") then
    return a == e
  end
  local pat = e:gsub("<[^%s<>][^<>]*>", "\1"):gsub("%p", "%%%0")
  pat = pat:gsub("%%%.%%%.%%%.", ".-"):gsub("\1", "%%S+")
  return a:match("^" .. pat .. "$") ~= nil
end

-- Does actual[i..] match expect[j..]?
local function match(actual, i, expect, j)
  if j > #expect then return i > #actual end
  if expect[j] == WILD then
    for k = i, #actual + 1 do
      if match(actual, k, expect, j + 1) then return true end
    end
    return false
  end
  return i <= #actual and same(actual[i], expect[j])
    and match(actual, i + 1, expect, j + 1)
end

local tmp = os.tmpname()
local dir = tmp .. ".d"
assert(os.execute("mkdir -p " .. q(dir)))
local failed = 0
for _, path in ipairs(files) do
  for _, b in ipairs(blocks(path)) do
    local name = path .. ":" .. b.line
    local script = tmp .. "_" .. b.line .. ".lua"
    local as = b.code:match("^%-%- ([%w_]+%.lua)")
    if as then script = dir .. "/" .. as end
    local f = assert(io.open(script, "w"))
    f:write(b.code)
    f:close()
    local cmd = b.code:match("^%-%- plain lua5%.4") and "lua5.4" or q(corun_bin)
    local p = io.popen((as and "cd " .. q(dir) .. " && " or "")
                       .. "timeout 60 " .. cmd .. " " .. q(as or script)
                       .. " 2>" .. q(tmp .. ".err") .. " </dev/null")
    local out = p:read("a")
    local ok, _, code = p:close()
    local ef = io.open(tmp .. ".err")
    local err = ef and ef:read("a") or ""
    if ef then ef:close() end
    os.remove(script)
    local actual = {}
    for l in out:gmatch("([^\n]*)\n") do actual[#actual + 1] = l end
    if ok and match(actual, 1, b.expect, 1) then
      print("ok - " .. name)
    else
      failed = failed + 1
      print("FAILED - " .. name)
      local shown = {}
      for _, e in ipairs(b.expect) do
        shown[#shown + 1] = "  --> " .. (e == WILD and "..." or e)
      end
      print("  exit: " .. tostring(ok and 0 or code) .. "\n  expected:\n"
            .. table.concat(shown, "\n") .. "\n  got:\n  " .. out:gsub("\n", "\n  ")
            .. (err ~= "" and ("\n  stderr:\n  " .. err:gsub("\n", "\n  ")) or ""))
    end
  end
end
os.remove(tmp)
os.remove(tmp .. ".err")
os.execute("rm -rf " .. q(dir))
os.exit(failed == 0 and 0 or 1)
