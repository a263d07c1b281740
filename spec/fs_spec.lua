-- spec/fs_spec.lua: corun.fs (src/fs.c): read, write, append, stat, list,
-- remove, rename, mkdir, in tasks (thread pool) and outside (synchronous).

local corun = require "corun"
local cb = require "corun.busted"
local helper = require "helper"
local catch = helper.catch
local both, fails = helper.both, helper.fails
local async = cb.async
local fs = corun.fs


-- fn(...) must raise an error whose text contains 'text'.
local function raises(text, fn, ...)
  local e = catch(fn, ...)
  assert(e ~= nil, "did not raise (expected '" .. text .. "')")
  assert(tostring(e):find(text, 1, true),
         ("expected '%s' in the error, got: %s"):format(text, tostring(e)))
end

-- fn(...) must return nil and an error starting with 'code'.

local function umask()
  local p = io.popen("sh -c umask")
  local m = tonumber(p:read("l"), 8)
  p:close()
  return m
end

-- Every byte value, in a few orders.
local function binary()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  for i = 255, 0, -1 do t[#t + 1] = string.char(i) end
  t[#t + 1] = "\0\r\n\0"
  return table.concat(t)
end

-- 'n' pseudo-random bytes (rotations of a random 4 KB block).
local function noise(n)
  local rnd, b = helper.lcg(7), {}
  for i = 1, 4096 do b[i] = rnd(256) - 1 end
  local block, t, len, k = string.char(table.unpack(b)), {}, 0, 0
  while len < n do
    k = k % 4093 + 1
    t[#t + 1] = block:sub(k) .. block:sub(1, k - 1)
    len = len + 4096
  end
  return table.concat(t):sub(1, n)
end

describe("corun.fs", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(fs.mkdir(dir))
  end)

  after_each(function()
    os.execute("unset LD_PRELOAD; rm -rf '" .. dir .. "'")
    helper.check()
  end)

  local function path(name) return dir .. "/" .. name end

  describe("read, write, append", function()
    it("round-trips text in a task", async(function()
      assert.same(both(true), both(fs.write(path("a"), "hello\n")))
      assert.same(both("hello\n"), both(fs.read(path("a"))))
    end))

    it("round-trips binary data", async(function()
      local data = binary()
      assert.is_true(fs.write(path("bin"), data))
      assert.equal(data, fs.read(path("bin")))
      assert.equal(data, helper.readfile(path("bin")))
    end))

    it("reads and writes empty files", async(function()
      assert.is_true(fs.write(path("empty"), ""))
      assert.equal("", fs.read(path("empty")))
      assert.equal(0, fs.stat(path("empty")).size)
    end))

    it("reads and writes a 5 MB file", async(function()
      local data = noise(5 * 1024 * 1024 + 123)
      assert.is_true(fs.write(path("big"), data))
      assert.equal(#data, fs.stat(path("big")).size)
      local got = fs.read(path("big"))
      assert.equal(#data, #got)
      assert.is_true(got == data)
    end))

    it("write truncates, append appends and creates", async(function()
      assert.is_true(fs.write(path("t"), "long contents"))
      assert.is_true(fs.write(path("t"), "short"))
      assert.equal("short", fs.read(path("t")))
      assert.is_true(fs.append(path("t"), "+more"))
      assert.equal("short+more", fs.read(path("t")))
      assert.is_true(fs.append(path("new"), "x"))
      assert.is_true(fs.append(path("new"), "y"))
      assert.equal("xy", fs.read(path("new")))
    end))

    it("accepts numbers as data", async(function()
      assert.is_true(fs.write(path("n"), 42))
      assert.equal("42", fs.read(path("n")))
    end))

    it("creates files with mode 0666 & ~umask", async(function()
      assert.is_true(fs.write(path("m"), "x"))
      assert.equal(0x1b6 & ~umask(), fs.stat(path("m")).mode)
    end))

    it("returns nil, err on failure", async(function()
      fails("ENOENT", fs.read(path("missing")))
      fails("EISDIR", fs.read(dir))
      fails("ENOENT", fs.write(path("no/such/dir"), "x"))
      fails("EISDIR", fs.write(dir, "x"))
      fails("ENOENT", fs.append(path("no/such/dir"), "x"))
      assert.is_true(fs.write(path("f"), "x"))
      fails("ENOTDIR", fs.write(path("f") .. "/x", "x"))
      fails("ENOTDIR", fs.read(path("f") .. "/x"))
    end))

    it("reads special files until EOF", async(function()
      assert.equal("", fs.read("/dev/null"))
    end))

    it("runs many operations concurrently", async(function()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = corun.spawn(function()
          local p = path("c" .. i)
          assert(fs.write(p, ("%d\n"):format(i):rep(i)))
          assert(fs.append(p, "end"))
          return fs.read(p)
        end)
      end
      local got = corun.gather(tasks)
      for i = 1, 50 do
        assert.equal(("%d\n"):format(i):rep(i) .. "end", got[i])
      end
      assert.equal(50, #fs.list(dir))
    end))

    it("lets other tasks run while it waits", async(function()
      local ticks = 0
      local t = corun.spawn(function()
        while true do
          ticks = ticks + 1
          corun.sleep(0)
        end
      end)
      local data = noise(1024 * 1024)
      for _ = 1, 5 do
        assert(fs.write(path("big"), data))
        assert(fs.read(path("big")))
      end
      t:cancel()
      assert.is_true(ticks > 0)
    end))
  end)

  describe("stat", function()
    it("describes a file", async(function()
      local before = os.time()
      assert.is_true(fs.write(path("f"), "12345"))
      local st = fs.stat(path("f"))
      assert.equal(5, st.size)
      assert.equal("file", st.type)
      assert.equal("number", type(st.mode))
      for _, k in ipairs { "mtime", "atime", "ctime" } do
        assert.equal("number", type(st[k]))
        assert.is_true(math.abs(st[k] - before) < 5, k)
      end
      assert.is_true(math.type(st.mtime) == "float")
    end))

    it("tells directories, links and other files apart", async(function()
      assert.equal("directory", fs.stat(dir).type)
      assert.is_true(fs.write(path("target"), "x"))
      assert(os.execute("ln -s target '" .. path("link") .. "'"))
      assert.equal("link", fs.stat(path("link")).type)
      assert.equal("other", fs.stat("/dev/null").type)
    end))

    it("returns nil, err on failure", async(function()
      fails("ENOENT", fs.stat(path("missing")))
      assert.is_true(fs.write(path("f"), "x"))
      fails("ENOTDIR", fs.stat(path("f") .. "/x"))
    end))
  end)

  describe("list", function()
    it("lists names, sorted, without . and ..", async(function()
      assert.same({}, fs.list(dir))
      for _, n in ipairs { "b", "a", "C", "a.txt", "10", "2" } do
        assert.is_true(fs.write(path(n), n))
      end
      assert.is_true(fs.mkdir(path("sub")))
      assert.same({ "10", "2", "C", "a", "a.txt", "b", "sub" }, fs.list(dir))
    end))

    it("returns nil, err on failure", async(function()
      fails("ENOENT", fs.list(path("missing")))
      assert.is_true(fs.write(path("f"), "x"))
      fails("ENOTDIR", fs.list(path("f")))
    end))
  end)

  describe("remove, rename, mkdir", function()
    it("removes files and empty directories", async(function()
      assert.is_true(fs.write(path("f"), "x"))
      assert.is_true(fs.mkdir(path("d")))
      assert.same(both(true), both(fs.remove(path("f"))))
      assert.same(both(true), both(fs.remove(path("d"))))
      assert.same({}, fs.list(dir))
    end))

    it("removes a link, not its target", async(function()
      assert.is_true(fs.mkdir(path("d")))
      assert(os.execute("ln -s d '" .. path("l") .. "'"))
      assert.is_true(fs.remove(path("l")))
      assert.equal("directory", fs.stat(path("d")).type)
    end))

    it("remove returns nil, err on failure", async(function()
      fails("ENOENT", fs.remove(path("missing")))
      assert.is_true(fs.mkdir(path("d")))
      assert.is_true(fs.write(path("d/f"), "x"))
      fails("ENOTEMPTY", fs.remove(path("d")))
      fails("ENOTDIR", fs.remove(path("d/f/g")))
    end))

    it("renames", async(function()
      assert.is_true(fs.write(path("a"), "contents"))
      assert.same(both(true), both(fs.rename(path("a"), path("b"))))
      fails("ENOENT", fs.read(path("a")))
      assert.equal("contents", fs.read(path("b")))
      assert.is_true(fs.write(path("c"), "other"))
      assert.is_true(fs.rename(path("b"), path("c")))  -- replaces
      assert.equal("contents", fs.read(path("c")))
    end))

    it("rename returns nil, err on failure", async(function()
      fails("ENOENT", fs.rename(path("missing"), path("x")))
      assert.is_true(fs.write(path("f"), "x"))
      fails("ENOENT", fs.rename(path("f"), path("no/such/x")))
      assert.is_true(fs.mkdir(path("d")))
      assert.is_true(fs.write(path("d/g"), "x"))
      fails("EISDIR", fs.rename(path("f"), path("d")))
    end))

    it("makes directories, with a mode", async(function()
      assert.same(both(true), both(fs.mkdir(path("d"))))
      assert.equal("directory", fs.stat(path("d")).type)
      assert.equal(0x1ff & ~umask(), fs.stat(path("d")).mode)
      assert.is_true(fs.mkdir(path("p"), 0x1c0))  -- 0700
      assert.equal(0x1c0, fs.stat(path("p")).mode)
    end))

    it("mkdir returns nil, err on failure", async(function()
      assert.is_true(fs.mkdir(path("d")))
      fails("EEXIST", fs.mkdir(path("d")))
      fails("ENOENT", fs.mkdir(path("no/such")))
      assert.is_true(fs.write(path("f"), "x"))
      fails("EEXIST", fs.mkdir(path("f")))
      fails("ENOTDIR", fs.mkdir(path("f/sub")))
    end))
  end)

  describe("arguments", function()
    it("raises on bad arguments, naming the function", function()
      raises("bad argument #1 to 'fs.read' (string expected, got no value)",
             fs.read)
      raises("bad argument #1 to 'fs.stat' (string expected, got table)",
             fs.stat, {})
      raises("bad argument #2 to 'fs.write' (string expected, got no value)",
             fs.write, path("x"))
      raises("bad argument #2 to 'fs.append' (string expected, got boolean)",
             fs.append, path("x"), true)
      raises("bad argument #2 to 'fs.rename' (string expected, got nil)",
             fs.rename, path("x"), nil)
      raises("bad argument #2 to 'fs.mkdir' (mode must be", fs.mkdir,
             path("x"), "rwx")
      raises("bad argument #2 to 'fs.mkdir' (mode must be", fs.mkdir,
             path("x"), -1)
      raises("bad argument #1 to 'fs.list' (path contains a zero byte)",
             fs.list, dir .. "\0x")
      raises("bad argument #1 to 'fs.remove'", fs.remove, nil)
      assert.same({}, fs.list(dir))  -- nothing was created
    end)

    it("raises inside a task too", async(function()
      raises("bad argument #1 to 'fs.read'", fs.read, nil)
      raises("bad argument #2 to 'fs.write'", fs.write, path("x"), {})
    end))

    it("refuses a coroutine inside a task", async(function()
      local co = coroutine.wrap(function() return fs.read(path("x")) end)
      raises("must be called from inside a task", co)
    end))
  end)

  describe("outside a task", function()
    it("runs every function synchronously", function()
      assert.is_nil(corun.current())
      assert.same(both(true), both(fs.write(path("f"), binary())))
      assert.is_true(fs.append(path("f"), "!"))
      assert.equal(binary() .. "!", fs.read(path("f")))
      assert.equal(#binary() + 1, fs.stat(path("f")).size)
      assert.is_true(fs.mkdir(path("d")))
      assert.is_true(fs.rename(path("f"), path("d/g")))
      assert.same({ "d" }, fs.list(dir))
      assert.same({ "g" }, fs.list(path("d")))
      fails("ENOTEMPTY", fs.remove(path("d")))
      assert.is_true(fs.remove(path("d/g")))
      assert.is_true(fs.remove(path("d")))
      fails("ENOENT", fs.read(path("f")))
      fails("ENOENT", fs.stat(path("f")))
      fails("EEXIST", fs.mkdir(dir))
    end)

    it("reads a 5 MB file", function()
      local data = noise(5 * 1024 * 1024)
      assert.is_true(fs.write(path("big"), data))
      assert.is_true(fs.read(path("big")) == data)
    end)

    it("works from a callback", async(function()
      local got
      corun.call_soon(function() got = fs.write(path("cb"), "cb") end)
      corun.sleep(0.01)
      assert.is_true(got)
      assert.equal("cb", fs.read(path("cb")))
    end))

    it("works in a plain script", function()
      local status, out, err = helper.run_lua(([[
        local fs = require("corun").fs
        assert(fs.write(%q, "plain"))
        print(fs.read(%q), fs.read(%q))
      ]]):format(path("p"), path("p"), path("missing")))
      assert.equal(0, status, err)
      assert.equal("plain\tnil\tENOENT: no such file or directory\n", out)
    end)
  end)

  describe("cancellation", function()
    it("wakes a task waiting in a read at once", async(function()
      -- /dev/zero never ends: only cancellation stops the read.
      local t = corun.spawn(fs.read, "/dev/zero")
      corun.sleep(0.02)
      local t0 = corun.time()
      t:cancel()
      local e = catch(t.join, t)
      assert.is_true(corun.is_cancelled(e), tostring(e))
      assert.equal("cancelled", t:status())
      assert.is_true(corun.time() - t0 < 1)
      -- the abandoned read stops and frees itself: the loop drains
      corun.sleep(0.05)
    end))

    it("lets an abandoned write complete", async(function()
      local data = noise(4 * 1024 * 1024)
      local t = corun.spawn(fs.write, path("w"), data)
      corun.sleep(0)
      t:cancel()
      assert.is_true(corun.is_cancelled(catch(t.join, t)))
      -- the write goes on in the thread pool; wait until it is complete
      local deadline = corun.time() + 5
      while (fs.stat(path("w")) or {}).size ~= #data
            and corun.time() < deadline do
        corun.sleep(0.01)
      end
      assert.is_true(fs.read(path("w")) == data)
    end))

    it("survives many cancelled operations", async(function()
      assert.is_true(fs.write(path("f"), noise(100000)))
      local tasks = {}
      for i = 1, 100 do
        local op = i % 4
        tasks[i] = corun.spawn(function()
          if op == 0 then return fs.read(path("f"))
          elseif op == 1 then return fs.stat(path("f"))
          elseif op == 2 then return fs.list(dir)
          else return fs.write(path("w" .. i), "x") end
        end)
      end
      corun.sleep(0)
      for i = 1, 100, 2 do tasks[i]:cancel() end
      for i = 1, 100 do
        local ok, e = pcall(tasks[i].join, tasks[i])
        if i % 2 == 1 then
          assert.is_true(ok or corun.is_cancelled(e), tostring(e))
        else
          assert.is_true(ok, tostring(e))
        end
      end
      corun.sleep(0.05)
    end))

    it("raises a pending cancellation before starting", async(function()
      local t = corun.spawn(function()
        corun.current():cancel()
        fs.write(path("never"), "x")
      end)
      assert.is_true(corun.is_cancelled(catch(t.join, t)))
      fails("ENOENT", fs.stat(path("never")))
    end))

    it("works with corun.timeout", async(function()
      local e = catch(corun.timeout, 0.02, fs.read, "/dev/zero")
      assert.is_true(corun.is_timeout(e), tostring(e))
    end))

    it("ends a run with an operation in flight", function()
      corun.run(function()
        corun.spawn(fs.read, "/dev/zero")
        corun.sleep(0.01)
      end)
      -- the next run drains the abandoned read
      corun.run(function() corun.sleep(0.02) end)
    end)
  end)
end)
