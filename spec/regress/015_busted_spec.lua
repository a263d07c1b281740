-- spec/regress/015_busted_spec.lua: issue 15, items 1 and 2.
-- 1. corun-busted (built in build/bin, installed beside the runner) runs a
--    user's own specs with corun on the path, from a directory without a
--    .busted file and with no LUA_PATH / LUA_CPATH set.
-- 2. A task of a corun.async spec that fails with an error nobody
--    retrieved fails that spec.

local ROOT do
  local p = io.popen("pwd")
  ROOT = p:read("l")
  p:close()
end
local BUILD = (os.getenv("CORUN_BIN") or ROOT .. "/build/bin/corun")
  :match("^(.*)/bin/corun$")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

-- successes, failures + errors of a busted run's summary line
local function summary(out)
  out = out:gsub("\27%[[0-9;]*m", "")
  local s, f, e = out:match("(%d+) successe?s? / (%d+) failures? / (%d+) errors?")
  assert(s, "no busted summary in:\n" .. out)
  return tonumber(s), tonumber(f) + tonumber(e)
end

local dir
local function writespec(name, code)
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(code)
  f:close()
  return dir .. "/" .. name
end

describe("issue 15: busted", function()
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)
  teardown(function()
    os.execute("rm -rf " .. q(dir))
  end)

  local user_spec = [[
local corun = require "corun"
require "corun.busted"
describe("mine", function()
  it("sleeps", corun.async(function()
    corun.sleep(0.01)
    assert.equal(3, corun.gather(function() return 3 end)[1])
  end))
end)
]]

  it("build/bin/corun-busted runs a spec outside the checkout", function()
    writespec("mine_spec.lua", user_spec)
    local code, out = sh("cd " .. q(dir) .. " && env -u LUA_PATH -u LUA_CPATH "
                         .. q(BUILD .. "/bin/corun-busted") .. " mine_spec.lua")
    assert.equal(0, code, out)
    assert.same({ 1, 0 }, { summary(out) })
  end)

  it("the installed corun-busted finds the installed corun", function()
    writespec("mine_spec.lua", user_spec)
    local prefix = dir .. "/prefix"
    local code, out = sh("cmake --install " .. q(BUILD) .. " --prefix " .. q(prefix))
    assert.equal(0, code, out)
    code, out = sh("cd " .. q(dir) .. " && env -u LUA_PATH -u LUA_CPATH "
                   .. q(prefix .. "/bin/corun-busted") .. " mine_spec.lua")
    assert.equal(0, code, out)
    assert.same({ 1, 0 }, { summary(out) })
    -- it loaded corun from the prefix, not from the checkout
    writespec("where_spec.lua", [[
it("where", function()
  print("FROM " .. package.searchpath("corun", package.path))
  print("CFROM " .. package.searchpath("corun.core", package.cpath))
end)
]])
    code, out = sh("cd " .. q(dir) .. " && env -u LUA_PATH -u LUA_CPATH "
                   .. q(prefix .. "/bin/corun-busted") .. " where_spec.lua")
    assert.equal(0, code, out)
    assert.truthy(out:find("FROM " .. prefix, 1, true), out)
    assert.truthy(out:find("CFROM " .. prefix, 1, true), out)
  end)

  it("a background task's unretrieved error fails its async spec", function()
    writespec("bg_spec.lua", [[
local corun = require "corun"
require "corun.busted"
describe("bg", function()
  it("fails in the background", corun.async(function()
    corun.spawn(function() error("background boom") end)
    corun.sleep(0.01)
  end))
  it("fails in the background, virtual clock", corun.async_virtual(function()
    corun.spawn(function() error("virtual boom") end)
    corun.sleep(1)
  end))
  it("retrieved errors do not fail it", corun.async(function()
    local t = corun.spawn(function() error("seen") end)
    assert.is_false(pcall(t.join, t))
  end))
  it("fails when the failed task was collected first", corun.async(function()
    corun.spawn(function() error("collected boom") end)
    corun.sleep(0)
    collectgarbage()
    collectgarbage()
  end))
  it("passes", corun.async(function() corun.sleep(0) end))
end)
]])
    local code, out = sh("cd " .. q(dir) .. " && " .. q(BUILD .. "/bin/corun-busted")
                         .. " -o plainTerminal bg_spec.lua")
    assert.are_not.equal(0, code, out)
    assert.same({ 2, 3 }, { summary(out) })
    assert.truthy(out:find("collected boom", 1, true), out)
    assert.truthy(out:find("background boom", 1, true), out)
    assert.truthy(out:find("virtual boom", 1, true), out)
  end)
end)
