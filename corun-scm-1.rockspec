rockspec_format = "3.0"
package = "corun"
version = "scm-1"
source = {
  url = "git+file:///dev/null",
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
