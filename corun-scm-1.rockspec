rockspec_format = "3.0"
package = "corun"
version = "scm-1"
-- The source tarball `make dist` writes beside this file (the checkout's
-- files under corun/), with the source rock corun-scm-1.src.rock;
-- `luarocks build corun-scm-1.rockspec` beside the tarball builds from it.
-- `luarocks make` in the checkout does not read source.url.
source = {
  url = "corun-scm-1.tar.gz",
  dir = "corun",
}
description = {
  summary = "A concurrency runtime for Lua 5.4: tasks, queues, timers, threads and I/O on libuv",
  detailed = [[
corun runs Lua coroutines as tasks on a C event loop built on libuv, with
timers, queues, locks and the other primitives, plus the corun runner.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
    CORUN_LUA_INTERP = "$(LUA)",
  },
}
