/*
** core.c
** luaopen_corun_core: creates this state's loop and registers every
** function and metatable of the C core, as Lua's linit.c opens its
** libraries. Each function gets the loop as its first upvalue
** (cr_loop_get). The helpers every file shares are in aux.c.
*/

#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <string.h>

#include "corun.h"

/* core.methods(name): the method table of a corun class ("corun.pool"),
** for the Lua layer to add methods composed in Lua. */
static int core_methods(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_argcheck(L, strncmp(name, "corun.", 6) == 0, 1, "not a corun class");
  if (luaL_getmetatable(L, name) != LUA_TTABLE)
    return luaL_error(L, "methods: no class '%s'", name);
  lua_getfield(L, -1, "__index");
  return 1;
}

/* Keep this library mapped for the life of the process: worker threads of
** a pool nobody closed may still run its code after lua_close unloads
** C modules. */
static void pin(void) {
  Dl_info info;
  if (dladdr((void *)pin, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

LUA_API int luaopen_corun_core(lua_State *L) __attribute__((visibility("default")));

LUA_API int luaopen_corun_core(lua_State *L) {
  /* A write to a closed socket or pipe returns EPIPE instead of killing
  ** the process (what libuv programs, node and python do). */
  signal(SIGPIPE, SIG_IGN);
  pin();
  cr_loop_open(L);
  lua_newtable(L);
  cr_loop_open_lib(L);
  cr_task_open_lib(L);
  cr_gather_open_lib(L);
  cr_queue_open_lib(L);
  cr_sync_open_lib(L);
  cr_codec_open_lib(L);
  cr_channel_open_lib(L);
  cr_thread_open_lib(L);
  cr_future_open_lib(L);
  cr_fs_open_lib(L);
  cr_signal_open_lib(L);
  cr_stream_open_lib(L);
  cr_process_open_lib(L);
  cr_inspect_open_lib(L);
  cr_dns_open_lib(L);
  cr_udp_open_lib(L);
  cr_sockopt_open_lib(L);
#ifdef CORUN_REDIS
  cr_redis_open_lib(L);
#endif
#ifdef CORUN_TLS
  cr_tls_open_lib(L);
#endif
#ifdef CORUN_HTTP
  cr_http_client_open_lib(L);
  cr_http_server_open_lib(L);
#endif
  lua_pushcfunction(L, core_methods);
  lua_setfield(L, -2, "methods");
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
